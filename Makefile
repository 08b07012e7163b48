# The two commands of the README: `make demo` (main job on the embedded digits data) and
# `make test` (the test suite). Both create .venv and install gdml with its dev extras first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch from the local disk where it lies there (CPU or CUDA build); override on other machines
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.gdml-installed
PYTEST_ARGS ?=
# the fast suite runs on one pytest-xdist worker per core (each pinned to one torch thread, tests/conftest.py): 320 s
# against 379 s serially on 2 idle cores; TEST_WORKERS=0 runs it in one process
TEST_WORKERS ?= auto
# cell flags to run besides the default ones, e.g. `make test GDML_TEST_FLAGS=slow` (also runs the tests marked slow)
export GDML_TEST_FLAGS

.PHONY: demo test test-slow paper install clean-venv gpu-pack gpu-commit docs readme check-lab explore-pages

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
	$(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS) tests

# the end-to-end tests alone (marked `slow`, tests/conftest.py), as .ci/run runs them after `make test`, on one xdist
# worker per core too (the docs site is built once and shared, tests/test_docs.py);
# pytest's exit status 5 (no test collected) is no failure
test-slow: $(STAMP)
	GDML_TEST_FLAGS="slow $(GDML_TEST_FLAGS)" $(BIN)/python -m pytest -ra -m slow -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS) tests || [ $$? -eq 5 ]

paper: $(STAMP)
	$(BIN)/gdml sweep --profile paper --datasets mnist fashion_mnist cifar10 --seeds 10 --out results/paper

# README.md is rendered from nbs/index.ipynb (the docs' home page), after the tables it and the docs pages quote are
# copied in from results/*/tables and the profiles table from gdml.protocol (tools/quote_tables.py); CI checks that they agree
readme: $(STAMP)
	$(BIN)/python tools/quote_tables.py nbs/index.ipynb $$(grep -l -e '<!-- table:' -e '<!-- profiles -->' nbs/*.md)
	$(BIN)/jupyter nbconvert --log-level=ERROR --to markdown --stdout nbs/index.ipynb > README.md.tmp \
	  && mv README.md.tmp README.md || { rm -f README.md.tmp; exit 1; }

# the documentation site: every notebook with its stored outputs (nothing executed), offline, into _docs/;
# tools/docs_hooks.py (mkdocs.yml hooks:) shows exported cells as API entries, LaTeX as MathML, no directives or stderr
# (with the explorer pages of results/cpu, made first where the records and $$GDML_DATA allow: the results page links them)
docs: $(STAMP) explore-pages
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build -q --strict -d _docs
	@echo "docs: _docs/index.html"

# JupyterLab in headless Chromium (apt-get install chromium chromium-driver): runs the first cells of 03_gemini, then
# 09b_explore's up to its explorer, where a point is clicked; a screenshot of each
check-lab: $(STAMP)
	$(BIN)/python tools/check_lab.py --screenshot nbs/images/jupyterlab_03_gemini.png
	$(BIN)/python tools/check_lab.py --notebook nbs/09b_explore.ipynb --through-cell-ending ex --expect triplet/seed0- \
	  --explorer --screenshot nbs/images/jupyterlab_11_explore.png

# the explorer pages of the CPU-scale study, results/cpu/explore/<dataset>.html (the docs' results page links them, and
# the site copies them): every arm, seed 0, one page per dataset (under 8 MB each), from the committed records and the
# datasets of $GDML_DATA; a page is rebuilt when its records or gdml/explore.py are newer, and one whose dataset is
# missing here is left out with a note
EXPLORE_DATASETS ?= mnist fashion_mnist cifar10
explore-pages: $(EXPLORE_DATASETS:%=results/cpu/explore/%.html)

.SECONDEXPANSION:
results/cpu/explore/%.html: gdml/explore.py $$(wildcard results/cpu/$$*/*/seed0-*/result.json) | $(STAMP)
	$(BIN)/gdml explore --runs results/cpu --dataset $* --seed 0 --out $@ \
	  || echo "note: $@ left out (the line above says why)"

clean-venv:
	rm -rf $(VENV)

# Everything a GPU node without network needs besides the working tree (git-ignored: .whl/, .gpu/; see offline_gpu/README.md):
# the wheels the GPU image lacks, them packed for its Python 3.12, the datasets packed from $GDML_DATA.
GPU_DATASETS ?= mnist fashion_mnist cifar10
gpu-pack: $(STAMP)
	PYTHON=$(BIN)/python offline_gpu/gpu_wheels.sh
	$(BIN)/python offline_gpu/gpu_pack.py site
	$(BIN)/python offline_gpu/gpu_pack.py pack $(GPU_DATASETS)
	$(MAKE) gpu-commit

# the commit the GPU node runs (records name it; its copy of the tree has no .git): before each command
gpu-commit:
	@mkdir -p .gpu && { git rev-parse HEAD | tr -d '\n'; git diff --quiet HEAD -- . || printf -- '-dirty'; echo; } > .gpu/COMMIT
	@cat .gpu/COMMIT
