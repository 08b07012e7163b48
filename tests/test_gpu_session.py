"""The offline-GPU tooling (offline_gpu/: a GPU node without network), on the CPU at tiny sizes: data packs and
their unpacking (checksums, parts arriving over several commands, corrupt parts), the stage script in a temporary
folder standing in for the GPU node (setup, bench, a budgeted sweep, resuming on a bare machine), and
the return of the results into a repository (records, tables, array-size limit, unsafe tarballs)."""
import hashlib, io, json, os, shutil, subprocess, sys, tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gdml.data import load_dataset
from gdml.protocol import METRICS
from gdml.config import config_dict, config_hash, make_config
from gdml.store import load_record, load_records, write_record

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO/'offline_gpu'), str(REPO/'benchmarks')]
import bench_train, gpu_pack, gpu_results, gpu_sweep  # noqa: E402

DATA = os.environ.get('GDML_DATA')
MNIST_MD5 = {'train-images-idx3-ubyte': '6bbc9ace898e44ae57da46a324031adb',   # the published MNIST files' md5 sums
             'train-labels-idx1-ubyte': 'a25bea736e30d166cdddb491f175f624',
             't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
             't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637'}


def make_folder(root, colour, n_train=6, n_test=3, classes=4, size=(8, 8), seed=0):
    "An ImageFolder-style set of random images (grey or RGB) whose file names do not sort like their creation order."
    rng = np.random.default_rng(seed)
    for split, n in (('train', n_train), ('test', n_test)):
        for c in range(classes):
            d = root/split/f'class{c}'; d.mkdir(parents=True, exist_ok=True)
            for i in rng.permutation(n):
                a = rng.integers(0, 256, size + ((3,) if colour else ()), dtype=np.uint8)
                Image.fromarray(a).save(d/f'img_{rng.integers(1e6):06d}_{i}.png')
    return root


def same_dataset(a, b):
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ('x_train', 'y_train', 'x_test', 'y_test')) \
        and list(a.classes) == list(b.classes)


def test_folder_pack_arrives_in_parts_and_unpacks_identically(tmp_path):
    src = make_folder(tmp_path/'src'/'rgbset', colour=True, n_train=40, n_test=10)
    grey = make_folder(tmp_path/'src'/'greyset', colour=False)
    packs = tmp_path/'packs'
    e = gpu_pack.pack_dataset(str(src), tmp_path/'src', packs, part_mib=0.01, preset=0, webp_method=0, workers=1)
    gpu_pack.pack_dataset(str(grey), tmp_path/'src', packs, part_mib=1, preset=0, webp_method=0, workers=1)
    assert e['format'] == 'webp' and len(e['parts']) >= 3 and all(p['bytes'] <= 0.01 * 2**20 for p in e['parts'])
    # the parts travel in two calls: the first is kept in `incoming`, the pack is incomplete until the second
    call1, call2 = tmp_path/'call1', tmp_path/'call2'
    for d, parts in ((call1, e['parts'][:1]), (call2, e['parts'][1:])):
        d.mkdir(); shutil.copy(packs/'manifest.json', d)
        for p in parts: shutil.copy(packs/p['file'], d)
    shutil.copy(packs/'greyset.pack.00', call1)
    incoming, root = tmp_path/'device'/'incoming', tmp_path/'device'/'data'
    assert gpu_pack.receive(call1, incoming)['rgbset'] == [p['file'] for p in e['parts'][1:]]
    args = ['unpack', '--src', str(call1), '--incoming', str(incoming), '--root', str(root)]
    assert gpu_pack.main(args) == 3                                    # missing parts: nothing laid out
    assert not (root/'rgbset').exists() and (root/'greyset').is_dir()
    assert gpu_pack.receive(call2, incoming)['rgbset'] == []
    assert gpu_pack.main(args[:2] + [str(call2)] + args[3:]) == 0
    for name in ('rgbset', 'greyset'):
        assert same_dataset(load_dataset(root/name), load_dataset(tmp_path/'src'/name))
        assert sorted(os.listdir(root/name/'train'/'class0')) == sorted(os.listdir(tmp_path/'src'/name/'train'/'class0'))
    assert gpu_pack.unpack('rgbset', e, [incoming], root, None, 1) == 'already there'
    # a corrupted part is refused (by its checksum), not unpacked
    bad = tmp_path/'bad'; shutil.copytree(packs, bad)
    part = bad/e['parts'][1]['file']; data = bytearray(part.read_bytes()); data[10] ^= 1; part.write_bytes(bytes(data))
    assert gpu_pack.unpack('rgbset', e, [bad], tmp_path/'root2', None, 1).startswith('missing parts: ' + e['parts'][1]['file'])


