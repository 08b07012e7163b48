"""Run records end to end: configuration, the papermill run notebook, atomic records, failures."""
import json, os, re, shutil, stat, subprocess, sys, tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gdml.protocol import METRICS
from gdml.files import atomic_write
from gdml.config import CONFIG_FIELDS, ConfigError, config_hash, make_config, run_dir
from gdml.provenance import source_hash
from gdml.train import CLAIM_COLUMNS
from gdml.store import RESULT, ARRAYS, MODEL, NOTEBOOK, FAILURE, FAILED_NOTEBOOK, has_record, load_record, write_record, scan_records
from gdml.execute import execute_run, run_notebook_path
from gdml.sweep import MANIFEST, write_manifest

TINY = dict(gemini_epochs=1, epochs=1, device='cpu')
_META = dict(run_id='r0', dataset='digits', method='gdml', seed=0, profile='quick', config_hash='h', source_hash=source_hash(),
             metrics=dict.fromkeys(METRICS, 50.0))


def _record(config, run_id='r0'):
    "A made-up record of `config` with known metrics and arrays."
    return dict(_META, run_id=run_id, method=config.method, seed=config.seed, config_hash=config_hash(config),
                config=config.__dict__, arrays=dict(test_embeddings=np.random.rand(6, 2), test_labels=np.arange(6) % 2))


@pytest.mark.parametrize('kw, msg', [(dict(dataset='svhn'), "dataset 'svhn' is not one of: mnist"),
                                     (dict(method='npair'), 'gdml, siamese, triplet, margin, multisim'),
                                     (dict(profile='full'), 'paper, quick'),
                                     (dict(batch_size=0), 'batch_size must be > 0'),
                                     (dict(arch='vgg'), 'resnet18, small_cnn'),
                                     (dict(seed=-1), 'seed must be >= 0'),
                                     (dict(batch_size=1), 'batch_size must be >= 2')])
def test_bad_values_are_one_line_errors(kw, msg):
    with pytest.raises(ConfigError) as e: make_config(**kw)
    assert msg in str(e.value) and '\n' not in str(e.value)


def test_run_notebook_parameters_match_the_config():
    import papermill
    params = papermill.inspect_notebook(str(run_notebook_path()))
    assert set(params) == set(CONFIG_FIELDS) | {'out_dir', 'force', 'torch_threads', 'zhat_cache'}
    assert all(p['help'] for p in params.values())           # every parameter is commented
    assert params['epochs']['default'] == 'None' and params['dataset']['default'] == "'digits'"


@pytest.fixture(scope='module')
def notebook_run(tmp_path_factory):
    "One tiny G-DML run through the `run` notebook (papermill): (config, status, a folder holding its record)."
    config = make_config('digits', 'gdml', seed=1, **TINY)
    out = tmp_path_factory.mktemp('notebook-run')
    return config, execute_run(config, out), out


@pytest.fixture
def runs(notebook_run, tmp_path):
    "A copy of the shared run's output folder, for a test to change."
    shutil.copytree(notebook_run[2], tmp_path/'runs')
    return tmp_path/'runs'


def test_execute_run_writes_a_full_record_then_skips(notebook_run, runs):
    config, st, _ = notebook_run
    assert st['status'] == 'done', st
    d = run_dir(config, runs)
    assert sorted(p.name for p in d.iterdir()) == sorted([RESULT, ARRAYS, MODEL, NOTEBOOK])
    rec = load_record(d, arrays=True)
    assert rec['config'] == {**config.__dict__} and rec['seed'] == 1 and rec['config_hash'] == config_hash(config)
    paper = {'recall_at_1', 'f1', 'nmi', 'r_precision', 'map_at_r', 'recall_macro'}
    assert paper <= set(rec['metrics']) and set(rec['metrics']) - paper <= set(CLAIM_COLUMNS)   # and the claims measured
    assert all(0 < rec['metrics'][k] < 100 for k in paper) and rec['metrics']['recall_at_1'] > 30   # chance: 10; 57.6
    assert set(rec['timings']) >= {'gemini', 'student', 'evaluation', 'total'}
    assert not any(os.sep in v for v in rec['versions'].values())   # versions, not paths of this machine
    assert {'python', 'torch', 'gdml'} <= set(rec['versions']) and rec['device']['type'] == 'cpu'
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    assert re.fullmatch('[0-9a-f]{40}', rec['git_commit']) and rec['git_commit'] == head   # not 'unknown'
    assert rec['notebook'] == NOTEBOOK and rec['device']['torch_threads'] == 1
    assert rec['arrays']['test_embeddings'].shape == (rec['n_test'], 2)
    assert len(rec['arrays']['test_labels']) == rec['n_test']
    executed = json.loads((d/NOTEBOOK).read_text())
    assert any('papermill' in c.get('metadata', {}) for c in executed['cells'])
    mtime = (d/RESULT).stat().st_mtime_ns
    assert execute_run(config, runs)['status'] == 'skipped'
    assert (d/RESULT).stat().st_mtime_ns == mtime
    assert execute_run(config, runs, force=True)['status'] == 'done'
    assert load_record(d)['run_id'] != rec['run_id']


