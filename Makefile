# The two commands of the README: `make demo` (main job on the embedded digits data) and
# `make test` (the test suite). Both create .venv and install gdml with its dev extras first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch from the local disk where it lies there (CPU or CUDA build); override on other machines
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.gdml-installed
PYTEST_ARGS ?=
# cell flags to run besides the default ones, e.g. `make test GDML_TEST_FLAGS=slow`
export GDML_TEST_FLAGS

.PHONY: demo test paper install clean-venv

install: $(STAMP)

$(STAMP): setup.py settings.ini
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel packaging
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gdml demo

test: $(STAMP)
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS) tests

paper: $(STAMP)
	$(BIN)/gdml sweep --profile paper --datasets mnist fashion_mnist cifar10 --seeds 10 --out results/paper

clean-venv:
	rm -rf $(VENV)
