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
from gdml.provenance import source_hash
from gdml.store import ARRAYS, RESULT, load_record, write_record
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


def _fake(runs, method, seed, value, dataset='digits', **overrides):
    "A made-up record with known metrics (value + seed) and random embeddings (`overrides`: its configuration's other values)."
    c = make_config(dataset, method, seed, **overrides)
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
    assert '| G-DML | **90.50 ± 6.35** |' in md        # mean and t-interval of (90, 91), best in bold
    assert '| Siamese | 70.50 ± 6.35 |' in md and '| Margin | – |' in md   # short names (issue 33)
    assert r'\textbf{90.50 $\pm$ 6.35}' in (runs/'tables'/'table_digits.tex').read_text()
    assert (runs/'tables'/'table_digits.csv').read_text().splitlines()[0] == 'Model,Recall@1,F-score,NMI,RP,MAP@R'
    assert 'missing runs (6)' in r.stdout and 'multisim' in r.stdout and 'margin' in r.stdout and 'softmax' in r.stdout   # every '–' is listed
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
    assert '| G-DML | **90.00 ± n/a** (1 of 2 seeds) |' in md   # the other seed is reported, and says so


def test_tables_show_every_record_on_disk(cli, tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    _fake(runs, 'margin', 0, 60)                        # as `gdml run --method margin` leaves it: not in sweep.json
    for parent in ('a', 'b'):                           # two ImageFolder datasets named pets
        pets = tmp_path/parent/'pets'; (pets/'train').mkdir(parents=True); (pets/'test').mkdir()
        _fake(runs, 'gdml', 0, 40 if parent == 'a' else 30, dataset=str(pets))
    r = cli('tables', '--runs', runs)
    assert r.returncode == 0, r.stderr
    assert '| Margin | 60.00 ± n/a (1 of 2 seeds) |' in (runs/'tables'/'table_digits.md').read_text()
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


def test_embed_out_is_refused_where_it_would_spoil_something(cli, tmp_path):
    "`gdml embed --out`: empty, a folder, or a file inside a run's folder (its own record) is one line, checked first."
    d = _fake(tmp_path/'runs', 'gdml', 0, 90)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    for out, words in (('', '--out is empty'), (tmp_path, 'is a folder'), (d/RESULT, 'inside the run folder')):
        one_line_error(cli('embed', '--run', d, '--images', tmp_path, '--out', out), *words.split(' ', 1)[1:] or [words])
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_tables_where_selects_a_configuration(cli, tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    c = make_config('digits', 'gdml', 0, epochs=7)
    write_record(dict(run_id='e7', dataset='digits', method='gdml', seed=0, profile='quick', config_hash=config_hash(c),
                      config=config_dict(c), metrics=dict.fromkeys(METRICS, 5.0), finished='2026-03-01',
                      arrays=dict(test_embeddings=np.zeros((4, 2), np.float32), test_labels=np.arange(4) % 2)), runs)
    r = cli('tables', '--runs', runs)
    assert r.returncode == 0 and '| G-DML (7 epochs) | 5.00 ± n/a (1 of 2 seeds)' in r.stdout, r.stdout   # one profile: not named
    r = cli('tables', '--runs', runs, '--where', 'epochs=7')
    assert r.returncode == 0 and '| G-DML (7 epochs) | **5.00 ± n/a** |' in r.stdout, r.stdout   # one configuration, its seeds
    one_line_error(cli('tables', '--runs', runs, '--where', 'epoch=7'), "'epoch' is not a configuration field")


def test_a_run_folder_in_use_is_one_line(cli, tmp_path):
    from gdml.files import folder_lock
    d = run_dir(make_config('digits', 'gdml', 0, epochs=1, gemini_epochs=1), tmp_path)
    with folder_lock(d):   # as another `gdml run` of this configuration would hold it
        for extra in ([], ['--in-process']):
            one_line_error(cli('run', '--out', tmp_path, '--epochs', 1, '--gemini-epochs', 1, '--force', *extra),
                           'is being written by process')
    assert not d.exists()


def test_sweep_without_a_scheduler_at_the_address_is_one_line(tmp_path):
    import socket
    from gdml.config import ConfigError
    from gdml.sweep import run_sweep
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]   # a loopback port nothing listens on
    with pytest.raises(ConfigError, match=f'no Dask scheduler answers at tcp://127.0.0.1:{port}') as e:
        run_sweep([make_config('digits', 'gdml', 0)], tmp_path/'runs', scheduler=f'tcp://127.0.0.1:{port}',
                  connect_timeout=1, progress=False)
    assert '\n' not in str(e.value)


# --- issue 20: records you can trust (embedding new images, damaged files, interrupts) ---

@pytest.fixture(scope='module')
def _authors_record(tmp_path_factory):
    return _make_authors_run(tmp_path_factory.mktemp('authors')/'runs')


@pytest.fixture
def authors_run(_authors_record, tmp_path):
    "(digits, the folder of a fresh copy of a train-mode-BatchNorm run's record)."
    d, run = _authors_record
    copy = tmp_path/'runs'/run.name; shutil.copytree(run, copy)
    return d, copy


def _make_authors_run(out):
    """A record extracted with train-mode BatchNorm (the authors' code), made by hand instead of trained: a ResNet-18 on
    the 8x8 digits has 1x1 maps in its last block, where the statistics of a single image fail."""
    from gdml.data import load_dataset
    from gdml.distill import make_student, extraction_kwargs
    from gdml.engine import embed
    from gdml.train import model_bundle
    d, cfg = load_dataset('digits'), make_config('digits', 'gdml', 0, arch='resnet18', extraction='authors')
    net = make_student('resnet18', in_channels=1, embedding_dim=2, seed=0).train()
    with torch.no_grad(): net((d.x_train[:512].float() - d.mean.view(1, -1, 1, 1)) / d.std.view(1, -1, 1, 1))
    z = lambda x: embed(net, x, mean=d.mean, std=d.std, device='cpu', **extraction_kwargs('authors', False, len(x))).numpy()
    return d, write_record(dict(run_id='bn0', dataset='digits', method='gdml', seed=0, profile='quick',
                                config_hash=config_hash(cfg), config=config_dict(cfg), metrics=dict(recall_at_1=50.0),
                                arrays=dict(test_embeddings=z(d.x_test), test_labels=d.y_test.numpy(),
                                            train_embeddings=z(d.x_train), train_labels=d.y_train.numpy()),
                                model=model_bundle(cfg, net, d)), out)


def test_embed_of_a_train_mode_batchnorm_run(cli, tmp_path, authors_run):
    "1 to 7 images embed (no 'Expected more than 1 value per channel'), and an image's row is the same beside any other."
    from PIL import Image
    import pandas as pd
    d, run = authors_run
    rows = {}
    for n in range(1, 8):
        pngs = tmp_path/f'pngs{n}'; pngs.mkdir()
        for i in range(n): Image.fromarray(d.x_test[[0, 5, 1, 2, 3, 4, 6][i], 0].numpy()).save(pngs/f"img_{i}.png")
        r = cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/f'{n}.csv', '--k', 3)
        assert r.returncode == 0, r.stderr
        assert 'note: the run extracted its own embeddings with train-mode BatchNorm' in r.stdout, r.stdout
        rows[n] = pd.read_csv(tmp_path/f'{n}.csv')
    first = [rows[n].loc[0, ['dim_0', 'dim_1']].to_numpy(float) for n in rows]   # the same image beside 0..6 others
    assert all(np.allclose(f, first[0], atol=1e-4) for f in first), first