def test_a_failed_run_leaves_its_notebook_and_no_record(tmp_path):
    data = tmp_path/'empty'; (data/'train').mkdir(parents=True); (data/'test').mkdir()
    config = make_config(str(data), 'siamese', **TINY)
    st = execute_run(config, tmp_path/'runs')
    assert st['status'] == 'failed' and st['error']
    d = Path(st['dir'])
    assert (d/NOTEBOOK).exists() and (d/FAILURE).exists() and not (d/RESULT).exists()
    assert not has_record(config, tmp_path/'runs')


def test_record_writes_are_atomic(tmp_path, monkeypatch):
    config = make_config(**TINY)
    record = dict(config=config.__dict__, **{**_META, 'config_hash': config_hash(config)},
                  arrays=dict(test_embeddings=np.zeros((2, 2)), test_labels=np.zeros(2)))
    real_replace = os.replace
    def fail_on_result(src, dst):
        if Path(dst).name == RESULT: raise OSError('disk full')
        real_replace(src, dst)
    monkeypatch.setattr(os, 'replace', fail_on_result)
    with pytest.raises(OSError): write_record(record, tmp_path)
    d = run_dir(config, tmp_path)
    assert not (d/RESULT).exists() and not list(d.glob('.*.tmp'))   # no record, no temporary left behind
    monkeypatch.setattr(os, 'replace', real_replace)
    write_record(record, tmp_path)
    assert has_record(config, tmp_path)


@pytest.mark.slow
def test_scaling_notebook_runs_a_tiny_grid(tmp_path):
    "The scaling study end to end on digits: sweep, FLOP counts, the gap table and its verdict line."
    import papermill
    nb = run_notebook_path().parent/'scaling.ipynb'
    out = tmp_path/'scaling.ipynb'
    papermill.execute_notebook(str(nb), str(out), parameters=dict(
        dataset='digits', profile='quick', widths=[4, 8], epoch_budgets=[1], seeds=1, gemini_epochs=1, workers=1,
        out_dir=str(tmp_path/'runs')), kernel_name='python3', progress_bar=False, cwd=str(tmp_path))
    text = out.read_text()
    assert 'the gap' in text and 'points per 10x compute' in text
    recs = [json.loads(p.read_text()) for p in (tmp_path/'runs').glob('**/result.json')]
    assert len(recs) == 4 and {r['method'] for r in recs} == {'gdml', 'margin'}
    assert sorted(r.get('zhat_from_cache') for r in recs if r['method'] == 'gdml') == [False, True]   # GEMINI trained once


