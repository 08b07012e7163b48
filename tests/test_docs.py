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
    rows = dict(re.findall(r"^\| `nbs/(\d\w*\.ipynb)` \| `gdml\.(\w+)` \|", (ROOT/'nbs'/'library.md').read_text(), re.M))
    exported = {}
    for nb in sorted(NBS.glob('[0-9]*.ipynb')):
        first = ''.join(json.loads(nb.read_text())['cells'][0]['source'])
        exported[nb.name] = re.search(r"#\| default_exp (\w+)", first).group(1)
    assert rows == exported, f"nbs/library.md's module table {rows} differs from the notebooks' modules {exported}"
    modules = {p.stem for p in (ROOT/'gdml').glob('*.py')} - {'__init__', '_modidx'}
    assert set(rows.values()) == modules, f"modules without a row: {modules - set(rows.values())}"


def nav_entries() -> list[str]:
    "The pages mkdocs.yml's nav names (notebooks and markdown pages), in order."
    import yaml
    def walk(items):
        for it in items:
            v = next(iter(it.values())) if isinstance(it, dict) else it
            yield from (walk(v) if isinstance(v, list) else [v])
    return list(walk(yaml.safe_load((ROOT/'mkdocs.yml').read_text())['nav']))


def nav_pages() -> list[str]:
    "The notebooks mkdocs.yml's nav names, in order."
    return [p for p in nav_entries() if p.endswith('.ipynb')]


def test_docs_nav_names_every_notebook_in_order():
    pages = nav_pages()
    library = [p.name for p in sorted(NBS.glob('[0-9]*.ipynb'))]
    experiments = sorted(f'experiments/{p.name}' for p in NBS.glob('experiments/*.ipynb'))
    assert pages[0] == 'index.ipynb', pages
    assert pages[1:1 + len(library)] == library, "the library notebooks, in file order, follow the home page"
    assert sorted(pages[1 + len(library):]) == experiments, "then every experiment notebook"
    # every markdown page of nbs/ is in the nav too: the newcomer's path first, then the results, development last
    entries = nav_entries()
    assert sorted(p for p in entries if p.endswith('.md')) == sorted(p.name for p in NBS.glob('*.md'))
    assert entries[1:3] == ['start.md', 'results.md'] and entries[-1] == 'development.md', entries


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
            # a section of the same name may hold the plain id: the entry then has the TOC's suffix (load_dataset_1)
            m = re.search(rf'<h3 id="{re.escape(name.lower())}(_\d+)?"[^>]*>{re.escape(name)}<', shown)
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


# ---------------------------------------------------------------- the site as a reader meets it: links, images, layout

def _hooks():
    import importlib.util
    spec = importlib.util.spec_from_file_location('docs_hooks', ROOT/'tools'/'docs_hooks.py')
    hooks = importlib.util.module_from_spec(spec); spec.loader.exec_module(hooks)
    return hooks


def site_pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob('*.html') if p.name != '404.html')


def page_refs(html: str) -> tuple[set[str], list[tuple[str, str]]]:
    "The element ids of a page, and its (tag, URL) references: links, images, stylesheets, scripts."
    from html.parser import HTMLParser
    ids, refs = set(), []
    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if a.get('id'): ids.add(a['id'])
            if tag == 'a' and a.get('name'): ids.add(a['name'])
            for attr in ('href', 'src'):
                if a.get(attr) is not None and tag in ('a', 'img', 'link', 'script', 'source', 'iframe'):
                    refs.append((tag, a[attr]))
    P().feed(html)
    return ids, refs


