"""The documentation: README.md is what nbs/index.ipynb renders, and the docs site builds offline and serves its pages."""
import fcntl, http.server, os, re, subprocess, sys, threading, urllib.request
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


@pytest.fixture(scope='package')
def site(tmp_path_factory) -> Path:
    """The docs site (`mkdocs build --strict`, as `make docs`), built once for the whole test run: under xdist
    (`make test-slow`) the first worker to need it builds it into the workers' common folder while any other waits on a
    lock, then reuses it (a module-scoped fixture was built again whenever a worker ran another module's test between
    two of these). A failed build leaves no site, so every test that needs one fails with the build's error."""
    if not (BIN/'mkdocs').exists(): pytest.skip('mkdocs is not installed (pip install -e .[dev])')
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base   # xdist: pytest-N/popen-gwK
    site = shared/'docs-site'
    with open(shared/'docs-site.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (site/'index.html').is_file():
            building = shared/f'.docs-site-{os.getpid()}'
            env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
            # --strict: a nav entry without its notebook, LaTeX that does not convert, or any other warning fails the build
            r = subprocess.run([str(BIN/'mkdocs'), 'build', '-q', '--strict', '-f', str(ROOT/'mkdocs.yml'), '-d', str(building)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, r.stderr[-3000:]
            os.replace(building, site)
    return site


def page_files(site: Path) -> dict[str, str]:
    "{notebook: its page's HTML} for every notebook of the nav."
    return {nb: (site/(nb.removesuffix('.ipynb') + '.html')).read_text() for nb in nav_pages()}


def content(html: str) -> str:
    """The page's notebook: from mkdocs-jupyter's wrapper element to the page's footer (no nav, no theme scripts). The
    element, not the first 'jupyter-wrapper': that is in the CSS before it, which would otherwise read as prose."""
    return html[html.index('<div class="jupyter-wrapper">'):html.rindex('</article>')]


def prose(html: str) -> str:
    "The text a reader reads in the page's markdown and outputs: no code cell, code span, math, script or style."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(content(html), 'html.parser')
    # a markdown cell's text lies in its own .jp-InputArea too: only the code cells' input areas are code
    for t in soup.select('math, code, pre, script, style, .jp-CodeCell .jp-InputArea, .clipboard-copy-txt, details.gdml-source'):
        t.decompose()
    return soup.get_text(' ')


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_site_builds_and_serves_its_pages(site):
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
            assert 'gdml.css' in html, f"{page} lacks the site's stylesheet"
        # the download beside each page is the notebook itself, not the build's transformed copy
        assert (site/'03_gemini.ipynb').read_bytes() == (NBS/'03_gemini.ipynb').read_bytes()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_pages_show_no_directives(site):
    # nbdev's directives are build instructions, not what a reader reads; prose may name one in a code span (`#| slow`)
    for nb, html in page_files(site).items():
        # the cells' code as highlighted and as the copy button copies it
        code = re.findall(r'<pre>(.*?)</pre>|<div[^>]*class="clipboard-copy-txt"[^>]*>(.*?)</div>', content(html), re.S)
        text = re.sub(r'<[^>]+>', '', ' '.join(a + b for a, b in code))
        assert not re.search(r'#\|\s*(export|exporti|exports|default_exp|hide)\b', text), f"{nb} shows a directive"
        assert not re.search(r'(?m)^\s*#\|', text), f"{nb} shows a `#|` line in a code cell"


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_math_is_rendered_offline(site):
    pages = page_files(site)
    gemini = content(pages['03_gemini.ipynb'])
    # MathML, made at build time: f_k and Eq. 1's g(x_(i)) = g(f_i(x_(i))) are <math> elements, not TeX left as text
    assert gemini.count('<math') > 20
    assert re.search(r'<msub><mi>f</mi><mi>k</mi></msub>', gemini)
    for nb, html in pages.items():
        text = prose(html)
        left = re.findall(r'\$[^$\n]*[\\_^{][^$\n]*\$', text)
        assert not left, f"{nb}: LaTeX left as text: {left[:3]}"
        assert '$f_k$' not in text and 'g(x_{(i)}) = g(f_i(x_{(i)}))' not in text, nb
        # nothing from a CDN: no script or stylesheet from another host, and no script that imports one
        assert not re.search(r'<(script|link)\b[^>]*(src|href)="(https?:)?//', html), f"{nb} loads from another host"
        assert not re.search(r'import\b[^;<]*?["\']https?://', html), f"{nb} imports a script from another host"


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_pages_have_no_warning_walls(site):
    for nb, html in page_files(site).items():
        assert not re.search(r'<div[^>]*data-mime-type="application/vnd.jupyter.stderr"', html), \
            f"{nb} shows a stderr stream (kernel warnings)"
        assert not re.search(r'\w+Warning: ', prose(html)), f"{nb} shows a Python warning"
        assert '\x1b[' not in html, f"{nb} shows ANSI escape codes"


def _exported_defs(nb: Path) -> list[str]:
    import ast, json
    names = []
    for c in json.loads(nb.read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] != 'code' or not re.match(r'\s*#\|\s*export\s*$', src.splitlines()[0] if src else ''): continue
        body = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith('#|'))
        names += [n.name for n in ast.parse(body).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and not n.name.startswith('_') and not any('patch' in ast.unparse(d) for d in n.decorator_list)]
    return names


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_exported_functions_are_api_entries(site):
    # nbdev's convention: each exported function or class as its API entry (a heading, its signature, its docstring),
    # then the cell's source folded in a <details> block, not the whole source shown
    pages = page_files(site)
    for nb in sorted(NBS.glob('[0-9]*.ipynb')):
        html = content(pages[nb.name])
        names = _exported_defs(nb)
        assert names, nb.name
        folded = ' '.join(re.findall(r'<details class="gdml-source">(.*?)</details>', html, re.S))
        folded_text = re.sub(r'<[^>]+>', '', folded)
        shown = re.sub(r'<details class="gdml-source">.*?</details>', '', html, flags=re.S)
        for name in names:
            m = re.search(rf'<h3 id="{re.escape(name.lower())}"[^>]*>{re.escape(name)}<', shown)
            assert m, f"{nb.name}: no API entry for {name}"
            entry = re.sub(r'<[^>]+>', '', shown[m.end():m.end() + 6000])
            assert re.search(rf'(def|class) {re.escape(name)}\(', entry), f"{nb.name}: {name}'s entry has no signature"
            assert re.search(rf'(def|class) {re.escape(name)}\b', folded_text), f"{nb.name}: {name}'s source is not folded"
            assert not re.search(rf'(?m)^(def|class) {re.escape(name)}\b.*:\s*$', re.sub(r'<[^>]+>', '', shown)), \
                f"{nb.name}: {name}'s source is shown unfolded"
    # a docments table where the source documents its parameters
    assert '<th><strong>Details</strong></th>' in ''.join(pages.values()) or '<strong>Details</strong>' in ''.join(pages.values())


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_toc_entries_are_the_whole_headings(site):
    # the page's table of contents names each heading in full (code spans kept) and links to it
    for nb, html in page_files(site).items():
        toc = html[html.index('md-nav--secondary'):]
        toc = toc[:toc.index('</nav>')] if '</nav>' in toc else toc
        entries = re.findall(r'<a href="#([^"]*)" class="md-nav__link">\s*<span class="md-ellipsis">\s*(.*?)\s*</span>', toc, re.S)
        headings = {i: re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', '', h.replace('¶', ''))).strip()
                    for i, h in re.findall(r'<h[1-6] id="([^"]+)"[^>]*>(.*?)</h[1-6]>', content(html), re.S)}
        for href, name in entries:
            name = re.sub(r'\s+', ' ', __import__('html').unescape(re.sub(r'<[^>]+>', '', name))).strip()
            assert name and not re.search(r'(:|,)\s*(,|$)', name), f"{nb}: TOC entry {name!r} lost its code spans"
            assert href in headings, f"{nb}: TOC entry {name!r} links to #{href}, no heading has that id"
            assert headings[href].replace('¶', '').strip() == name, f"{nb}: TOC {name!r} vs heading {headings[href]!r}"


def test_docs_notebook_transform():
    # the build's notebook transform (tools/docs_hooks.py) on a small notebook: no site build needed
    import importlib.util
    spec = importlib.util.spec_from_file_location('docs_hooks', ROOT/'tools'/'docs_hooks.py')
    hooks = importlib.util.module_from_spec(spec); spec.loader.exec_module(hooks)
    code = lambda src, outputs=(): dict(cell_type='code', metadata={}, source=src, outputs=list(outputs), execution_count=None)
    nb = dict(metadata={}, nbformat=4, nbformat_minor=5, cells=[
        code('#| default_exp losses'),
        code('#| export\ndef f(x: int = 1,  # the input\n      y=2):\n    "Add."\n    return x + y\ndef _g(): pass'),
        code('#| hide\nsecret = 1'),
        code('f(1)', [dict(output_type='stream', name='stderr', text='UserWarning: ...\n'),
                      dict(output_type='stream', name='stdout', text='\x1b[31m3\x1b[0m\n')]),
        dict(cell_type='markdown', metadata={}, source='## About `f`')])
    out = hooks.docs_notebook(nb, module=None)['cells']
    assert [c['cell_type'] for c in out] == ['markdown', 'code', 'code', 'markdown']
    assert out[0]['source'].startswith('### f\n') and 'def f(x: int=1, y=2)' in out[0]['source'] and 'Add.' in out[0]['source']
    assert '_g' not in out[0]['source']
    assert out[1]['source'].startswith('def f(') and 'gdml-source' in out[1]['metadata']['tags']
    assert out[2]['outputs'] == [dict(output_type='stream', name='stdout', text='3\n')]
    assert not any('#|' in c['source'] for c in out)
    assert hooks.latex_to_mathml('f_k', False).startswith('<math')
