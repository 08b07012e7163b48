"""The embedding explorer (gdml.explore, `gdml explore`) as a user meets it. Fast: the data a page carries (the sample,
each point's neighbours, the corrupted queries, the page's size and self-containment) and the command's one-line errors,
on two tiny digits runs. Slow (GDML_TEST_FLAGS=slow): the page in headless Chromium (Debian's chromium and
chromium-driver; .ci/run installs them), where the plot must draw its points and a clicked point must list the nearest
train images that gdml.inference finds; and the explorer in JupyterLab (tools/check_lab.py)."""
import json, os, re, stat, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from gdml.cli import main
from gdml.config import ConfigError, make_config
from gdml.corruptions import corrupt
from gdml.data import load_dataset
from gdml.slices import query_subset
from gdml.explore import Explorer, explore, write_page
from gdml.explore_data import CONTEXT, PAGE_LIMIT_MB, POINTS, explorer_data, find_runs, fit_points
from gdml.inference import load_embedder, nearest_train
from gdml.store import MODEL, load_record, run_and_write

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import check_lab  # noqa: E402

K, MOVED = 4, 10


@pytest.fixture(scope='module')
def records(tmp_path_factory) -> Path:
    "Two tiny digits runs (one epoch each) of seed 0, a records folder as `gdml sweep --out` leaves it."
    root = tmp_path_factory.mktemp('records')
    for method in ('triplet', 'gdml'):
        run_and_write(make_config('digits', method, 0, gemini_epochs=1, epochs=1, device='cpu'), root)
    return root


@pytest.fixture(scope='module')
def runs(records) -> list[Path]: return find_runs(records, 'digits', 0)


@pytest.fixture(scope='module')
def data(runs):
    return explorer_data(runs, points=80, k=K, moved=MOVED, context=150)


@pytest.fixture(scope='module')
def digits(): return load_dataset('digits')


def cli(capsys, *args):
    "`gdml ARGS` in this process: (exit status, stdout, stderr)."
    try: code = main(list(map(str, args)))
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(r, *words):
    code, out, err = r
    assert code == 2 and len(err.strip().splitlines()) == 1 and 'Traceback' not in err, (code, out, err)
    assert all(w in err for w in words), err


# ---------------------------------------------------------------- the data side

def test_runs_come_in_the_paper_order_one_per_arm(runs, records):
    assert [r.parent.name for r in runs] == ['triplet', 'gdml']
    assert find_runs(runs[0]) == [runs[0]]
    assert find_runs(records) == runs   # the only dataset, seed 0 by default


def test_the_sample_is_stratified_and_drawn_from_the_seed(data, digits):
    y = digits.y_test.numpy()
    assert np.array_equal(data.sample, query_subset(digits.x_test, y, 80, 0)) and np.array_equal(data.labels, y[data.sample])
    assert np.bincount(data.labels).tolist() == [8] * 10
    assert len(data.moved) == MOVED and set(data.moved) <= set(range(80)) and len(data.context) == 150
    assert len(data.test_thumbs) == 80 and all(t.startswith('data:image/webp;base64,') for t in data.test_thumbs)


def test_each_point_lists_the_neighbours_gdml_inference_finds(data, runs, digits):
    for arm, run in zip(data.arms, runs):
        emb = load_embedder(run)
        idx, dist = nearest_train(emb, emb(digits.x_test[data.sample]), K)
        assert np.array_equal(arm.neighbours, idx)
        np.testing.assert_allclose(arm.distances, dist, rtol=1e-6)
        assert {data.train_labels[i] for i in idx[:, 0]} <= set(range(10))
    listed = {int(i) for a in data.arms for i in a.neighbours.ravel()}
    assert set(data.train_thumbs) == listed == set(data.train_labels)
    assert all(data.train_labels[i] == int(digits.y_train[i]) for i in listed)


def test_eval_mode_runs_keep_their_record_s_coordinates(data, runs):
    for arm, run in zip(data.arms, runs):
        test = load_record(run, arrays=True)['arrays']['test_embeddings']
        np.testing.assert_allclose(arm.xy, test[data.sample], atol=1e-5)
        np.testing.assert_allclose(arm.context_xy, test[data.context], atol=1e-5)
        assert arm.note == ''


def test_the_slider_s_severities_are_the_corrupted_queries_re_embedded(data, runs, digits):
    queries = digits.x_test[data.sample[data.moved]]
    assert data.severities == (1, 2, 3, 4, 5) and len(data.moved_thumbs) == 6
    for arm, run in zip(data.arms, runs):
        emb = load_embedder(run)
        np.testing.assert_allclose(arm.moved_xy[0], arm.xy[data.moved])
        for s in data.severities:
            z = emb(corrupt(queries, data.corruption, s, seed=0))
            np.testing.assert_allclose(arm.moved_xy[s], z, atol=1e-6)
            votes = emb.train_labels[nearest_train(emb, z, K)[0]]
            assert arm.moved_pred[s].tolist() == [np.bincount(v).argmax() for v in votes]
        assert not np.allclose(arm.moved_xy[5], arm.moved_xy[0])   # severity 5 noise moves the queries


