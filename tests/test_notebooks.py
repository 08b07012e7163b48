"""Every library notebook is a test: its cells run top to bottom and their `fastcore.test` checks pass.

nbdev's own `test_nb` executes them (skipping cells flagged with settings.ini's `tst_flags`, i.e.
`slow` and `gpu`, unless GDML_TEST_FLAGS names them), so pytest prints one result per notebook.
"""
import os
from pathlib import Path

import pytest
from nbdev.test import test_nb

NBS = Path(__file__).resolve().parents[1] / 'nbs'
# the experiment notebooks run under papermill in tests/test_experiment.py, not here
NOTEBOOKS = sorted(p for p in NBS.glob('[0-9]*.ipynb'))
FLAGS = os.environ.get('GDML_TEST_FLAGS', '').split()


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(NBS)  # notebooks run from their own folder, as in JupyterLab
    ok, secs = test_nb(nb, flags=FLAGS, do_print=False, basepath=NBS.parent)
    assert ok, f"{nb.name} failed (see the traceback above)"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, [p.name for p in NOTEBOOKS]