def broken_refs(site: Path) -> list[str]:
    "Every internal reference of the built site that names no file, or an anchor its page lacks: '<page>: <tag> <url>'."
    from urllib.parse import unquote, urlsplit
    pages = {p: page_refs(p.read_text(encoding='utf-8')) for p in site_pages(site)}
    bad = []
    for page, (_, refs) in pages.items():
        for tag, url in refs:
            u = urlsplit(url)
            if u.scheme or u.netloc or url.startswith(('data:', 'javascript:')): continue
            target = (page.parent/unquote(u.path)).resolve() if u.path else page
            if target.is_dir(): target = target/'index.html'
            if not target.is_file() or not target.is_relative_to(site.resolve()):
                bad.append(f'{page.relative_to(site)}: {tag} {url}'); continue
            if u.fragment and target.suffix == '.html':
                ids = pages[target][0] if target in pages else page_refs(target.read_text(encoding='utf-8'))[0]
                if unquote(u.fragment) not in ids: bad.append(f'{page.relative_to(site)}: {tag} {url} (no such anchor)')
    return bad


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_every_link_and_image_resolves(site):
    # every href/src of every page, resolved as a browser resolves it, names a file of the site, and every #anchor an
    # element of its page: the home page's repository links (nbs/..., results/...) included
    bad = broken_refs(site)
    assert not bad, f"{len(bad)} broken references, e.g. {bad[:10]}"
    index = (site/'index.html').read_text(encoding='utf-8')
    _, refs = page_refs(index[index.index('<div class="jupyter-wrapper">'):])
    assert not [u for _, u in refs if u.startswith('nbs/') or u.endswith('.ipynb') and not (site/u).is_file()], \
        "the home page links a repository path that is no page of the site"
    images = [u for t, u in refs if t == 'img' and u.startswith('results/')]
    assert images and all((site/u).stat().st_size > 10_000 for u in images), images


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_results_page_shows_the_committed_results(site):
    html = (site/'results.html').read_text(encoding='utf-8')
    text = re.sub(r'<[^>]+>', '', html)
    hooks = _hooks()
    study = ROOT/'results'/'cpu'
    datasets = hooks.study_datasets(study)
    assert set(datasets) >= {'mnist', 'fashion_mnist', 'cifar10'}
    for ds in datasets:
        # the headline table's rows and title, as committed, and the figure of the dataset's embeddings
        rows = [l for l in (study/'tables'/f'headline_{ds}.md').read_text().splitlines() if l.startswith('| ') and '---' not in l]
        for cell in rows[-1].strip('| ').split(' | '):
            assert html.count(__import__('html').escape(cell, quote=False)) >= 1, (ds, cell)
        assert f'src="results/cpu/figures/figure_{ds}.png"' in html
    assert all(f'Table {n}' in text for n in (1, 2, 3)) and all(f'Figure {n}' in text for n in (3, 4, 5))
    # each executed notebook is a page of its own, linked from here, in the nav's Results section
    for nb in hooks.readings(study):
        page = f'results/cpu/{nb.stem}.html'
        assert (site/page).is_file() and f'href="{page}"' in html, page
        assert hooks.reading_title(nb) in (site/page).read_text(encoding='utf-8')
    # the places of what is not made yet are marked, not broken
    assert ('src="results/cpu/figures/verdicts.png"' in html) == (study/'figures'/'verdicts.png').is_file()
    assert (study/'figures'/'verdicts.png').is_file() or 'The verdicts figure: not made yet' in text


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_pages_share_their_stylesheets(site):
    # mkdocs-jupyter inlines the notebook theme's 575 KB of CSS into each page: the site serves it once, as a file
    for page in site_pages(site):
        html = page.read_text(encoding='utf-8')
        if 'class="md-content"' not in html: continue        # a standalone page (an explorer's) is what it is
        styles = re.findall(r'<style\b[^>]*>(.*?)</style>', html, re.S)
        assert max(map(len, styles), default=0) < 2000, f"{page.name} inlines a stylesheet"
        assert 'base64,' not in ''.join(re.findall(r'<img[^>]*>', html)), f"{page.name} inlines an output image"
    sheets = list((site/'assets'/'notebook').glob('*.css'))
    assert sheets and max(p.stat().st_size for p in sheets) > 500_000      # the notebook theme's, in one file
    # it was 28 MB; the explorer pages (up to 8 MB each, results/cpu/explore) come on top
    size = sum(p.stat().st_size for p in site.rglob('*') if p.is_file() and 'explore' not in p.relative_to(site).parts)
    assert size < 20e6, f"the site is {size/1e6:.1f} MB"