def test_bad_pack_requests_fail_in_one_line(tmp_path):
    with pytest.raises(gpu_pack.PackError, match='cannot pack'): gpu_pack.dataset_source('imagenet', tmp_path)
    with pytest.raises(gpu_pack.PackError, match='manifest.json not found'): gpu_pack.read_manifest(tmp_path)
    with pytest.raises(gpu_pack.PackError, match='no wheels'): gpu_pack.pack_site(tmp_path, tmp_path/'o', part_mib=1, preset=0)


@pytest.mark.skipif(not DATA or not (Path(DATA or '.')/'MNIST'/'raw').is_dir(), reason='needs $GDML_DATA with MNIST')
def test_mnist_pack_round_trips_to_the_original_idx_bytes(tmp_path):
    packs, root = tmp_path/'packs', tmp_path/'data'
    e = gpu_pack.pack_dataset('mnist', Path(DATA), packs, part_mib=45, preset=0, webp_method=0, workers=1)
    assert e['kind'] == 'idx' and e['arrays']['x_train']['shape'] == [60000, 1, 28, 28]
    assert gpu_pack.main(['unpack', 'mnist', '--src', str(packs), '--root', str(root)]) == 0
    for stem, md5 in MNIST_MD5.items():
        assert hashlib.md5((root/'MNIST'/'raw'/stem).read_bytes()).hexdigest() == md5
    assert same_dataset(load_dataset('mnist', root=root), load_dataset('mnist', root=DATA))


def test_budget_logic():
    cs = gpu_sweep.expand_grid(['digits'], ['gdml', 'triplet'], 2, 'quick')
    assert [(c.seed, c.method) for c in gpu_sweep.seed_major(cs)] == [(0, 'gdml'), (0, 'triplet'), (1, 'gdml'), (1, 'triplet')]
    c = cs[0]
    assert gpu_sweep.launchable(100, 400, 300) and not gpu_sweep.launchable(100, 399, 300)
    assert gpu_sweep.expected_seconds(c, {('digits', 'gdml'): [50, 70]}, {('digits', 'gdml'): [500]}, 20, 9) == 70
    assert gpu_sweep.expected_seconds(c, {}, {('digits', 'gdml'): [500, 400]}, 20, 9) == 520
    assert gpu_sweep.expected_seconds(c, {}, {}, 20, 9) == 9
    # a method not seen yet on this dataset: as long as the slowest one that was (seen, else recorded)
    assert gpu_sweep.expected_seconds(c, {('digits', 'triplet'): [40], ('mnist', 'gdml'): [900]}, {}, 20, 9) == 40
    assert gpu_sweep.expected_seconds(c, {}, {('digits', 'margin'): [30, 60]}, 20, 9) == 80
    bench = dict(arch='resnet18', student_images_per_s=10000.0, baseline_images_per_s=5000.0,
                 concurrency=[dict(processes=4, images_per_s_total=20000.0)])
    p = make_config('fashion_mnist', 'triplet', 0, 'paper')
    # 50 epochs x 60k images at a quarter of 20k img/s, halved for the slower baseline loop, + 20 + 40 s
    assert gpu_sweep.bench_estimate(bench, p, 4, 20) == pytest.approx(60 + 50 * 60000 / 2500)
    assert gpu_sweep.bench_estimate(bench, c, 4, 20) is None            # the bench measured another model


def test_a_run_that_cannot_end_before_the_deadline_is_not_launched(tmp_path):
    lines = []
    rows = gpu_sweep.run(gpu_sweep.expand_grid(['digits'], ['gdml'], 1, 'quick'), tmp_path, deadline=100,
                         hard_deadline=160, first_estimate=101, log=lines.append)
    assert [r['status'] for r in rows] == ['not launched'] and 'nothing launched' in lines[0]
    assert json.loads((tmp_path/gpu_sweep.STATUS).read_text())['rows'] == rows
    assert not list(tmp_path.glob('digits/**/result.json'))


def test_results_pack_leaves_out_big_arrays_and_refuses_unsafe_tarballs(tmp_path):
    res = tmp_path/'results'
    c = make_config('digits', 'gdml', 0)
    write_record(dict(run_id='r', dataset='digits', method='gdml', seed=0, profile='quick', config_hash=config_hash(c),
                      config=config_dict(c), classes=['a', 'b'], metrics=dict.fromkeys(METRICS, 50.0),
                      git_commit='unknown', finished='2026-01-01',
                      arrays=dict(test_embeddings=np.ones((30, 2), np.float32), test_labels=np.arange(30) % 2)), res/'quick')
    np.savez(res/'quick'/'big.npz', a=np.zeros(300_000))           # 2.4 MB: stays on the device
    (tmp_path/'bench').mkdir(); (tmp_path/'bench'/'COMMIT').write_text('abc123\n')
    (tmp_path/'bench'/'bench.json').write_text('{"device": "test"}')
    r = gpu_results.pack(res, [tmp_path/'bench'], tmp_path/'out'/'results.tar.gz')
    assert r['files'] == 4 and len(r['left_out']) == 1 and 'big.npz' in r['left_out'][0]
    repo = tmp_path/'repo'
    u = gpu_results.unpack(tmp_path/'out'/'results.tar.gz', repo)
    rec = load_records(repo/'results'/'quick')
    assert u['records'] == 1 and len(rec) == 1 and rec[0]['git_commit'] == 'abc123' and 'git_commit_from' in rec[0]
    assert (repo/'benchmarks'/'results'/'gpu_test_bench.json').exists() and (repo/'.gpu'/'returned'/'results.tar.gz').exists()
    evil = tmp_path/'evil.tar.gz'
    with tarfile.open(evil, 'w:gz') as t:
        info = tarfile.TarInfo('results/../../escape.txt'); info.size = 1; t.addfile(info, io.BytesIO(b'x'))
    with pytest.raises(gpu_results.ResultsError, match='unsafe member'): gpu_results.unpack(evil, repo)


