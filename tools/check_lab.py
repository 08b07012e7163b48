"""JupyterLab in a real browser: start JupyterLab on 127.0.0.1 with the project's kernel, open a notebook in headless
Chromium (selenium + Debian's chromium and chromium-driver), run its first cells with Shift+Enter, check that their
outputs appear in the page, save a screenshot (a small palette PNG), shut JupyterLab and the browser down and check
that none of the processes they started (the server, the kernel, chromedriver, Chromium) is left.

usage: python tools/check_lab.py [--notebook nbs/03_gemini.ipynb] [--cells 7 | --through-cell-ending TEXT]
                                 [--expect 'torch.Size([5, 2])'] [--screenshot nbs/images/jupyterlab_03_gemini.png]
                                 [--explorer]
With --explorer the last output is gdml.explore's page (in a frame): a point in it is clicked, and its neighbour list
must appear. Exit status 0 when the expected output appeared; the reason otherwise. `make check-lab` runs it on
03_gemini and on 09b_explore.
"""
from __future__ import annotations
import argparse, contextlib, json, os, secrets, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'


def missing() -> str | None:
    "Why the check cannot run here, or None."
    for exe in (CHROMIUM, DRIVER):
        if not Path(exe).exists(): return f"{exe} is missing (apt-get install chromium chromium-driver)"
    try: import selenium  # noqa: F401
    except ImportError: return "selenium is missing (pip install selenium)"
    if not shutil.which('jupyter-lab', path=str(Path(sys.executable).parent)): return "jupyterlab is missing (pip install -e .[dev])"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root: Path, timeout: float = 120):
    "A JupyterLab server on 127.0.0.1 serving `root` (token auth, own runtime folder); yields its base URL and token."
    port, token = free_port(), secrets.token_hex(16)
    runtime = Path(tempfile.mkdtemp(prefix='gdml-lab-'))
    # no "notified about Jupyter news?" toast over the screenshot
    news = runtime/'settings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True); news.write_text(json.dumps({'fetchNews': 'false'}))
    # the project's kernel: the venv's kernelspec before any of the user's (`make install` writes it with --sys-prefix)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime/'runtime'), JUPYTER_PREFER_ENV_PATH='1', OMP_NUM_THREADS='1')
    cmd = [str(Path(sys.executable).parent/'jupyter-lab'), '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}', '--ServerApp.open_browser=False',
           '--LabApp.news_url=', '--allow-root', f'--LabApp.user_settings_dir={runtime/"settings"}', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    log = open(runtime/'lab.log', 'w')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    base = f'http://127.0.0.1:{port}'
    try:
        t0 = time.time()
        while True:
            try:
                with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=5) as r:
                    if r.status == 200: break
            except OSError: pass
            if proc.poll() is not None or time.time() - t0 > timeout:
                raise RuntimeError(f"JupyterLab did not start in {timeout:.0f} s; its log: {(runtime/'lab.log').read_text()[-1500:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        with contextlib.suppress(OSError):   # shut every kernel down, then the server: nothing is left running
            req = urllib.request.Request(f'{base}/api/shutdown?token={token}', method='POST')
            urllib.request.urlopen(req, timeout=10)
        try: proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9); proc.wait(10)
        log.close(); shutil.rmtree(runtime, ignore_errors=True)


def browser(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', f'--window-size={width},{height}'):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def descendants(pid: int) -> set[int]:
    "The processes below `pid` (children, theirs, ...), read from /proc; empty where there is no /proc."
    kids = {}
    for d in Path('/proc').glob('[0-9]*'):
        try: ppid = int((d/'stat').read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError): continue
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out: out.add(k); todo.append(k)
    return out


def alive(pids, wait: float = 15) -> list[str]:
    "Those of `pids` still running (zombies count as gone) after up to `wait` s, as 'pid command'."
    def running(p):
        try: return (Path(f'/proc/{p}/stat').read_text().rsplit(')', 1)[1].split()[0]) != 'Z'
        except (OSError, IndexError): return False
    t0 = time.time()
    while (left := [p for p in pids if running(p)]) and time.time() - t0 < wait: time.sleep(0.2)
    def name(p):
        try: return Path(f'/proc/{p}/cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')[:120]
        except OSError: return '?'
    return [f"{p} {name(p)}" for p in left]


def save_png(png: bytes, path: str, colours: int = 64):
    "Write a screenshot as a small PNG: a palette of `colours` (text and UI keep their look), as is without Pillow."
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        import io
        from PIL import Image
        img = Image.open(io.BytesIO(png)).convert('RGB').quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                                                                   dither=Image.Dither.NONE)
        img.save(path, optimize=True)
    except ImportError: Path(path).write_bytes(png)


# ---------------------------------------------------------------- the explorer (gdml.explore) in a browser
# Its page is a Bokeh document: these read it through BokehJS (the models by name, their views' screen coordinates) and
# act on it as a user does (a real click on the canvas). tests/test_explore.py drives a page from disk with them.