@pytest.mark.slow   # builds the whole site (minutes)
def test_docs_heading_ids_are_unique(site):
    # a section and an API entry of one name (`evaluate`) each get their own anchor, the one the TOC links
    for page in site_pages(site):
        ids = re.findall(r'<h[1-6] id="([^"]+)"', page.read_text(encoding='utf-8'))
        assert len(ids) == len(set(ids)), f"{page.name}: {sorted(i for i in set(ids) if ids.count(i) > 1)}"
    metrics = (site/'06_metrics.html').read_text(encoding='utf-8')
    assert '<h2 id="evaluate">' in metrics and re.search(r'<h3 id="evaluate_1">evaluate<a class="anchor-link" href="#evaluate_1"', metrics)


def test_docs_links_results_and_folds():
    # the build's pieces that need no site: repository links on the site, the results page, the folds' summaries
    hooks = _hooks()
    web = dict(repo_url='https://github.com/o/r', branch='main')
    link = lambda t, rd='', sd='', pub=frozenset({'results/cpu/claims_mnist.ipynb'}), **kw: hooks.site_link(t, rd, sd, pub, ROOT, **web, **kw)
    assert link('nbs/04_distill.ipynb') == '04_distill.html'                    # README's links, from the root
    assert link('nbs/experiments/claims.ipynb#verdicts') == 'experiments/claims.html#verdicts'
    assert link('results/cpu/claims_mnist.ipynb') == 'results/cpu/claims_mnist.html'
    assert link('../04_distill.ipynb', 'nbs/experiments', 'experiments') == '../04_distill.html'
    assert link('02_losses.ipynb', 'nbs', '', page_suffix=None) == '02_losses.ipynb'   # mkdocs resolves a markdown page's
    assert link('Makefile') == 'https://github.com/o/r/blob/main/Makefile'       # in the repository, not on the site
    assert link('results/cpu/tables') == 'https://github.com/o/r/tree/main/results/cpu/tables'
    for kept in ('https://example.org/a.ipynb', '#evaluate', 'mailto:x@y.z'): assert link(kept) == kept
    md = 'See [a](nbs/02_losses.ipynb), `[b](nbs/x.ipynb)` and\n```\n[c](nbs/y.ipynb)\n```\n<img src="results/z.png">'
    assert hooks.rewrite_links(md, lambda t: 'X') == 'See [a](X), `[b](nbs/x.ipynb)` and\n```\n[c](nbs/y.ipynb)\n```\n<img src="X">'
    # a fold names what its cell defines, so a cell of several functions (or of none public) is not read as the last's
    assert hooks.source_names('def a(): pass\ndef _b(): pass\nC = 1') == ('Source of', ['a', '_b', 'C'])
    assert hooks.source_names('import os\nfrom x import y') == ('Source: imports', [])
    from bs4 import BeautifulSoup
    soup = BeautifulSoup('<h2 id="e">e<a class="anchor-link" href="#e">¶</a></h2><h3 id="e">e<a class="anchor-link" href="#e">¶</a></h3>', 'html.parser')
    hooks.unique_heading_ids(soup)
    assert [h['id'] for h in soup.find_all(['h2', 'h3'])] == ['e', 'e_1'] and soup.h3.a['href'] == '#e_1'
    assets = {}
    page = hooks.shared_styles('<style>' + 'a{}' * 1000 + '</style><style>b{}</style>', assets, '../')
    assert page.startswith('<link rel="stylesheet" href="../assets/notebook/') and page.endswith('<style>b{}</style>')
    assert list(assets.values()) == [('a{}' * 1000).encode()]