def test_bench_skips_the_cuda_variant_cleanly_on_the_cpu(tmp_path):
    # CUDA graphs need CUDA; `compile` runs on the CPU too (Inductor), but compiling costs a minute, so it is not asked here
    out = bench_train.main(['--device', 'cpu', '--n', '128', '--arch', 'small_cnn', '--variants', 'engine,eager,graph',
                            '--json', str(tmp_path/'b.json')])
    v = json.loads((tmp_path/'b.json').read_text())['variants']
    assert v['student_graph'] == v['multisim_graph'] == {'skipped': 'needs CUDA'}
    assert v['student_eager']['images_per_s'] > 0 and out['student_images_per_s'] > 0 and out['reference_images_per_s'] > 0
    with pytest.raises(SystemExit): bench_train.main(['--device', 'cpu', '--variants', 'graphs'])


def run_stage(stage, *args, work, packs, out, extra_env=None, timeout=300):
    env = dict(os.environ, GDML_GPU_WORK=str(work), GDML_GPU_PACKS=str(packs), OUT=str(out), GDML_PYTHON=sys.executable,
               GDML_GPU_WORKERS='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **(extra_env or {}))
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir(): f.unlink()                               # $OUT is emptied before each call
    r = subprocess.run(['bash', str(REPO/'offline_gpu'/'gpu_stage.sh'), stage, *args], capture_output=True,
                       text=True, env=env, timeout=timeout)
    return r, r.stdout + r.stderr


@pytest.mark.slow
def test_stage_script_sweeps_returns_and_resumes_on_a_bare_machine(tmp_path):
    # here: pack an image-folder dataset; "there": a work folder; one sweep call, its results unpacked
    # here, then a second call whose machine lost them: they travel back and nothing is rerun
    make_folder(tmp_path/'src'/'tiny', colour=False, n_train=12, n_test=4, classes=3)
    packs = tmp_path/'repo'/'.gpu'
    gpu_pack.pack_dataset(str(tmp_path/'src'/'tiny'), tmp_path/'src', packs, part_mib=1, preset=0, webp_method=0, workers=1)
    (packs/'COMMIT').write_text('0123abcd\n')
    work, out = tmp_path/'device1', tmp_path/'out'
    ds = str(work/'data'/'tiny')
    sweep = ['sweep', ds, 'quick', '1', '240', '--methods', 'gdml', '--epochs', '1', '--gemini-epochs', '1', '--device', 'cpu']
    r, log = run_stage(*sweep, work=work, packs=packs, out=out)
    assert r.returncode == 0, log[-4000:]
    assert 'tiny: done' in log and 'gpu_sweep: 1 done' in log and 'tiny/quick: 1 records' in log, log[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ['log.txt', 'results.tar.gz', 'summary.txt']
    u = gpu_results.unpack(out/'results.tar.gz', tmp_path/'repo')
    recs = load_records(tmp_path/'repo'/'results'/'quick')
    assert u['records'] == 1 and [r['method'] for r in recs] == ['gdml']
    assert all(r['git_commit'] != 'unknown' for r in recs) and all(set(METRICS) <= set(r['metrics']) for r in recs)
    assert '| G-DML (' in (tmp_path/'repo'/'results'/'quick'/'tables'/'table_tiny.md').read_text()
    assert (tmp_path/'repo'/'results'/'quick'/'figures'/'figure_tiny.png').stat().st_size > 0
    # a fresh machine has lost the records (and all else: setup is covered above, so only the
    # records go here, to keep the test short); the returned tarball travels in .gpu/returned/
    shutil.rmtree(work/'results')
    r, log = run_stage(*sweep, work=work, packs=packs, out=out)
    assert r.returncode == 0, log[-4000:]
    assert 'gpu_sweep: 1 skipped' in log and 'tiny/quick: 1 records' in log, log[-4000:]
