"""Every library notebook is a test: its cells run top to bottom and their `fastcore.test` checks pass.

nbdev's own `test_nb` executes them in this process, skipping cells flagged with settings.ini's `tst_flags`
(`slow`, `gpu`) unless GDML_TEST_FLAGS names them, so pytest prints one result per notebook. `conftest.py`
pins them (and every test) to one CPU thread.
"""
import os
from pathlib import Path

import pytest
from nbdev import test as nbdev_test   # a module alias, so pytest does not collect `test_nb` itself
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
# the experiment notebooks run under papermill in tests/test_experiment.py, not here
NOTEBOOKS = sorted(NBS.glob('[0-9]*.ipynb'))
FLAGS = os.environ.get('GDML_TEST_FLAGS', '').split()


def skipped_flags() -> list[str]:
    "settings.ini's tst_flags that this run does not ask for (as nbdev_test computes them)."
    return [f for f in get_config(path=ROOT).tst_flags.split() if f not in FLAGS]


def test_the_notebooks_run_on_one_thread():
    # torch would take every core, in this process and in each kernel, Dask worker and `gdml` it starts
    import torch
    assert torch.get_num_threads() == 1 and os.environ['OMP_NUM_THREADS'] == '1' == os.environ['MKL_NUM_THREADS']


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(NBS)  # notebooks run from their own folder, as in JupyterLab
    ok, _ = nbdev_test.test_nb(nb, skip_flags=skipped_flags(), force_flags=FLAGS, basepath=ROOT)
    assert ok, f"{nb.name} failed (its traceback is printed above)"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 10, [p.name for p in NOTEBOOKS]
    # `#| slow` cells are skipped unless GDML_TEST_FLAGS asks for them: `slow` must be one of settings.ini's tst_flags
    assert {'slow', 'gpu'} <= set(get_config(path=ROOT).tst_flags.split())
    assert ('slow' in skipped_flags()) is ('slow' not in FLAGS)