@pytest.mark.slow
def test_claims_and_ablations_notebooks_run_a_tiny_grid(tmp_path):
    """The claims report and the ablations on digits, sharing one records folder: sweep, claims in every record,
    a verdict per claim (the class-disjoint and mined sections say 'not measured' without runs), the same records read
    back with run=False (the grid's missing runs counted, none trained), and the ablations reusing the shared runs."""
    import papermill
    folder, runs, tiny = run_notebook_path().parent, tmp_path/'runs', dict(gemini_epochs=1, epochs=1)
    papermill.execute_notebook(str(folder/'claims.ipynb'), str(tmp_path/'claims.ipynb'), parameters=dict(
        datasets=['digits'], seeds=2, disjoint_datasets=[], miner_datasets=[], overrides=tiny, workers=2,
        out_dir=str(runs)), kernel_name='python3', progress_bar=False, cwd=str(tmp_path))
    text = (tmp_path/'claims.ipynb').read_text()
    for claim in ('covariate shift (shifted Recall@1)', 'ID vs OOD (AUROC)', 'compactness (silhouette)',
                  'stability (CI width of Recall@1)'):
        assert claim in text, claim
    assert any(f'digits: {v}' in text for v in ('supported', 'not supported', 'inconclusive'))
    assert 'not measured' in text                      # no class-disjoint runs were asked for
    assert 'reported, no test (2 seeds' in text and 'could detect differences of' in text and 'ci_half' in text
    recs = [json.loads(p.read_text()) for p in runs.glob('**/result.json')]
    assert len(recs) == 12 and all(len(r['claims']['shift']['rows']) == 40 for r in recs)   # six methods, two seeds
    # run=False only reads: the mined grid, never run, is counted as missing and its claim is not measured
    papermill.execute_notebook(str(folder/'claims.ipynb'), str(tmp_path/'read.ipynb'), parameters=dict(
        datasets=['digits'], seeds=2, disjoint_datasets=[], miner_datasets=['digits'], overrides=tiny, run=False,
        out_dir=str(runs)), kernel_name='python3', progress_bar=False, cwd=str(tmp_path))
    text = (tmp_path/'read.ipynb').read_text()
    assert 'main: 12 of 12 records' in text and 'miner: 0 of 8 records, 8 missing' in text and 'nothing is trained' in text
    assert len(list(runs.glob('**/result.json'))) == 12
    papermill.execute_notebook(str(folder/'ablations.ipynb'), str(tmp_path/'ablations.ipynb'), parameters=dict(
        seeds=2, factors={'beta': [0.0, 0.005]}, miners={'triplet': 'semihard'}, overrides=tiny, workers=2, out_dir=str(runs)),
        kernel_name='python3', progress_bar=False, cwd=str(tmp_path))
    recs = [json.loads(p.read_text()) for p in runs.glob('**/result.json')]
    # beta 0.005 and the unmined triplet runs are the claims' own: only beta 0 and the mined triplet ran (2 seeds each)
    assert len(recs) == 16 and sum(r['config']['miner'] == 'semihard' for r in recs) == 2
    assert 'Recall@1 change from adding the miner' in (tmp_path/'ablations.ipynb').read_text()


def test_a_class_disjoint_run_measures_the_unseen_classes(tmp_path):
    "`seen_classes` trains on those classes only and adds leave-one-out retrieval on the others to the record."
    from gdml.train import run_experiment
    rec = run_experiment(make_config('digits', 'gdml', 0, gemini_epochs=1, epochs=1, seen_classes='0,1,2,3,4', device='cpu'))
    assert rec['classes'] == ['0', '1', '2', '3', '4']   # class names as str, as for every dataset
    assert set(rec['arrays']['test_labels'].tolist()) == {0, 1, 2, 3, 4}
    assert rec['claims']['unseen']['classes'] == ['5', '6', '7', '8', '9'] and rec['claims']['unseen']['n'] > 100
    assert 25 < rec['metrics']['unseen_recall_at_1'] <= 100 and 'unseen_map_at_r' in rec['metrics']   # chance: 20; 41
    with pytest.raises(ConfigError, match="seen_classes '0,12'"):
        run_experiment(make_config('digits', 'gdml', 0, gemini_epochs=1, epochs=1, seen_classes='0,12', device='cpu'))


DIGITS, FASHION = dict(gemini_epochs=1, epochs=1), dict(gemini_epochs=1, epochs=1, arch='small_cnn')
# digits on the profiles' ResNet-18 (the authors' one: ~60 s, mostly its claims, so slow) and, fast, a small CNN;
# Fashion-MNIST (60,000 images: minutes) in the slow set
PROFILE_CASES = [pytest.param('digits', DIGITS, 'paper', id='digits-paper'),
                 pytest.param('digits', DIGITS, 'authors', id='digits-authors', marks=pytest.mark.slow),
                 pytest.param('digits', dict(DIGITS, arch='small_cnn'), 'authors', id='digits-authors-small_cnn'),
                 pytest.param('fashion_mnist', FASHION, 'paper', id='fashion_mnist-paper', marks=pytest.mark.slow),
                 pytest.param('fashion_mnist', FASHION, 'authors', id='fashion_mnist-authors', marks=pytest.mark.slow)]