def test_embed_resize_reads_mixed_sizes(cli, tmp_path, authors_run):
    "--resize takes images of mixed sizes (the case it exists for), a large JPEG included; without it the first odd size is one line."
    from PIL import Image
    import pandas as pd
    d, run = authors_run
    pngs, rng = tmp_path/'mixed', np.random.default_rng(0); pngs.mkdir()
    for i, (h, w) in enumerate([(8, 8), (28, 28), (300, 200), (33, 61), (1, 1)]):
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(pngs/f"m{i}.png")
    Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)).save(pngs/'photo.jpg', quality=90)
    r = cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/'out.csv', '--resize')
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path/'out.csv').file.tolist() == ['m0.png', 'm1.png', 'm2.png', 'm3.png', 'm4.png', 'photo.jpg']
    one_line_error(cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/'x.csv'),
                   'm1.png: the image is 28x28 pixels, the run was trained on 8x8', '--resize')
    assert not (tmp_path/'x.csv').exists()


def test_embed_resize_holds_one_batch_in_memory(tmp_path, monkeypatch, authors_run):
    "gdml embed --resize decodes one image at a time and embeds EMBED_BATCH at a time, never the folder at full size."
    from PIL import Image
    import gdml.data, gdml.inference
    d, run = authors_run
    pngs = tmp_path/'big'; pngs.mkdir()
    for i in range(7): Image.fromarray(np.full((400 + i, 300, 3), 40 * i, np.uint8)).save(pngs/f"p{i}.png")
    whole = lambda *a, **k: pytest.fail('decoded the whole folder at full size')
    for m in (gdml.data, gdml.inference): monkeypatch.setattr(m, 'decode_images', whole, raising=False)
    monkeypatch.setattr(gdml.inference, 'EMBED_BATCH', 3, raising=False)
    seen = []
    embed = gdml.inference.Embedder.__call__
    monkeypatch.setattr(gdml.inference.Embedder, '__call__', lambda self, x: (seen.append(tuple(x.shape)), embed(self, x))[1])
    assert main(['embed', '--run', str(run), '--images', str(pngs), '--out', str(tmp_path/'o.csv'), '--resize']) == 0
    assert seen == [(3, 1, 8, 8), (3, 1, 8, 8), (1, 1, 8, 8)], seen


