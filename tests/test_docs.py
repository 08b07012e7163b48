"""The documentation: README.md is what nbs/index.ipynb renders, and the docs site builds offline and serves its pages."""
import http.server, os, re, subprocess, sys, threading, urllib.request
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NBS = ROOT/'nbs'


def test_readme_is_the_rendered_index_notebook():
    out = subprocess.run([str(BIN/'jupyter'), 'nbconvert', '--log-level=ERROR', '--to', 'markdown', '--stdout', str(NBS/'index.ipynb')],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == (ROOT/'README.md').read_text(), "README.md is stale: edit nbs/index.ipynb, then `make readme`"


def test_index_is_not_a_module_notebook():
    # nbdev_export skips it (no default_exp), and its first cell, nbdev's frontmatter, holds no list items
    import json
    cells = json.loads((NBS/'index.ipynb').read_text())['cells']
    assert not any('default_exp' in ''.join(c['source']) for c in cells)
    first = ''.join(cells[0]['source'])
    assert cells[0]['cell_type'] == 'markdown' and first.startswith('# ') and not any(
        l.lstrip().startswith(('- ', '* ')) for l in first.splitlines())


def test_readme_module_map_matches_the_code():
    # every library notebook has a row naming the module it exports, and every module of gdml/ has a row
    import json
    rows = dict(re.findall(r"^\| `nbs/(\d\w*\.ipynb)` \| `gdml\.(\w+)` \|", (ROOT/'README.md').read_text(), re.M))
    exported = {}
    for nb in sorted(NBS.glob('[0-9]*.ipynb')):
        first = ''.join(json.loads(nb.read_text())['cells'][0]['source'])
        exported[nb.name] = re.search(r"#\| default_exp (\w+)", first).group(1)
    assert rows == exported, f"README's module table {rows} differs from the notebooks' modules {exported}"
    modules = {p.stem for p in (ROOT/'gdml').glob('*.py')} - {'__init__', '_modidx'}
    assert set(rows.values()) == modules, f"modules without a row: {modules - set(rows.values())}"


def nav_pages() -> list[str]:
    "The notebooks mkdocs.yml's nav names, in order."
    import yaml
    def walk(items):
        for it in items:
            v = next(iter(it.values())) if isinstance(it, dict) else it
            yield from (walk(v) if isinstance(v, list) else [v])
    return list(walk(yaml.safe_load((ROOT/'mkdocs.yml').read_text())['nav']))


def test_docs_nav_names_every_notebook_in_order():
    pages = nav_pages()
    library = [p.name for p in sorted(NBS.glob('[0-9]*.ipynb'))]
    experiments = sorted(f'experiments/{p.name}' for p in NBS.glob('experiments/*.ipynb'))
    assert pages[0] == 'index.ipynb', pages
    assert pages[1:1 + len(library)] == library, "the library notebooks, in file order, follow the home page"
    assert sorted(pages[1 + len(library):]) == experiments, "then every experiment notebook"


@pytest.mark.slow
def test_docs_site_builds_and_serves_its_pages(tmp_path):
    if not (BIN/'mkdocs').exists(): pytest.skip('mkdocs is not installed (pip install -e .[dev])')
    site = tmp_path/'site'
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    # --strict: a nav entry without its notebook, or any other warning, fails the build
    r = subprocess.run([str(BIN/'mkdocs'), 'build', '-q', '--strict', '-f', str(ROOT/'mkdocs.yml'), '-d', str(site)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    index_file = (site/'index.html').read_text()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        index = urllib.request.urlopen(base + 'index.html', timeout=30).read().decode()
        assert index == index_file
        assert '<title>gdml — Guided Deep Metric Learning</title>' in index and 'Two commands' in index
        text = re.sub(r'<[^>]+>', '', index)                   # the code cells are highlighted span by span
        assert 'make demo' in text and 'make test' in text and 'make docs' in text
        for nb in nav_pages()[1:]:
            page = nb.removesuffix('.ipynb') + '.html'
            assert f'href="{page}"' in index, f"{page} is not linked from the home page's navigation"
            html = urllib.request.urlopen(base + page, timeout=30).read().decode()
            assert 'jupyter-wrapper' in html or 'jp-Notebook' in html, page   # a rendered notebook
            assert 'href="index.html"' in html or 'href="../index.html"' in html, f"{page} links back home"
    finally:
        server.shutdown()
        server.server_close()