@pytest.mark.parametrize('dataset, sizes, profile', PROFILE_CASES)
def test_both_protocols_run_through_the_cli(tmp_path, profile, dataset, sizes):
    "`gdml run --profile paper|authors` on digits and Fashion-MNIST (epochs cut to 1 so that it fits a test)."
    if dataset != 'digits' and not (Path(os.environ.get('GDML_DATA') or '/nonexistent')/'FashionMNIST').is_dir():
        pytest.skip('GDML_DATA has no FashionMNIST folder')
    from gdml.cli import main
    args = ['run', '--dataset', dataset, '--profile', profile, '--out', str(tmp_path), '--device', 'cpu', '--in-process']
    for k, v in sizes.items(): args += [f"--{k.replace('_', '-')}", str(v)]
    assert main(args) == 0
    rec = json.loads(next(tmp_path.glob('**/result.json')).read_text())
    want = make_config(dataset, 'gdml', 0, profile, **sizes)
    assert rec['config'] == {**want.__dict__, 'device': 'cpu'} and rec['profile'] == profile
    assert 25 < rec['metrics']['recall_macro'] <= 100   # chance: 10; digits after 1+1 epochs: 40 (paper) to 73
    if profile == 'authors': assert rec['val_loss'] is not None       # the authors' 90/10 split held out 10%


@pytest.mark.parametrize('spoil, fault', [
    (lambda d: (d/RESULT).write_text((d/RESULT).read_text()[:120]), 'result.json: not valid JSON'),
    (lambda d: (d/RESULT).write_text(json.dumps({k: v for k, v in json.loads((d/RESULT).read_text()).items() if k != 'metrics'})),
     "result.json: 'metrics' is missing"),
    (lambda d: (d/ARRAYS).write_bytes(b'junk'), 'embeddings.npz: unreadable'),
    (lambda d: (d/ARRAYS).unlink(), 'embeddings.npz: unreadable (FileNotFoundError'),
], ids=['truncated', 'no metrics', 'junk embeddings', 'no embeddings'])
def test_a_broken_record_is_named_and_counts_as_missing(tmp_path, spoil, fault):
    good, bad = make_config(seed=0), make_config(seed=1)
    write_record(_record(good), tmp_path); spoil(write_record(_record(bad), tmp_path))
    assert has_record(good, tmp_path) and not has_record(bad, tmp_path)   # the sweep runs it again
    records, broken = scan_records(tmp_path)
    assert [r['seed'] for r in records] == [0] and len(broken) == 1
    assert fault in broken[0]['error'] and str(run_dir(bad, tmp_path)) in broken[0]['error']


def test_arrays_of_another_run_are_caught(tmp_path):
    config = make_config()
    d = write_record(_record(config, 'old'), tmp_path)
    arrays = (d/ARRAYS).read_bytes()
    write_record(_record(config, 'new'), tmp_path)
    (d/ARRAYS).write_bytes(arrays)   # as if a rerun had stopped between the two files
    with pytest.raises(ValueError, match="holds the arrays of run old, but result.json is run new"): load_record(d)


FAILING_NB = {"cells": [{"cell_type": "code", "execution_count": None, "id": "p", "metadata": {"tags": ["parameters"]},
                         "outputs": [], "source": "dataset = None"},
                        {"cell_type": "code", "execution_count": None, "id": "f", "metadata": {}, "outputs": [],
                         "source": "raise RuntimeError('the rerun broke')"}],
              "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
              "nbformat": 4, "nbformat_minor": 5}


def test_a_failed_rerun_leaves_the_good_record_whole(notebook_run, runs, tmp_path):
    config = notebook_run[0]
    d = run_dir(config, runs)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    (tmp_path/'fail.ipynb').write_text(json.dumps(FAILING_NB))
    st = execute_run(config, runs, force=True, notebook=tmp_path/'fail.ipynb', retries=0)
    assert st['status'] == 'failed' and 'the rerun broke' in st['error'] and st['notebook'] == str(d/FAILED_NOTEBOOK)
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.name != FAILED_NOTEBOOK} == before   # record, arrays, notebook
    assert not (d/FAILURE).exists() and has_record(config, runs)
    assert 'the rerun broke' in (d/FAILED_NOTEBOOK).read_text()


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_files_follow_the_umask(tmp_path, umask):
    from PIL import Image
    from gdml.data import load_dataset
    config = make_config()
    for split in ('train', 'test'):
        for c in ('a', 'b'):
            (tmp_path/'img'/split/c).mkdir(parents=True)
            for i in range(2): Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(tmp_path/'img'/split/c/f'{i}.png')
    old = os.umask(umask)
    try:
        d = write_record(_record(config), tmp_path/'runs')
        write_manifest([config], tmp_path/'runs')
        atomic_write(d/FAILURE, '{}')
        cache = load_dataset(tmp_path/'img').cache_file
    finally: os.umask(old)
    for f in (d/RESULT, d/ARRAYS, d/FAILURE, tmp_path/'runs'/MANIFEST, cache):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_in_process_gives_the_numbers_of_the_notebook(notebook_run, tmp_path, capsys):
    from gdml.cli import main
    config, _, out = notebook_run
    torch.set_num_threads(2)   # torch's default on two cores when OMP_NUM_THREADS is unset
    try: code = main(['run', '--in-process', '--seed', '1', '--gemini-epochs', '1', '--epochs', '1', '--device', 'cpu',
                      '--out', str(tmp_path)])
    finally: torch.set_num_threads(1)
    assert code == 0 and capsys.readouterr().out.startswith('done: ')
    nb, ip = load_record(run_dir(config, out)), load_record(run_dir(config, tmp_path))
    assert ip['config_hash'] == nb['config_hash'] and ip['metrics'] == nb['metrics']
    assert ip['device']['torch_threads'] == nb['device']['torch_threads'] == 1   # pinned and recorded on both paths