def test_a_run_the_embedder_cannot_load_is_named_not_shown(runs, tmp_path):
    import shutil
    broken = tmp_path/'digits'/'triplet'/runs[0].name
    shutil.copytree(runs[0], broken)
    (broken/MODEL).write_bytes(b'junk')
    d = explorer_data([broken, runs[1]], points=20, k=2, moved=2, context=0)
    assert len(d.arms) == 1 and len(d.skipped) == 1 and 'not a model.pt that gdml saved' in d.skipped[0]
    assert str(tmp_path) not in d.skipped[0]   # named by its folder under the dataset's, no path of this machine
    with pytest.raises(Exception, match='not a model.pt'): explorer_data([broken], points=20)


def test_fit_points_keeps_pages_under_the_limit():
    assert fit_points(1, 5, 200) == POINTS
    few, many = fit_points(12, 5, 375), fit_points(10, 5, 375)
    assert 100 < few < many < POINTS
    assert fit_points(12, 5, 375, max_mb=4) < few


def test_the_page_is_offline_small_and_holds_no_path(records, data):
    ex = Explorer(data)
    page = ex.html()
    assert len(page.encode()) < PAGE_LIMIT_MB * 1e6
    assert not re.search(r'<(script|link)\b[^>]*(src|href)="(https?:)?//', page), "the page fetches a script"
    assert page.count('Copyright (c) Anaconda, Inc., and Bokeh Contributors') >= 2   # BokehJS and its widgets, inline
    for path in (str(records), str(Path.home()), os.getcwd()):
        assert path not in page
    for a in data.arms: assert json.dumps(a.name)[1:-1] in page
    frame = ex._repr_html_()
    assert frame.startswith('<iframe srcdoc="') and 'height:' in frame


def test_write_page_is_whole_or_nothing(tmp_path):
    page = '<!DOCTYPE html>' + 'x' * 2_000_000
    with pytest.raises(ConfigError, match=r'would be 2.0 MB, over the 1 MB limit'):
        write_page(page, tmp_path/'p.html', max_mb=1)
    assert list(tmp_path.iterdir()) == []
    assert write_page(page, tmp_path/'p.html', max_mb=3).read_text() == page
    assert [p.name for p in tmp_path.iterdir()] == ['p.html']   # no temporary file left beside it


# ---------------------------------------------------------------- the command

def test_gdml_explore_writes_the_page(records, tmp_path, capsys):
    out = tmp_path/'site'/'digits.html'
    code, said, err = cli(capsys, 'explore', '--runs', records, '--dataset', 'digits', '--seed', 0, '--out', out,
                          '--points', 60, '--context', 100, '--corruption', 'rotation')
    assert code == 0, err
    assert f'written: {out}' in said and 'MB)' in said and '2 runs of digits' in said
    assert out.stat().st_size < PAGE_LIMIT_MB * 1e6 and 'rotation: severity of' in out.read_text()


