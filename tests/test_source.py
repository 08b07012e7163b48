"""The exported library compiles cleanly: no invalid escape sequences (e.g. a notebook summary's `$\\hat Z$`
exported into a non-raw module docstring), which Python reports as warnings on every import."""
import warnings
from pathlib import Path

import pytest

MODULES = sorted((Path(__file__).resolve().parents[1]/'gdml').glob('*.py'))


@pytest.mark.parametrize('path', MODULES, ids=[p.stem for p in MODULES])
def test_module_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # SyntaxWarning / DeprecationWarning: invalid escape sequence
        compile(path.read_text(), str(path), 'exec')