KERNEL_SCRIPT = """
import json, os, sys, nbformat, papermill
from jupyter_client.manager import AsyncKernelManager
import gdml.execute as E
manager, cwd, signals = sys.argv[1:4]
if manager == 'tcp': E._ipc_ok = lambda: False            # as on a machine without Unix sockets
class Manager(AsyncKernelManager if manager == 'plain' else E.quiet_kernel_manager()):
    async def _async_signal_kernel(self, signum):         # note the signals sent to the kernel
        with open(signals, 'a') as f: f.write(f'{int(signum)} ')
        await super()._async_signal_kernel(signum)
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
    "from ipykernel.kernelapp import IPKernelApp; a = IPKernelApp.instance(); print(a.transport, a.ip, a.curve_secretkey is not None)")])
nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
nbformat.write(nb, os.path.join(cwd, 'in.ipynb'))
papermill.execute_notebook(os.path.join(cwd, 'in.ipynb'), os.path.join(cwd, 'out.ipynb'), kernel_name='python3',
                           progress_bar=False, log_output=False, cwd=cwd, kernel_manager_class=Manager)
print('KERNEL', json.load(open(os.path.join(cwd, 'out.ipynb')))['cells'][0]['outputs'][0]['text'][0].strip())
"""
NOISE = ('without encryption', 'KeyboardInterrupt')


@pytest.mark.parametrize('manager', ['plain', 'ipc', 'tcp'])
def test_run_kernels_print_no_noise(manager, tmp_path):
    """The run notebooks' kernels (`quiet_kernel_manager`, as `execute_run` starts them) print no TCP-encryption warning
    and get no SIGINT at shutdown (which prints "KeyboardInterrupt caught in kernel" when it lands while the kernel
    handles a message), over IPC (sockets in a private temporary folder, removed with the kernel, none in the run's
    folder) or over TCP with CurveZMQ. jupyter_client's plain manager, the control, warns and sends the SIGINT."""
    cwd, signals = tmp_path/'record', tmp_path/'signals'
    cwd.mkdir()
    # the kernels' private temporary folder: a short path (pytest's tmp_path is too long for a Unix socket path)
    tmp = Path(tempfile.mkdtemp(prefix='gk'))
    try:
        r = subprocess.run([sys.executable, '-c', KERNEL_SCRIPT, manager, str(cwd), str(signals)], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, TMPDIR=str(tmp)))
    finally: leftovers = list(tmp.iterdir()); shutil.rmtree(tmp, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    transport, ip, curve = out.split('KERNEL ')[1].split()[:3]
    if manager == 'plain':
        assert transport == 'tcp' and 'without encryption' in out and signals.read_text() == '2 ', out[-3000:]
        return
    assert not [l for l in out.splitlines() if any(n in l for n in NOISE)], out[-3000:]
    assert not signals.exists(), signals.read_text()
    assert sorted(p.name for p in cwd.iterdir()) == ['in.ipynb', 'out.ipynb']   # no socket in the record's folder
    assert leftovers == []                                                      # the sockets' folder is gone
    if manager == 'ipc': assert transport == 'ipc' and Path(ip).parent.parent == tmp and curve == 'False', out
    else: assert transport == 'tcp' and curve == 'True', out