def test_gdml_explore_help():
    exe = Path(sys.executable).parent/'gdml'
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-c', 'import sys; from gdml.cli import main; sys.exit(main())']
    r = subprocess.run(cmd + ['explore', '--help'], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0 and 'usage: gdml explore' in r.stdout and '--max-mb' in r.stdout


def test_gdml_explore_bad_input_is_one_line(records, tmp_path, capsys):
    out = tmp_path/'p.html'
    base = ['explore', '--runs', records, '--out', out]
    one_line_error(cli(capsys, *base, '--dataset', 'svhn'), "'svhn' is not a dataset", 'datasets with records: digits')
    one_line_error(cli(capsys, *base, '--dataset', 'cifar10'), "'cifar10' has no records", 'digits')
    one_line_error(cli(capsys, *base, '--seed', 7), 'no digits records of seed 7', 'seeds with records: 0')
    one_line_error(cli(capsys, 'explore', '--runs', tmp_path, '--out', out), 'holds no run records')
    one_line_error(cli(capsys, 'explore', '--runs', tmp_path/'none', '--out', out), 'does not exist')
    one_line_error(cli(capsys, *base, '--corruption', 'fog'), "'fog' is not one of", 'gaussian_noise')
    one_line_error(cli(capsys, *base, '--points', 0), 'points must be an integer >= 1')
    one_line_error(cli(capsys, *base, '--k', 5000), 'exceeds the run')
    one_line_error(cli(capsys, *base, '--device', 'tpu'), 'tpu')
    one_line_error(cli(capsys, 'explore', '--runs', records, '--out', tmp_path), 'is a folder')
    one_line_error(cli(capsys, *base, '--points', 80, '--max-mb', 0.5), 'over the 0.5 MB limit', '--points')
    locked = tmp_path/'locked'
    locked.mkdir(); locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try: one_line_error(cli(capsys, 'explore', '--runs', records, '--out', locked/'p.html'), 'not writable')
    finally: locked.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['locked'] and not list(locked.iterdir())   # nothing written


def test_the_notebook_is_kept_without_the_explorer_s_output():
    # its `ex` cell draws the explorer in JupyterLab (make check-lab); the page it holds (BokehJS inline, 2 MB) is not
    # kept in the repository, nor doubled on the docs site: the notebook shows check-lab's screenshot instead
    nb = ROOT/'nbs'/'09b_explore.ipynb'
    cells = json.loads(nb.read_text())['cells']
    shows = [c for c in cells if c['cell_type'] == 'code' and ''.join(c['source']).strip() == 'ex']
    assert len(shows) == 1 and not shows[0]['outputs'], \
        "clear the output of 09b_explore's `ex` cell before committing the notebook (2 MB of BokehJS)"
    assert nb.stat().st_size < 300_000 and 'Bokeh Contributors' not in nb.read_text()
    assert any(c['outputs'] for c in cells if c['cell_type'] == 'code'), "the other cells keep their outputs"


# ---------------------------------------------------------------- as a user sees it (slow)

def _need_chromium():
    "A page from disk needs the browser only (JupyterLab is check_lab.missing()'s concern)."
    for exe in (check_lab.CHROMIUM, check_lab.DRIVER):
        if not Path(exe).exists(): pytest.skip(f"{exe} is missing (apt-get install chromium chromium-driver)")


@pytest.mark.slow   # a browser (seconds to start)
def test_the_page_draws_its_points_and_a_click_lists_gdml_inference_s_neighbours(records, runs, digits, tmp_path, capsys):
    _need_chromium()
    out = tmp_path/'digits.html'
    code, _, err = cli(capsys, 'explore', '--runs', records, '--out', out, '--points', 80, '--k', K, '--context', 150)
    assert code == 0, err
    d = check_lab.browser(1400, 1000)
    try:
        d.get(out.as_uri())
        assert sorted(check_lab.explorer_ready(d)) == ['panel0', 'panel1']
        colours = d.execute_script(check_lab._VIEWS + "return [...new Set(model('points').data.color)]")
        canvas = d.execute_script(check_lab._VIEWS + "return view('panel0').canvas_view.el")
        drawn = check_lab.coloured_pixels(canvas.screenshot_as_png, colours)
        assert drawn > 500, f"the plot is blank: {drawn} pixels in the classes' colours (a plot without its points has none)"

        clicked = check_lab.explore_and_click(d)
        i = clicked['clicked']
        assert clicked['selected'] == [i], clicked['selected']   # the loneliest point, alone
        sample = d.execute_script(check_lab._VIEWS + "return [...model('points').data.index]")
        cells = clicked['neighbours']
        assert len(cells) == 2 * K and all(c['image'] for c in cells), cells   # every thumbnail decoded and drawn
        for a, run in enumerate(runs):
            # gdml.inference on the page's sample, as `gdml embed` would embed it (one image alone differs in the 7th digit)
            emb = load_embedder(run)
            idx, dist = nearest_train(emb, emb(digits.x_test[sample]), K)
            shown = [c for c in cells if c['arm'] == a]
            assert [c['index'] for c in shown] == idx[i].tolist()
            np.testing.assert_allclose([c['distance'] for c in shown], dist[i], rtol=1e-5)   # the page keeps 6 digits

        # the slider puts the moved queries at their severity-5 places, and shows them
        d.execute_script(check_lab._VIEWS + "model('severity').value = 5")
        moved = d.execute_script(check_lab._VIEWS + """const m = model('moved').data;
            return [[...m.x0], [...m.x0_5], model('panel0').renderers.filter(r => r.visible).length]""")
        assert moved[0] == moved[1] and moved[2] == 4   # context, points, and now the paths and the triangles
    finally:
        d.quit()


@pytest.mark.slow   # JupyterLab and a browser (a minute)
def test_jupyterlab_shows_the_explorer(tmp_path):
    why = check_lab.missing()
    if why: pytest.skip(why)
    shot = tmp_path/'lab.png'
    # as `make check-lab`: the cells through the one that shows an Explorer, then a click in its frame
    res = check_lab.check('nbs/09b_explore.ipynb', cells=check_lab.cells_through('nbs/09b_explore.ipynb', 'ex'),
                          expect='triplet/seed0-', screenshot=str(shot), explorer=True)
    assert len(res['explorer']['panels']) == 2 and len(res['explorer']['neighbours']) == 2 * 5
    assert shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
