"""The exported library compiles cleanly: no invalid escape sequences (e.g. a notebook summary's `$\\hat Z$`
exported into a non-raw module docstring), which Python reports as warnings on every import. Its modules are built
floor by floor: each imports only modules of lower-numbered notebooks, and none another's private names."""
import ast, json, re, warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT/'gdml').glob('*.py'))
LIBRARY = [p for p in MODULES if p.stem not in ('__init__', '_modidx')]


@pytest.mark.parametrize('path', MODULES, ids=[p.stem for p in MODULES])
def test_module_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # SyntaxWarning / DeprecationWarning: invalid escape sequence
        compile(path.read_text(), str(path), 'exec')


def notebooks() -> dict[str, str]:
    "module -> the library notebook that exports it (its `#| default_exp`)."
    out = {}
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        for cell in json.loads(nb.read_text())['cells']:
            m = re.match(r'#\|\s*default_exp\s+(\w+)', ''.join(cell['source']))
            if m: out[m.group(1)] = nb.name; break
    return out


def number(notebook: str) -> tuple[int, str]:
    "A notebook's floor: 07b_train.ipynb -> (7, 'b')."
    m = re.match(r'(\d+)([a-z]*)_', notebook)
    assert m, f"{notebook} has no number"
    return int(m.group(1)), m.group(2)


def gdml_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, the names taken from it) for every gdml module that `path` imports, at its top or inside a function:
    `from .x import a`, `from gdml.x import a`, `import gdml.x`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level == 1 and node.module: out.append((node.module.split('.')[0], names))
            elif node.level == 1: out += [(n, []) for n in names]                              # from . import x
            elif node.module and node.module.split('.')[0] == 'gdml':
                if '.' in node.module: out.append((node.module.split('.')[1], names))
                else: out += [(n, []) for n in names]                                          # from gdml import x
        elif isinstance(node, ast.Import):
            out += [(a.name.split('.')[1], []) for a in node.names if a.name.startswith('gdml.')]
    return out


def test_every_module_has_its_own_numbered_notebook():
    nbs = notebooks()
    assert sorted(nbs) == sorted(p.stem for p in LIBRARY), (sorted(nbs), [p.stem for p in LIBRARY])
    floors = [number(nb) for nb in nbs.values()]
    assert len(set(floors)) == len(floors), f"two notebooks share a number: {sorted(nbs.values())}"


@pytest.mark.parametrize('path', LIBRARY, ids=[p.stem for p in LIBRARY])
def test_a_module_needs_only_lower_notebooks(path):
    # a notebook never needs a later-numbered one: the notebooks run, and read, in their order
    nbs = notebooks()
    mine = nbs[path.stem]
    later = sorted({f"{m} ({nbs[m]})" for m, _ in gdml_imports(path) if m in nbs and number(nbs[m]) >= number(mine)})
    assert not later, f"{path.name} ({mine}) imports {', '.join(later)}"


@pytest.mark.parametrize('path', LIBRARY, ids=[p.stem for p in LIBRARY])
def test_a_module_takes_no_private_names_of_another(path):
    private = sorted({f"{m}.{n}" for m, names in gdml_imports(path) for n in names if n.startswith('_') and m != path.stem})
    assert not private, f"{path.name} imports private names: {', '.join(private)}"
