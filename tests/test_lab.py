"""JupyterLab in a real browser (tools/check_lab.py): runs with `GDML_TEST_FLAGS=slow` (or `make check-lab`) where
Debian's chromium and chromium-driver and selenium are installed; skipped, with the reason, elsewhere."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import check_lab  # noqa: E402


@pytest.mark.slow   # skipped unless GDML_TEST_FLAGS names slow (tests/conftest.py)
def test_jupyterlab_runs_the_first_cells_of_03_gemini(tmp_path):
    why = check_lab.missing()
    if why: pytest.skip(why)
    shot = tmp_path/'lab.png'
    # raises unless the 6 code cells ran ([1]..[6]), the output appeared, no cell failed and no process is left
    res = check_lab.check('nbs/03_gemini.ipynb', cells=7, expect='torch.Size([5, 2])', screenshot=str(shot))
    assert any('torch.Size([5, 2])' in t for t in res['outputs']) and res['prompts'] == [f'[{i}]:' for i in range(1, 7)]
    assert res['processes'] >= 3   # JupyterLab, its kernel, chromedriver (and Chromium's): all gone again
    assert shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and 10_000 < shot.stat().st_size < 150_000