_VIEWS = """const doc = Bokeh.documents[0], views = Object.values(Bokeh.index)[0].owner,
  model = (name) => doc.get_model_by_name(name), view = (name) => views.find_one(model(name));"""


def explorer_ready(d, timeout: float = 60):
    "Wait until the page's Bokeh document is drawn (its panels' views exist); their names."
    from selenium.webdriver.support.ui import WebDriverWait
    js = "try { " + _VIEWS + " return view('panel0') ? doc.roots().length : 0 } catch (e) { return 0 }"
    WebDriverWait(d, timeout).until(lambda d: d.execute_script(js))
    return d.execute_script(_VIEWS + "return [...doc.all_models].map(m => m.name).filter(n => n && n.startsWith('panel'))")


def point_positions(d, panel: int = 0) -> list[tuple[float, float]]:
    """The window coordinates (CSS pixels) of every sample point of panel `panel`, in the points source's order: of the
    browser's window, also when the page lies in a frame (a notebook's output), as a pointer action wants them."""
    return d.execute_script(_VIEWS + f"""
const r = view('points{panel}'), c = view('panel{panel}').canvas_view.el.getBoundingClientRect(), src = model('points');
const f = window.frameElement ? window.frameElement.getBoundingClientRect() : {{left: 0, top: 0}};
const xs = src.data['x{panel}'], ys = src.data['y{panel}'], out = [];
for (let i = 0; i < xs.length; i++)
  out.push([f.left + c.left + r.coordinates.x_scale.compute(xs[i]), f.top + c.top + r.coordinates.y_scale.compute(ys[i])]);
return out""")


def loneliest_point(positions) -> int:
    "The index of the point farthest from its nearest other point: a click there hits it alone."
    import numpy as np
    p = np.asarray(positions, float)
    gap = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1)) + np.eye(len(p)) * 1e9
    return int(gap.min(1).argmax())


def click_at(d, x: float, y: float):
    "A mouse click at window coordinates (x, y)."
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    a = ActionBuilder(d)
    a.pointer_action.move_to_location(int(round(x)), int(round(y))).pause(0.2).click()
    a.perform()


def neighbour_cells(d) -> list[dict]:
    "The neighbour list as drawn (the Div's shadow DOM): one dict per cell, arm, train index, distance, image shown."
    return d.execute_script(_VIEWS + """
const root = view('neighbours').el.shadowRoot ?? view('neighbours').el;
return [...root.querySelectorAll('td.neighbour')].map(td => ({arm: +td.dataset.arm, index: +td.dataset.trainIndex,
  distance: +td.dataset.distance, image: !!(td.querySelector('img') && td.querySelector('img').naturalWidth > 0)}))""")


def coloured_pixels(png: bytes, colours: list[str], tolerance: int = 30) -> int:
    """How many pixels of a PNG screenshot are within `tolerance` (per channel) of one of `colours` ('#rrggbb'). Greys
    among them are left out: a plot's axes, grid and labels are grey, and would count on a plot without points."""
    import io
    import numpy as np
    from PIL import Image
    img = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'), int)
    want = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours])
    want = want[np.ptp(want, 1) > 40]
    return int((np.abs(img[:, :, None, :] - want[None, None]).max(-1) <= tolerance).any(-1).sum())


def explore_and_click(d, timeout: float = 60) -> dict:
    """On a drawn explorer page: click panel 0's loneliest point, wait for its neighbour list; what was seen."""
    from selenium.webdriver.support.ui import WebDriverWait
    panels = explorer_ready(d, timeout)
    i = loneliest_point(point_positions(d, 0))
    click_at(d, *point_positions(d, 0)[i])
    WebDriverWait(d, timeout).until(lambda d: neighbour_cells(d))
    selected = d.execute_script(_VIEWS + "return [...model('points').selected.indices]")
    return dict(panels=panels, clicked=i, selected=selected, neighbours=neighbour_cells(d))


def cells_through(notebook: str, ending: str) -> int:
    "How many cells, from the first, run through the first code cell whose source ends with `ending`."
    cells = json.loads((ROOT/notebook).read_text())['cells']
    for i, c in enumerate(cells, 1):
        if c['cell_type'] == 'code' and ''.join(c['source']).rstrip().endswith(ending): return i
    raise ValueError(f"{notebook}: no code cell ends with {ending!r}")


