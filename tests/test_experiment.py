"""Run records end to end: configuration, the papermill run notebook, atomic records, failures."""
import json, os, sys
from pathlib import Path

import numpy as np
import pytest

from gdml.experiment import (CONFIG_FIELDS, RESULT, ARRAYS, NOTEBOOK, FAILURE, ConfigError, config_hash,
                             execute_run, has_record, load_record, make_config, run_dir, run_notebook_path,
                             write_record, atomic_write, source_hash)

TINY = dict(gemini_epochs=1, epochs=1, device='cpu')


def test_profiles_and_overrides():
    paper = make_config('cifar10', 'gdml', profile='paper')
    assert (paper.arch, paper.embedding_dim, paper.gemini_epochs, paper.triplets_per_batch, paper.gemini_lr,
            paper.beta, paper.margin, paper.epochs, paper.batch_size, paper.lr, paper.weight_decay, paper.clip) == \
           ('resnet18', 2, 12, 64, 1e-3, 0.005, 3.0, 50, 128, 0.1, 1e-4, 0.1)
    assert make_config('digits', 'margin', lr=0.3, epochs=None).lr == 0.3
    assert make_config(profile='quick').arch == 'small_cnn'


@pytest.mark.parametrize('kw, msg', [(dict(dataset='svhn'), "dataset 'svhn' is not one of: mnist"),
                                     (dict(method='npair'), 'gdml, siamese, triplet, margin, multisim'),
                                     (dict(profile='full'), 'paper, quick'),
                                     (dict(batch_size=0), 'batch_size must be > 0'),
                                     (dict(arch='vgg'), 'resnet18, small_cnn'),
                                     (dict(seed=-1), 'seed must be >= 0')])
def test_bad_values_are_one_line_errors(kw, msg):
    with pytest.raises(ConfigError) as e: make_config(**kw)
    assert msg in str(e.value) and '\n' not in str(e.value)


def test_hash_names_the_folder():
    a, b = make_config(seed=3), make_config(seed=3, device='cpu')
    assert config_hash(a) == config_hash(b)                 # the device is not part of the run's identity
    assert config_hash(a) != config_hash(make_config(seed=3, margin=2.0))
    assert run_dir(a, 'o') == Path('o/digits/gdml')/f'seed3-{config_hash(a)}'


def test_run_notebook_parameters_match_the_config():
    import papermill
    params = papermill.inspect_notebook(str(run_notebook_path()))
    assert set(params) == set(CONFIG_FIELDS) | {'out_dir', 'force', 'torch_threads', 'zhat_cache'}
    assert all(p['help'] for p in params.values())           # every parameter is commented
    assert params['epochs']['default'] == 'None' and params['dataset']['default'] == "'digits'"


def test_execute_run_writes_a_full_record_then_skips(tmp_path):
    config = make_config('digits', 'triplet', seed=1, **TINY)
    st = execute_run(config, tmp_path)
    assert st['status'] == 'done', st
    d = run_dir(config, tmp_path)
    assert sorted(p.name for p in d.iterdir()) == sorted([RESULT, ARRAYS, NOTEBOOK])
    rec = load_record(d, arrays=True)
    assert rec['config'] == {**config.__dict__} and rec['seed'] == 1 and rec['config_hash'] == config_hash(config)
    assert set(rec['metrics']) == {'recall_at_1', 'f1', 'nmi', 'r_precision', 'map_at_r', 'recall_macro'}
    assert all(0 <= v <= 100 for v in rec['metrics'].values())
    assert set(rec['timings']) >= {'baseline', 'evaluation', 'total'}
    assert rec['versions']['python_executable'] == sys.executable   # the kernel is this environment's python
    assert {'python', 'torch', 'gdml'} <= set(rec['versions']) and rec['device']['type'] == 'cpu'
    assert rec['git_commit'] and rec['notebook'] == NOTEBOOK
    assert rec['arrays']['test_embeddings'].shape == (rec['n_test'], 2)
    assert len(rec['arrays']['test_labels']) == rec['n_test']
    executed = json.loads((d/NOTEBOOK).read_text())
    assert any('papermill' in c.get('metadata', {}) for c in executed['cells'])
    mtime = (d/RESULT).stat().st_mtime_ns
    assert execute_run(config, tmp_path)['status'] == 'skipped'
    assert (d/RESULT).stat().st_mtime_ns == mtime
    assert execute_run(config, tmp_path, force=True)['status'] == 'done'
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
    record = dict(config=config.__dict__, metrics={}, source_hash=source_hash(), arrays=dict(test_embeddings=np.zeros((2, 2)), test_labels=np.zeros(2)))
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


PROFILE_DATA = [('digits', dict(gemini_epochs=1, epochs=1)),
                ('fashion_mnist', dict(gemini_epochs=1, epochs=1, arch='small_cnn'))]


@pytest.mark.parametrize('profile', ['paper', 'authors'])
@pytest.mark.parametrize('dataset, sizes', PROFILE_DATA, ids=[d for d, _ in PROFILE_DATA])
def test_both_protocols_run_through_the_cli(tmp_path, profile, dataset, sizes):
    "`gdml run --profile paper|authors` on digits and Fashion-MNIST (epochs cut to 1 so that it fits a test)."
    if dataset != 'digits' and not os.environ.get('GDML_DATA'): pytest.skip('GDML_DATA is not set')
    from gdml.cli import main
    args = ['run', '--dataset', dataset, '--profile', profile, '--out', str(tmp_path), '--device', 'cpu', '--in-process']
    for k, v in sizes.items(): args += [f"--{k.replace('_', '-')}", str(v)]
    assert main(args) in (0, None)
    rec = json.loads(next(tmp_path.glob('**/result.json')).read_text())
    want = make_config(dataset, 'gdml', 0, profile, **sizes)
    assert rec['config'] == {**want.__dict__, 'device': 'cpu'} and rec['profile'] == profile
    assert 0 <= rec['metrics']['recall_macro'] <= 100
    if profile == 'authors': assert rec['val_loss'] is not None       # the authors' 90/10 split held out 10%