@pytest.mark.parametrize('name, data', [('empty.png', b''), ('text.png', b'just some text'), ('half.png', 'half'),
                                        ('damaged.jpg', b'\xff\xd8\xff\xe0' + bytes(300))])
@pytest.mark.parametrize('resize', [False, True])
def test_embed_a_bad_image_is_one_line(cli, tmp_path, name, data, resize, authors_run):
    from PIL import Image
    d, run = authors_run
    pngs = tmp_path/'pngs'; pngs.mkdir()
    Image.fromarray(d.x_test[0, 0].numpy()).save(pngs/'good.png')
    if data == 'half':
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path/'full.png')
        data = (tmp_path/'full.png').read_bytes()[:60]
    (pngs/name).write_bytes(data); (pngs/'notes.txt').write_text('not an image: not read')
    one_line_error(cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/'x.csv', *(['--resize'] if resize else [])),
                   f'{name}: unreadable image')
    assert not (tmp_path/'x.csv').exists()


class _Evil:
    def __reduce__(self): return (print, ('code in model.pt ran',))


def _damage(run, how):
    import io, pickle
    f = run/'model.pt'
    if how == 'empty': f.write_bytes(b'')
    elif how == 'truncated': f.write_bytes(f.read_bytes()[:1000])
    elif how == 'not a zip': f.write_bytes(b'junk' * 100)
    elif how == 'pickle payload': f.write_bytes(pickle.dumps(_Evil()))
    elif how == 'a folder': f.unlink(); f.mkdir()
    else:
        saved = torch.load(f, weights_only=True)
        if how == 'unknown arch': saved['spec']['arch'] = 'vgg'
        elif how == 'short image_shape': saved['spec']['image_shape'] = [1]
        elif how == 'another arch': saved['spec']['arch'] = 'small_cnn'   # the weights are a ResNet-18's
        elif how == 'classes dropped': saved['spec']['classes'] = []
        buf = io.BytesIO(); torch.save(saved, buf); f.write_bytes(buf.getvalue())


@pytest.mark.parametrize('how', ['empty', 'truncated', 'not a zip', 'pickle payload', 'unknown arch', 'short image_shape',
                                 'another arch', 'classes dropped', 'a folder'])
def test_embed_with_a_damaged_model_is_one_line(cli, tmp_path, how, authors_run):
    "A corrupt, truncated, empty or pickle-payload model.pt, or a tampered spec: one line naming model.pt, no advice to load it unsafely."
    from PIL import Image
    d, run = authors_run
    pngs = tmp_path/'pngs'; pngs.mkdir(); Image.fromarray(d.x_test[0, 0].numpy()).save(pngs/'a.png')
    _damage(run, how)
    r = cli('embed', '--run', run, '--images', pngs, '--out', tmp_path/'x.csv')
    one_line_error(r, 'model.pt')
    assert 'weights_only' not in r.stderr and 'code in model.pt ran' not in r.stdout
    assert not (tmp_path/'x.csv').exists()


def test_a_small_test_set_with_batch_statistics_fails_before_training(cli, tmp_path):
    "extraction 'authors' embeds 5 test images in batches of 2, 2 and 1: refused before anything trains, nothing written."
    from PIL import Image
    data, rng = tmp_path/'tiny', np.random.default_rng(0)
    for split, n in (('train', 6), ('test', 3)):
        for c in range(2):
            (data/split/f'c{c}').mkdir(parents=True)
            for i in range(n if c == 0 or split == 'train' else n - 1):   # test: 3 + 2 images
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(data/split/f'c{c}'/f'{i}.png')
    one_line_error(cli('run', '--in-process', '--dataset', data, '--extraction', 'authors', '--epochs', 1,
                       '--gemini-epochs', 1, '--out', tmp_path/'runs'), '5 test images in batches of 2', '--extraction eval')
    assert not (tmp_path/'runs').exists()   # no record, no Z-hat cache: nothing trained


