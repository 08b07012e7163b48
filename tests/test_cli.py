"""The gdml command line: help, one-line errors that write nothing, tables and figures from the records on disk.
Most commands run `gdml.cli.main` in this process (seconds saved per command); the console script itself runs
for `--help`. (`gdml run --in-process` against the notebook path: tests/test_experiment.py.)"""
import json, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gdml.protocol import METRICS
from gdml.config import config_dict, config_hash, make_config, run_dir
from gdml.records import ARRAYS, RESULT, load_record, source_hash, write_record
from gdml.sweep import write_manifest
from gdml.cli import main


def gdml(*args):
    exe = shutil.which('gdml', path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from gdml.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(map(str, args)), capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli(capsys):
    "`gdml ARGS` in this process: a CompletedProcess-like result (an escaping exception fails the test)."
    def run(*args):
        try: code = main(list(map(str, args)))
        except SystemExit as e: code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return run


def one_line_error(r, *words):
    "The command failed with exit status 2 and one line naming `words`, without a traceback."
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert all(w in r.stderr for w in words), r.stderr


def tree(root):
    "Every path under `root` (to show that a failed command wrote nothing)."
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*'))


@pytest.mark.parametrize('cmd', ['run', 'sweep', 'tables', 'figures', 'demo', 'embed'])
def test_help(cmd):
    r = gdml(cmd, '--help')
    assert r.returncode == 0 and 'usage: gdml ' + cmd in r.stdout


def test_sweep_help_documents_the_clusters():
    out = gdml('sweep', '--help').stdout
    assert '--scheduler' in out and 'tcp://host:8786' in out and 'slurm' in out and 'dask-jobqueue' in out


@pytest.mark.parametrize('args, words', [
    (['run', '--dataset', 'imagenet'], ['imagenet', 'mnist, fashion_mnist, cifar10, digits']),
    (['run', '--method', 'arcface'], ['arcface', 'multisim']),
    (['sweep', '--methods', 'gdml', 'proxy'], ['proxy', 'siamese']),
    (['sweep', '--datasets', 'digits', 'svhn'], ['svhn', 'cifar10']),
    (['run', '--epochs', 'ten'], ["'ten'", 'int']),
    (['run', '--beta', '1.5'], ['beta', '[0, 1]']),
    (['run', '--profile', 'huge'], ['huge', 'paper', 'quick']),
    (['run', '--arch', 'vgg'], ['vgg', 'resnet18', 'small_cnn']),
    (['sweep', '--slurm-opt', 'queue'], ["'queue'", 'KEY=VALUE']),
    (['bake'], ['bake', 'run']),
    (['demo', '--seeds', '0'], ['--seeds', 'must be >= 1, got 0']),
    (['sweep', '--workers', '-1'], ['--workers', 'must be >= 1, got -1']),
    (['sweep', '--runs-per-gpu', '0'], ['--runs-per-gpu', 'must be >= 1, got 0']),
    (['run', '--in-process', '--batch-size', '1'], ['batch_size must be >= 2']),   # refused before GEMINI trains
    (['tables', '--runs', 'nowhere'], ['no run records']),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    one_line_error(cli(*args), *words)
    assert tree(tmp_path) == []   # no runs/ or demo_out/ folder, no sweep.json


@pytest.mark.parametrize('cmd', [['run'], ['run', '--in-process'], ['sweep', '--methods', 'gdml', '--seeds', '1'],
                                 ['demo']], ids=['run', 'run --in-process', 'sweep', 'demo'])
@pytest.mark.parametrize('kind', ['file', 'read-only folder'])
def test_out_must_be_a_writable_folder(cli, tmp_path, cmd, kind):
    out = tmp_path/'out'
    if kind == 'file': out.write_text('not a folder')
    else: out.mkdir(); out.chmod(0o555)
    try:
        before = tree(tmp_path)
        one_line_error(cli(*cmd, '--out', out, '--epochs', '1', '--gemini-epochs', '1') if cmd[0] != 'demo'
                       else cli(*cmd, '--out', out), '--out', 'is a file' if kind == 'file' else 'read-only')
        assert tree(tmp_path) == before
    finally:
        if out.is_dir(): out.chmod(0o755)


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_on_a_machine_without_it(cli, tmp_path):
    one_line_error(cli('run', '--in-process', '--device', 'cuda', '--out', tmp_path/'runs'), 'cuda', 'no CUDA device')
    assert tree(tmp_path) == []


def test_data_errors_in_process(cli, tmp_path):
    data = tmp_path/'pets'
    for split in ('train', 'test'):
        for c in ('cat', 'dog'): (data/split/c).mkdir(parents=True); (data/split/c/'0.png').write_bytes(b'not a png')
    before = tree(tmp_path)
    one_line_error(cli('run', '--in-process', '--dataset', data, '--out', tmp_path/'runs'),
                   str(data/'train'/'cat'/'0.png'), 'unreadable image')
    assert tree(tmp_path) == before


def test_missing_data_tells_a_command_line_user_what_to_do(cli, tmp_path, monkeypatch):
    for k, v in dict(GDML_DATA=tmp_path/'empty', GDML_CACHE=tmp_path/'cache', GDML_OFFLINE='1').items(): monkeypatch.setenv(k, str(v))
    one_line_error(cli('run', '--in-process', '--dataset', 'mnist', '--out', tmp_path/'runs'),
                   'data files not found', 'GDML_OFFLINE is unset')
    assert not (tmp_path/'runs').exists()


def _fake(runs, method, seed, value, dataset='digits'):
    "A made-up record with known metrics (value + seed) and random embeddings."
    c = make_config(dataset, method, seed)
    return write_record(dict(run_id=f'{method}{seed}', dataset=Path(dataset).name, method=method, seed=seed,
                             profile='quick', config_hash=config_hash(c), config=config_dict(c), classes=['a', 'b', 'c'],
                             source_hash=source_hash(),
                             metrics=dict.fromkeys(METRICS, value + seed), finished='2026-01-01',
                             arrays=dict(test_embeddings=np.random.rand(30, 2).astype(np.float32),
                                         test_labels=np.arange(30) % 3)), runs)


def _records(runs):
    "Three methods x 2 seeds, and a sweep.json expecting a fourth method."
    for m, base in (('gdml', 90), ('triplet', 80), ('siamese', 70)):
        for s in (0, 1): _fake(runs, m, s, base)
    write_manifest([make_config('digits', m, s) for m in ('gdml', 'triplet', 'siamese', 'multisim') for s in (0, 1)], runs)


def test_tables_and_figures(cli, tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    r = cli('tables', '--runs', runs)
    assert r.returncode == 0, r.stderr
    md = (runs/'tables'/'table_digits.md').read_text()
    assert '| Ours (G-DML) | **90.50 ± 6.35** |' in md        # mean and t-interval of (90, 91), best in bold
    assert '| Siamese | 70.50 ± 6.35 |' in md and '| Margin | – |' in md
    assert r'\textbf{90.50 $\pm$ 6.35}' in (runs/'tables'/'table_digits.tex').read_text()
    assert (runs/'tables'/'table_digits.csv').read_text().splitlines()[0] == 'Model,Recall@1,F-score,NMI,RP,MAP@R'
    assert 'missing runs (4)' in r.stdout and 'multisim' in r.stdout and 'margin' in r.stdout   # every '–' is listed
    r = cli('figures', '--runs', runs, '--out', tmp_path/'figs')
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'figs'/'figure_digits.png').stat().st_size > 0
    assert (tmp_path/'figs'/'figure_digits.pdf').read_bytes()[:4] == b'%PDF'


def test_broken_records_are_named_and_skipped(cli, tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    spoilt = {'gdml': lambda d: (d/RESULT).write_text((d/RESULT).read_text()[:100]),
              'triplet': lambda d: (d/RESULT).write_text(json.dumps({k: v for k, v in load_record(d).items() if k != 'metrics'})),
              'siamese': lambda d: (d/ARRAYS).write_bytes(b'junk')}
    for m, spoil in spoilt.items(): spoil(run_dir(make_config('digits', m, 1), runs))
    for cmd in ('tables', 'figures'):
        r = cli(cmd, '--runs', runs)
        assert r.returncode == 0, r.stderr
        assert 'broken records, skipped (3)' in r.stdout
        for m, fault in (('gdml', 'not valid JSON'), ('triplet', "'metrics' is missing"), ('siamese', 'unreadable')):
            d = run_dir(make_config('digits', m, 1), runs)
            assert any(str(d) in line and fault in line for line in r.stdout.splitlines()), (m, r.stdout)
    md = (runs/'tables'/'table_digits.md').read_text()
    assert '| Ours (G-DML) | **90.00 ± n/a** |' in md   # the other seed is reported


def test_tables_show_every_record_on_disk(cli, tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    _fake(runs, 'margin', 0, 60)                        # as `gdml run --method margin` leaves it: not in sweep.json
    for parent in ('a', 'b'):                           # two ImageFolder datasets named pets
        pets = tmp_path/parent/'pets'; (pets/'train').mkdir(parents=True); (pets/'test').mkdir()
        _fake(runs, 'gdml', 0, 40 if parent == 'a' else 30, dataset=str(pets))
    r = cli('tables', '--runs', runs)
    assert r.returncode == 0, r.stderr
    assert '| Margin | 60.00 ± n/a |' in (runs/'tables'/'table_digits.md').read_text()
    assert '**Performance on a/pets**' in r.stdout and '**Performance on b/pets**' in r.stdout
    assert '40.00' in (runs/'tables'/'table_a_pets.md').read_text() and '30.00' in (runs/'tables'/'table_b_pets.md').read_text()
    missing = (runs/'tables'/'missing.csv').read_text()
    assert 'digits,margin,1,not run' in missing and 'a/pets,triplet,0,not run' in missing
    one_line_error(cli('tables', '--runs', runs, '--datasets', 'mnist', '--out', tmp_path/'t'), "'mnist' has no records",
                   'digits')
    assert not (tmp_path/'t').exists()


def test_figures_refuse_a_seed_without_records(cli, tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    one_line_error(cli('figures', '--runs', runs, '--seed', '99'), 'seed 99 has no record', 'its seeds: 0, 1')
    assert not (runs/'figures').exists()


def test_in_process_says_skipped_for_an_existing_record(cli, tmp_path):
    d = _fake(tmp_path, 'gdml', 0, 90)
    r = cli('run', '--in-process', '--out', tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(f'skipped: {d}'), r.stdout   # not 'done': nothing ran
    assert load_record(d)['run_id'] == 'gdml0'


def test_embed_a_folder_of_pngs(cli, tmp_path):
    "`gdml run` then `gdml embed` on PNG files: a CSV row per image whose nearest train labels beat chance; bad input is one line."
    from PIL import Image
    from gdml.data import load_dataset
    runs, pngs = tmp_path/'runs', tmp_path/'pngs'; pngs.mkdir()
    r = cli('run', '--dataset', 'digits', '--in-process', '--gemini-epochs', '2', '--epochs', '3', '--device', 'cpu', '--out', runs)
    assert r.returncode == 0, r.stderr
    run = Path(r.stdout.split('done: ', 1)[1].split()[0])
    d = load_dataset('digits')
    for i in range(40): Image.fromarray(d.x_test[i, 0].numpy()).save(pngs/f"test_{i:03d}.png")
    r = cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/'out.csv', '--k', 3)
    assert r.returncode == 0, r.stderr
    import pandas as pd
    t = pd.read_csv(tmp_path/'out.csv')
    assert list(t.columns[:4]) == ['file', 'dim_0', 'dim_1', 'predicted'] and 'neighbour_3_distance' in t.columns
    assert t.file.tolist() == [f"test_{i:03d}.png" for i in range(40)]
    truth = np.array([d.classes[int(v)] for v in d.y_test[:40]], dtype=str)
    assert (t.predicted.astype(str).to_numpy() == truth).mean() > 0.3   # chance: 0.1
    one_line_error(cli('embed', '--run', tmp_path, '--images', pngs, '--out', tmp_path/'x.csv'), 'no run record')
    one_line_error(cli('embed', '--run', run, '--images', tmp_path/'none', '--out', tmp_path/'x.csv'), 'not a folder of images')
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(pngs/'big.png')
    one_line_error(cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/'x.csv'), 'resize')
    assert not (tmp_path/'x.csv').exists()


def test_a_sweep_prints_no_kernel_noise(tmp_path):
    """A sweep through papermill kernels prints only what a user needs: no per-kernel TCP warning and no
    "KeyboardInterrupt caught in kernel" from the SIGINT jupyter_client used to send before shutting a kernel down."""
    r = gdml('sweep', '--datasets', 'digits', '--methods', 'gdml', 'triplet', '--seeds', 1, '--epochs', 1, '--gemini-epochs', 1,
             '--workers', 2, '--no-progress', '--out', tmp_path/'runs')   # two kernels at once, one per worker
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'sweep: 2 cells: 2 run' in r.stdout
    noise = [l for l in (r.stdout + r.stderr).splitlines() if 'without encryption' in l or 'KeyboardInterrupt' in l]
    assert not noise, noise