def test_docs_results_section_marks_what_is_missing(tmp_path):
    # the results page is built from what the study folder holds: a figure not made yet leaves a note, not a broken link
    hooks = _hooks()
    study = tmp_path/'study'
    (study/'tables').mkdir(parents=True)
    (study/'tables'/'headline_mnist.md').write_text("**Table 1. Performance on MNIST**\n\n| Model | Recall@1 |\n|---|---|\n| G-DML | 93.30 |\n")
    (study/'tables'/'claims_mnist.md').write_text('| Model | OOD AUROC |\n|---|---|\n| G-DML | 80.1 |\n')
    (study/'claims_mnist.ipynb').write_text('{}')
    md = hooks.results_section(study, '../study', 'results/study')
    assert '## Table 1 and Figure 3: MNIST' in md and '| G-DML | 93.30 |' in md
    assert '!!! note "The verdicts figure: not made yet"' in md and 'results/study/figures/verdicts.png' in md
    assert '](../study/figures/' not in md and '](../study/explore/' not in md
    assert '??? info "The paper\'s claims measured on MNIST"\n\n    | Model | OOD AUROC |' in md
    assert '[Claims on MNIST](../study/claims_mnist.ipynb)' in md
    (study/'figures').mkdir(); (study/'explore').mkdir()
    for f in ('figures/verdicts.png', 'figures/figure_mnist.png', 'figures/figure_mnist_seen_0-4.png', 'explore/mnist.html'):
        (study/f).write_bytes(b'x')
    md = hooks.results_section(study, '../study', 'results/study')
    assert 'not made yet' not in md
    assert all(f'](../study/{f})' in md for f in ('figures/verdicts.png', 'figures/figure_mnist.png', 'explore/mnist.html'))
    assert '![The arms with seen 0-4 on MNIST: their 2-D test embeddings, seed 0](../study/figures/figure_mnist_seen_0-4.png)' in md


def chromium_missing() -> str | None:
    "Why the browser test cannot run here, or None (.ci/run installs Debian's chromium and chromium-driver)."
    import shutil
    for exe in ('chromium', 'chromedriver'):
        if not shutil.which(exe): return f'{exe} is missing (apt-get install chromium chromium-driver)'
    try: import selenium  # noqa: F401
    except ImportError: return 'selenium is missing (pip install -e .[dev])'
    return None


def chromium(profile: Path, width: int = 1400, height: int = 1000):
    "Headless Chromium with a fresh profile that reaches for nothing beyond the page it is given."
    import shutil
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which('chromium')
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              f'--user-data-dir={profile}', f'--window-size={width},{height}'):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=opts)


# in the page: its images (loaded or not), every link as the browser resolves it, its ids, and its tables' fit
_PAGE_JS = '''
const inner = document.querySelector('.md-content__inner');   // none in a standalone page (an explorer's)
const right = inner ? inner.getBoundingClientRect().right : Infinity;
const scrolls = el => { for (let e = el; e && e !== inner; e = e.parentElement)
  if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) return true; return false; };
return {
  images: [...document.images].map(i => [(i.getAttribute('src') || '').slice(0, 80), i.complete && i.naturalWidth > 0]),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.name),
  column: inner ? inner.getBoundingClientRect().width : null,
  cut: inner ? [...inner.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > right + 1 && !scrolls(t))
               .map(t => t.innerText.slice(0, 60)) : [],
  // how far the page's notebook is wider than the column (it then scrolls as a whole)
  overflow: (n => n ? n.scrollWidth - n.clientWidth : 0)(document.querySelector('.jp-Notebook')),
  title: document.title};
'''


@pytest.fixture
def served(site):
    "The site on a local port, as `python -m http.server` serves it: its base URL."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), partial(Quiet, directory=str(site)))
    server.handle_error = lambda *a: None        # a request the browser gave up on (a broken pipe) is no failure
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try: yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown(); server.server_close()