@pytest.mark.parametrize('value', ["'; import os; os.system('touch PWNED') #", '"; import os; os.system("touch PWNED") #',
                                   "x\nimport os; os.system('touch PWNED')", "\\'; import os #", "{0}{1} ''' \"\"\" \\n"])
def test_a_parameter_cannot_inject_code_into_the_run_notebook(tmp_path, value):
    "An ImageFolder path carrying code reaches the kernel as the same string: the injected cell holds only assignments of constants."
    import ast
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from gdml.execute import notebook_parameters, run_notebook_path
    data = tmp_path/value.replace('/', '_')
    for split in ('train', 'test'):
        for c in ('a', 'b'): (data/split/c).mkdir(parents=True)
    c = make_config(str(data), 'gdml', 0)
    params = notebook_parameters(c, tmp_path/'runs', force=True)
    nb = parameterize_notebook(load_notebook_node(str(run_notebook_path())), params)   # as papermill.execute_notebook does
    cell = next(''.join(x.source) for x in nb.cells if 'injected-parameters' in x.metadata.get('tags', []))
    body = ast.parse(cell).body
    assert all(isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant) for s in body), cell
    got = {s.targets[0].id: s.value.value for s in body}
    assert got['dataset'] == str(data) and got == {k: v for k, v in params.items()}, got