def check(notebook: str = 'nbs/03_gemini.ipynb', cells: int = 7, expect: str = 'torch.Size([5, 2])',
          screenshot: str | None = None, timeout: float = 240, explorer: bool = False) -> dict:
    """Open `notebook` in JupyterLab, run its first `cells` cells, wait for `expect` in an output area; returns what was
    seen. Raises AssertionError (with the page's outputs) when it does not appear, when a cell printed a traceback, when
    the code cells were not all run (prompts [1] .. [n]) or when a process it started outlives it. With `explorer`, the
    last output's frame holds a `gdml.explore` page: a point in it is clicked and its neighbour list must appear."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait
    t0, before = time.time(), descendants(os.getpid())
    n_code = sum(c['cell_type'] == 'code' for c in json.loads((ROOT/notebook).read_text())['cells'][:cells])
    # JupyterLab serves a copy: its autosave never touches the source notebook
    copy = Path(tempfile.mkdtemp(prefix='gdml-lab-nb-'))
    shutil.copy(ROOT/notebook, copy/Path(notebook).name)
    started = set()
    try:
        with jupyterlab(copy) as (base, token):
            d = browser()
            try:
                d.get(f'{base}/lab/tree/{Path(notebook).name}?token={token}&reset')
                wait = WebDriverWait(d, timeout)
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.jp-NotebookPanel .jp-Cell .jp-InputPrompt'))
                wait.until(lambda d: 'Idle' in d.find_element(By.ID, 'jp-main-statusbar').text)
                # select the first cell by its prompt (command mode), then Shift+Enter runs each cell and moves on
                d.find_elements(By.CSS_SELECTOR, '.jp-NotebookPanel .jp-Cell .jp-InputPrompt')[0].click()
                for _ in range(cells):
                    ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
                    time.sleep(0.3)
                def outputs(d): return [e.text for e in d.find_elements(By.CSS_SELECTOR, '.jp-NotebookPanel .jp-OutputArea-output')]
                try: wait.until(lambda d: any(expect in t for t in outputs(d)))
                except Exception:
                    if screenshot: save_png(d.get_screenshot_as_png(), str(Path(screenshot).with_suffix('.failed.png')))
                    raise AssertionError(f"{expect!r} did not appear in {timeout:.0f} s; outputs: {outputs(d)}") from None
                # the cells after the one that shows `expect` finish too (no prompt left at [*])
                def running(d): return any('[*]' in e.text for e in d.find_elements(By.CSS_SELECTOR, '.jp-NotebookPanel .jp-Cell .jp-InputPrompt'))
                wait.until(lambda d: not running(d))
                seen = outputs(d)
                bad = [t for t in seen if 'Traceback' in t or 'Error' in t.split('\n')[0]]
                assert not bad, f"a cell failed: {bad[0][:500]}"
                prompts = [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, '.jp-NotebookPanel .jp-Cell .jp-InputPrompt')]
                ran = [p for p in prompts if p not in ('', '[ ]:')]
                assert ran == [f'[{i}]:' for i in range(1, n_code + 1)], f"the {n_code} code cells did not all run: {prompts}"
                shown = _explorer_in_lab(d, timeout) if explorer else None
                if screenshot: save_png(d.get_screenshot_as_png(), screenshot)
            finally:
                started = descendants(os.getpid()) - before   # JupyterLab, the kernel, chromedriver, Chromium
                d.quit()
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        left = alive(started)
        for p in left:   # none should be: kill them all the same, then say so
            with contextlib.suppress(OSError): os.kill(int(p.split()[0]), 9)
    assert not left, f"still running after the shutdown: {left}"
    return dict(outputs=seen, prompts=ran, processes=len(started), seconds=round(time.time() - t0, 1), screenshot=screenshot,
                explorer=shown)


def _explorer_in_lab(d, timeout: float) -> dict:
    "The explorer in the last output's frame, scrolled to the top of the notebook, clicked (`explore_and_click`)."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    find = lambda d: d.find_elements(By.CSS_SELECTOR, '.jp-NotebookPanel .jp-OutputArea-output iframe')
    try: frames = WebDriverWait(d, timeout).until(find)
    except Exception: raise AssertionError("no output holds a frame (the explorer's page)") from None
    d.execute_script("arguments[0].scrollIntoView({block: 'start'})", frames[-1])
    time.sleep(1)
    d.switch_to.frame(frames[-1])
    try: return explore_and_click(d, timeout)
    finally: d.switch_to.default_content()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--notebook', default='nbs/03_gemini.ipynb')
    ap.add_argument('--cells', type=int, default=7)
    ap.add_argument('--through-cell-ending', default=None, metavar='TEXT',
                    help='instead of --cells: run through the first code cell whose source ends with TEXT')
    ap.add_argument('--expect', default='torch.Size([5, 2])')
    ap.add_argument('--screenshot', default='nbs/images/jupyterlab_03_gemini.png')
    ap.add_argument('--explorer', action='store_true', help="the last output is gdml.explore's page: click a point in it")
    a = ap.parse_args(argv)
    why = missing()
    if why: print(f"check-lab: cannot run: {why}", file=sys.stderr); return 2
    if a.through_cell_ending: a.cells = cells_through(a.notebook, a.through_cell_ending)
    res = check(a.notebook, a.cells, a.expect, a.screenshot, explorer=a.explorer)
    print(json.dumps(res, indent=1))
    shown = f"; the explorer listed {len(res['explorer']['neighbours'])} neighbours of a clicked point" if a.explorer else ''
    print(f"check-lab: ok: {a.expect!r} appeared after running {a.cells} cells of {a.notebook} ({len(res['prompts'])} code cells){shown}; "
          f"{res['processes']} processes started, none left; {res['seconds']} s; screenshot {a.screenshot}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