def _follow_every_link(d, site: Path, base: str) -> dict:
    "Open every page, check its images and layout, then follow every internal link it has; returns what was seen."
    from urllib.parse import unquote, urldefrag
    seen, links, problems = {}, set(), []
    for page in site_pages(site):
        url = base + page.relative_to(site).as_posix()
        d.get(url)
        r = d.execute_script(_PAGE_JS)
        seen[url] = r
        problems += [f'{page.name}: image {src} does not load' for src, ok in r['images'] if not ok]
        problems += [f'{page.name}: table cut off at the column edge: {t!r}' for t in r['cut']]
        problems += [f'{page.name}: the notebook is {r["overflow"]} px wider than the column'] if r['overflow'] > 0 else []
        links |= {(url, h) for h in r['links'] if h.startswith(base)}
    for src, href in sorted(links):
        target, frag = urldefrag(href)
        if target.endswith('/'): target += 'index.html'
        if target in seen:
            if frag and unquote(frag) not in seen[target]['ids']: problems.append(f'{src}: {href} (no such anchor)')
            continue
        try: urllib.request.urlopen(target, timeout=30).close()       # a download beside its page, a figure, ...
        except Exception as e: problems.append(f'{src}: {href} ({e})')
    return dict(seen=seen, links=links, problems=problems)


@pytest.mark.slow   # builds the whole site (minutes), then opens each page in headless Chromium
def test_docs_in_a_browser(site, served, tmp_path):
    why = chromium_missing()
    if why: pytest.skip(why)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    d = chromium(tmp_path/'profile')
    try:
        r = _follow_every_link(d, site, served)
        assert not r['problems'], f"{len(r['problems'])} problems, e.g. {r['problems'][:8]}"
        assert len(r['seen']) == len(site_pages(site)) and len(r['links']) > 500
        # at a 1400 px window the content column is wide enough for the tables and figures (it was about 660 px)
        assert min(p['column'] for p in r['seen'].values() if p['column'] is not None) > 820
        # a click on each link of the home page's text opens its page (no 'Error response' of the server)
        d.get(served + 'index.html')
        hrefs = [a.get_attribute('href') for a in d.find_elements(By.CSS_SELECTOR, '.jupyter-wrapper a[href]')]
        hrefs = [h for h in hrefs if h.startswith(served) and '#' not in h]
        assert len(hrefs) >= 8, hrefs
        for h in hrefs:
            d.get(served + 'index.html')
            a = d.find_element(By.CSS_SELECTOR, f'.jupyter-wrapper a[href="{h.removeprefix(served)}"]')
            d.execute_script('arguments[0].scrollIntoView({block: "center"})', a)
            a.click()
            WebDriverWait(d, 30).until(lambda d: d.current_url.split('#')[0] == h)
            assert d.find_elements(By.CSS_SELECTOR, '.md-content'), f'{h} is no page of the site'
        # the TOC's second `evaluate` (the API entry) scrolls to that entry, not to the section of the same name
        d.get(served + '06_metrics.html')
        toc = d.find_element(By.CSS_SELECTOR, '.md-sidebar--secondary a[href="#evaluate_1"]')   # the TOC on the right
        d.execute_script('arguments[0].scrollIntoView({block: "center"})', toc)
        toc.click()
        WebDriverWait(d, 10).until(lambda d: d.current_url.endswith('#evaluate_1'))
        top = d.execute_script("return document.getElementById('evaluate_1').getBoundingClientRect().top")
        assert 0 <= top < 200, top
        # the search box finds a page from the words of its text
        d.get(served + 'index.html')
        box = d.find_element(By.CSS_SELECTOR, 'input.md-search__input')   # in the header at this width
        box.click(); box.send_keys('constraint points')
        WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, '.md-search-result__item'))
        found = [a.get_attribute('href') for a in d.find_elements(By.CSS_SELECTOR, '.md-search-result__item a')]
        assert any('02_losses.html' in h for h in found), found
        if (shots := os.environ.get('GDML_DOCS_SCREENSHOTS')):   # pictures of the pages for a reviewer
            for name in ('index', 'start', 'results', '06_metrics', '04_distill'):
                d.get(served + f'{name}.html'); d.save_screenshot(str(Path(shots)/f'docs_{name}.png'))
    finally:
        d.quit()