def test_ctrl_c_on_gdml_run_is_one_line(tmp_path):
    """SIGINT to `gdml run` while its notebook's kernel runs: `interrupted` and nothing else (no DeadKernelError or
    ZMQError traceback from the kernel), no half-written record and no kernel folder left."""
    import os, signal, time, tempfile
    tmp = Path(tempfile.mkdtemp(prefix='g'))   # short: the kernels' IPC socket paths must stay under ~100 characters
    try:
        out = tmp_path/'runs'
        env = dict(os.environ, TMPDIR=str(tmp))
        exe = shutil.which('gdml', path=str(Path(sys.executable).parent))
        cmd = ([exe] if exe else [sys.executable, '-c', 'import sys; from gdml.cli import main; sys.exit(main())'])
        p = subprocess.Popen(cmd + ['run', '--out', str(out), '--epochs', '1', '--gemini-epochs', '1'], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while not list(tmp.glob('gdml-kernel-*/k-*')):   # the kernel has bound its sockets: the notebook runs
                assert p.poll() is None, p.communicate()
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            o, e = p.communicate(timeout=120)
        finally:
            if p.poll() is None: p.kill()
        assert p.returncode == 130 and e == 'gdml run: interrupted\n', (p.returncode, e[-3000:])
        left = sorted(str(q.relative_to(out)) for q in out.rglob('*')) if out.exists() else []
        assert left in ([], ) or {'embeddings.npz', 'model.pt', 'result.json'} <= {Path(q).name for q in left}, left
        if left: load_record(next(out.rglob(RESULT)))   # the kernel finished first: the record is whole
        assert not list(tmp.glob('gdml-kernel-*')), list(tmp.iterdir())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize('args, words', [
    (['--lr', '-inf'], ['lr must be a finite number, got -inf']),
    (['--seen-classes', '-1,2'], ["seen_classes must be distinct labels >= 0", "'-1,2'"]),
    (['--epochs', '-3'], ['epochs must be > 0, got -3']),
])
def test_a_negative_value_meets_its_range_check(cli, tmp_path, args, words):
    # argparse takes a value that starts with '-' for an option ("expected one argument"): the range check must answer
    r = cli('run', '--dataset', 'digits', '--method', 'triplet', '--in-process', '--out', tmp_path/'runs', *args)
    one_line_error(r, *words)
    assert not (tmp_path/'runs').exists()


def test_a_field_the_method_does_not_read_finds_the_record(cli, tmp_path):
    "Canonical configurations: a field the method ignores is accepted, noted, and names no new run."
    out = tmp_path/'runs'
    for method, first, then in [('triplet', [], ['--gemini-epochs', '3', '--beta', '0.5']),
                                ('gdml', ['--gemini-epochs', '1'], ['--gemini-epochs', '1', '--baseline-distance', 'pml_default', '--miner', 'semihard'])]:
        base = ['run', '--dataset', 'digits', '--method', method, '--epochs', '1', '--claim-queries', '40', '--in-process', '--out', out]
        r = cli(*base, *first)
        assert r.returncode == 0 and r.stdout.startswith('done: '), r.stderr[-1500:]
        r2 = cli(*base, *then)
        assert r2.returncode == 0 and r2.stdout.startswith('skipped: '), r2.stdout   # the record it has: no second run
        assert r2.stdout.split()[1] == r.stdout.split()[1]
        assert f"note: {method} does not read" in r2.stderr, r2.stderr
    assert len(list(out.glob('digits/*/*/result.json'))) == 2


def test_a_full_disk_keeps_the_old_record_and_says_so_in_one_line(tmp_path):
    "A file-size limit (as a full disk) while an in-process run writes over a record: one line, the old record whole."
    import resource
    out = tmp_path/'runs'
    base = ['run', '--dataset', 'digits', '--method', 'triplet', '--epochs', '1', '--claim-queries', '40', '--in-process', '--out', out]
    assert gdml(*base).returncode == 0
    d = next(out.glob('digits/triplet/seed0-*'))
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (50 * 1024, 50 * 1024))   # 50 KB: the arrays do not fit
    exe = shutil.which('gdml', path=str(Path(sys.executable).parent))
    r = subprocess.run([exe, *map(str, base), '--force'], capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith('gdml run: failed: the record could not be written'), r.stderr[-500:]
    assert 'File too large' in r.stderr
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before   # the old record, whole
    assert sorted(p.name for p in d.parent.iterdir()) == [d.name]    # no half-built copy beside it


def test_a_killed_attempt_leaves_nothing_after_the_next_run(cli, tmp_path):
    out = tmp_path/'runs'
    base = ['run', '--dataset', 'digits', '--method', 'triplet', '--epochs', '1', '--claim-queries', '40', '--in-process', '--out', out]
    assert cli(*base).returncode == 0
    d = next(out.glob('digits/triplet/seed0-*'))
    (d.parent/f'.{d.name}.attempt-2.ipynb').write_text('{}'); (d.parent/f'.{d.name}.lock').write_text('{"pid": 1}')   # a killed papermill run
    assert cli(*base).stdout.startswith('skipped: ')
    assert sorted(p.name for p in d.parent.iterdir()) == [d.name]


def test_two_arms_of_one_method_are_two_cells_of_the_grid(tmp_path):
    "A manifest asking for G-DML and its corners control (both `gdml`) lists the control's seeds under its own name."
    from gdml.reporting import grid_records
    runs = tmp_path/'runs'; _records(runs)
    write_manifest([make_config('digits', 'gdml', s, student_target='corners') for s in (0, 1)], runs)
    chosen, holes = grid_records(runs)
    assert sorted(holes[holes.method == 'gdml'].row) == ['corners control', 'corners control']
    assert set(holes[holes.method == 'gdml'].status) == {'not run'}
    assert sorted(r['seed'] for r in chosen if r['method'] == 'gdml') == [0, 1]   # G-DML's own records still fill its row
    assert sorted(holes.method) == ['gdml', 'gdml', 'margin', 'margin', 'multisim', 'multisim', 'softmax', 'softmax']


def test_a_row_the_manifest_plans_at_one_seed_has_no_holes_at_the_others(tmp_path):
    "A one-seed check (the corners control at another radius, seed 0 only) is held to its planned seed, not the dataset's."
    from gdml.reporting import grid_records
    runs = tmp_path/'runs'
    for s in (0, 1): _fake(runs, 'gdml', s, 90)
    _fake(runs, 'gdml', 0, 80, student_target='corners', corner_radius=5.0)
    write_manifest([make_config('digits', 'gdml', s) for s in (0, 1)]
                   + [make_config('digits', 'gdml', 0, student_target='corners', corner_radius=5.0)], runs)
    chosen, holes = grid_records(runs, methods=['gdml'])
    assert len(holes) == 0, holes
    assert sorted((r['row'], r['expected']) for r in chosen) == [('G-DML', 2), ('G-DML', 2), ('corners control (radius 5)', 1)]
    write_manifest([make_config('digits', 'gdml', s, student_target='corners', corner_radius=5.0) for s in (0, 1)], runs)
    chosen, holes = grid_records(runs, methods=['gdml'])   # planned at two seeds: seed 1 is a hole again
    assert list(zip(holes.row, holes.seed, holes.status)) == [('corners control (radius 5)', 1, 'not run')]
