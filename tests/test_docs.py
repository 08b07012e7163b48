"""The documentation: README.md is what nbs/index.ipynb renders, and the docs site builds offline and serves its pages."""
import http.server, os, subprocess, sys, threading, urllib.request
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_readme_is_the_rendered_index_notebook():
    out = subprocess.run([str(BIN/'jupyter'), 'nbconvert', '--to', 'markdown', '--stdout', str(ROOT/'nbs'/'index.ipynb')],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == (ROOT/'README.md').read_text(), "README.md is stale: edit nbs/index.ipynb, then `make readme`"


def test_docs_site_builds_and_serves_its_pages(tmp_path):
    if not (BIN/'mkdocs').exists(): pytest.skip('mkdocs is not installed (pip install -e .[dev])')
    site = tmp_path/'site'
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    r = subprocess.run([str(BIN/'mkdocs'), 'build', '-q', '-f', str(ROOT/'mkdocs.yml'), '-d', str(site)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        index = urllib.request.urlopen(base + 'index.html', timeout=30).read().decode()
        assert '<title>gdml' in index and 'Two commands' in index
        for page in ('03_gemini.html', '11_inference.html', 'experiments/claims.html'):
            assert page in index, page                       # linked from the home page's navigation
            html = urllib.request.urlopen(base + page, timeout=30).read().decode()
            assert 'jupyter-wrapper' in html or 'jp-Notebook' in html, page   # a rendered notebook
    finally:
        server.shutdown()
