"""Tests of gdml.data: the embedded digits set, the paper's three datasets (when the data root holds
them), the decoded-array cache, and the errors for corrupt files and bad input."""
import gzip, os, shutil, struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gdml.data as data
from gdml.data import DATASETS, PUBLISHED, class_counts, load_dataset, read_idx

REPO = Path(__file__).resolve().parents[1]


def write_idx(path, a):
    "Write uint8 array `a` as an IDX file, gzip-compressed when `path` ends in .gz."
    a = np.asarray(a, np.uint8)
    raw = bytes([0, 0, 8, a.ndim]) + struct.pack(f'>{a.ndim}I', *a.shape) + a.tobytes()
    with (gzip.open(path, 'wb') if str(path).endswith('.gz') else open(path, 'wb')) as f: f.write(raw)


def make_image_folder(root, classes=('cat', 'dog'), n_train=3, n_test=2, size=(4, 4), seed=0):
    "A tiny ImageFolder-style directory of random RGB PNGs."
    rng = np.random.default_rng(seed)
    for split, n in (('train', n_train), ('test', n_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / split / c / f'{i}.png')
    return root


def fail_if_called(*a, **k): raise AssertionError('decoded again: the cache was not used')


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    "No GDML_DATA, and a private, empty user cache folder."
    monkeypatch.delenv('GDML_DATA', raising=False)
    monkeypatch.setenv('GDML_CACHE', str(tmp_path / 'user-cache'))
    return tmp_path


def real_root():
    "GDML_DATA as an absolute path (a relative one is tried against the cwd, then the repo root), or None."
    env = os.environ.get('GDML_DATA')
    if not env: return None
    p = Path(env).expanduser()
    if p.is_absolute(): return p
    for base in (Path.cwd(), REPO):
        if (base / p).is_dir(): return (base / p).resolve()
    return None


REAL_DIRS = {'mnist': 'MNIST/raw', 'fashion_mnist': 'FashionMNIST/raw', 'cifar10': 'cifar10-png'}
# Published train-set statistics (0-255 units): MNIST 0.1307/0.3081, CIFAR-10's usual values, Fashion-MNIST 0.2860/0.3530
PUBLISHED_STATS = {'mnist': ([33.32], [78.57]), 'fashion_mnist': ([72.94], [90.02]),
                   'cifar10': ([125.31, 122.95, 113.87], [62.99, 62.09, 66.70])}


REAL_ROOT = real_root()  # read at import: the `isolated` fixture unsets GDML_DATA


def need_real(name):
    root = REAL_ROOT
    if root is None: pytest.skip(f'GDML_DATA is unset or not a folder; {name} needs the real data (e.g. GDML_DATA=../shared/datasets)')
    if not (root / REAL_DIRS[name]).is_dir(): pytest.skip(f'{root} has no {REAL_DIRS[name]}')
    return root


# ---------------------------------------------------------------- digits

def test_digits_needs_no_data_root(isolated):
    ds = load_dataset('digits')
    assert (ds.name, ds.classes) == ('digits', [str(i) for i in range(10)])
    assert ds.x_train.shape == (1347, 1, 8, 8) and ds.x_test.shape == (450, 1, 8, 8)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64 and ds.y_test.dtype == torch.int64
    assert (ds.n_classes, ds.in_channels, ds.image_size) == (10, 1, (8, 8))
    assert int(ds.x_train.min()) == 0 and int(ds.x_train.max()) == 255
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9 and ds.y_test.max() == 9
    assert ds.mean.dtype == torch.float32 and ds.mean.shape == (1,) and ds.std.shape == (1,)
    x = ds.x_train.double()
    assert torch.allclose(ds.mean.double(), x.mean().reshape(1), atol=1e-3)
    assert torch.allclose(ds.std.double(), x.std(unbiased=False).reshape(1), atol=1e-3)
    counts = class_counts(ds.y_test, 10)
    assert counts.min() >= 43 and counts.max() <= 46  # stratified 25% split of ~180 per class
    assert not (isolated / 'user-cache').exists()  # nothing written for the embedded set
    again = load_dataset('digits')
    assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)  # deterministic split
    assert 'digits: 1347 train / 450 test' in ds.summary()


# ---------------------------------------------------------------- the paper's datasets

@pytest.mark.parametrize('name', ['mnist', 'fashion_mnist', 'cifar10'])
def test_paper_dataset_counts_and_cache(name, monkeypatch):
    root = need_real(name)
    monkeypatch.setenv('GDML_DATA', str(root))
    ds = load_dataset(name, download=False)  # the first load ever decodes (CIFAR-10: 60,000 PNGs, about a minute)
    pub = PUBLISHED[name]
    assert ds.classes == pub['classes'] and tuple(ds.x_train.shape[1:]) == pub['shape']
    assert (len(ds.y_train), len(ds.y_test)) == (sum(pub['train']), sum(pub['test']))
    assert class_counts(ds.y_train, 10).tolist() == pub['train']
    assert class_counts(ds.y_test, 10).tolist() == pub['test']
    assert ds.x_train.dtype == torch.uint8 and ds.y_test.dtype == torch.int64
    mean, std = PUBLISHED_STATS[name]
    assert torch.allclose(ds.mean, torch.tensor(mean), atol=0.01), ds.mean
    assert torch.allclose(ds.std, torch.tensor(std), atol=0.01), ds.std
    # the decoded arrays are cached, never inside a read-only data root
    assert ds.cache_file is not None and ds.cache_file.is_file()
    if not data._writable(root / REAL_DIRS[name]): assert root not in ds.cache_file.parents
    # second load: from the cache, without decoding anything
    monkeypatch.setattr(data, 'read_idx', fail_if_called)
    monkeypatch.setattr(data, 'decode_images', fail_if_called)
    monkeypatch.setattr(data, '_decode', fail_if_called)
    again = load_dataset(name, download=False)
    assert again.cache_file == ds.cache_file
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)


def test_truncated_real_mnist_copy(isolated):
    root = need_real('mnist')
    raw = isolated / 'data' / 'MNIST' / 'raw'
    shutil.copytree(root / 'MNIST' / 'raw', raw)
    f = raw / 't10k-images-idx3-ubyte.gz'
    f.chmod(0o644)
    f.write_bytes(f.read_bytes()[:500_000])
    with pytest.raises(ValueError, match='t10k-images-idx3-ubyte.gz'):
        load_dataset('mnist', root=isolated / 'data', download=False)
    assert not list(raw.glob('*.npz')) and not (isolated / 'user-cache').exists()  # no partial dataset cached


# ---------------------------------------------------------------- IDX files

def test_read_idx_roundtrip_and_corruption(tmp_path):
    a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(tmp_path / 'a.gz', a); write_idx(tmp_path / 'a', a)
    assert np.array_equal(read_idx(tmp_path / 'a.gz'), a) and np.array_equal(read_idx(tmp_path / 'a'), a)
    gz = (tmp_path / 'a.gz').read_bytes()
    (tmp_path / 'cut.gz').write_bytes(gz[:len(gz) // 2])
    with pytest.raises(ValueError, match='cut.gz.*truncated'): read_idx(tmp_path / 'cut.gz')
    (tmp_path / 'notgz.gz').write_bytes(b'plain bytes, not gzip')
    with pytest.raises(ValueError, match='notgz.gz'): read_idx(tmp_path / 'notgz.gz')
    (tmp_path / 'short').write_bytes((tmp_path / 'a').read_bytes()[:-1])
    with pytest.raises(ValueError, match='short: IDX size mismatch'): read_idx(tmp_path / 'short')
    (tmp_path / 'magic').write_bytes(b'\x00\x00\x0d\x01' + bytes(8))  # float IDX: not what we read
    with pytest.raises(ValueError, match='magic: not an unsigned-byte IDX'): read_idx(tmp_path / 'magic')


def test_partial_or_wrong_count_idx_folder(isolated):
    raw = isolated / 'data' / 'FashionMNIST' / 'raw'; raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, stem in data._IDX_STEMS.items():
        write_idx(raw / f'{stem}.gz', rng.integers(0, 256, (20, 28, 28)) if k.startswith('x') else np.arange(20) % 10)
    with pytest.raises(ValueError, match='published 60000'):  # valid files, but not the published dataset
        load_dataset('fashion_mnist', root=isolated / 'data', download=False)
    (raw / 'train-labels-idx1-ubyte.gz').unlink()
    with pytest.raises(FileNotFoundError, match='missing .*train-labels-idx1-ubyte'):
        load_dataset('fashion_mnist', root=isolated / 'data', download=False)


# ---------------------------------------------------------------- image folders

def test_image_folder_loads_and_caches(isolated, monkeypatch):
    root = make_image_folder(isolated / 'pets')
    ds = load_dataset(root)
    assert (ds.name, ds.classes) == ('pets', ['cat', 'dog'])
    assert ds.x_train.shape == (6, 3, 4, 4) and ds.x_test.shape == (4, 3, 4, 4)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [0, 0, 1, 1]
    assert np.array_equal(ds.x_test[2].numpy(), np.asarray(Image.open(root / 'test' / 'dog' / '0.png')).transpose(2, 0, 1))
    assert ds.cache_file.parent == root  # writable folder: the cache lies beside the data
    with monkeypatch.context() as m:
        m.setattr(data, 'decode_images', fail_if_called)
        assert torch.equal(load_dataset(str(root)).x_train, ds.x_train)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / 'train' / 'cat' / '0.png')  # a changed file ...
    changed = load_dataset(root)  # ... changes the fingerprint: decoded again
    assert int(changed.x_train[0].sum()) == 0 and changed.cache_file != ds.cache_file


def test_read_only_folder_caches_in_user_cache(isolated):
    root = make_image_folder(isolated / 'ro')
    root.chmod(0o555)
    try:
        ds = load_dataset(root)
        assert ds.cache_file.parent == isolated / 'user-cache'
        assert not list(root.glob('*.npz')) and not list(root.glob('.*tmp'))
    finally: root.chmod(0o755)


def test_corrupt_cache_is_rebuilt(isolated):
    root = make_image_folder(isolated / 'pets')
    ds = load_dataset(root)
    ds.cache_file.write_bytes(b'garbage')
    with pytest.warns(UserWarning, match='unreadable cache'):
        again = load_dataset(root)
    assert torch.equal(again.x_train, ds.x_train)
    assert np.load(ds.cache_file)['x_train'].shape == (6, 3, 4, 4)


def test_garbage_and_truncated_png(isolated):
    root = make_image_folder(isolated / 'bad')
    (root / 'train' / 'dog' / 'garbage.png').write_bytes(b'this is not a png')
    with pytest.raises(ValueError, match='garbage.png: unreadable image'): load_dataset(root)
    (root / 'train' / 'dog' / 'garbage.png').unlink()
    png = (root / 'test' / 'cat' / '0.png').read_bytes()
    (root / 'test' / 'cat' / '0.png').write_bytes(png[:len(png) // 2])
    with pytest.raises(ValueError, match=r'0.png: unreadable image'): load_dataset(root)


def test_mixed_sizes_rejected(isolated):
    root = make_image_folder(isolated / 'sizes')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'test' / 'dog' / 'big.png')
    with pytest.raises(ValueError, match='big.png: image size 8x8 differs'): load_dataset(root)


def test_one_class_and_mismatched_classes(isolated):
    with pytest.raises(ValueError, match='at least two class folders'):
        load_dataset(make_image_folder(isolated / 'one', classes=('cat',)))
    mis = make_image_folder(isolated / 'mis')
    shutil.rmtree(mis / 'test' / 'dog'); (mis / 'test' / 'cow').mkdir()
    with pytest.raises(ValueError, match=r"class folders differ: only in train \['dog'\], only in test \['cow'\]"):
        load_dataset(mis)
    with pytest.raises(FileNotFoundError, match='not an ImageFolder-style directory'):
        load_dataset(make_image_folder(isolated / 'flat') / 'train')  # no train/ and test/ inside


# ---------------------------------------------------------------- bad names, missing files, downloads

def test_unknown_name():
    with pytest.raises(ValueError, match='unknown dataset .imagenet.') as e: load_dataset('imagenet')
    assert all(n in str(e.value) for n in DATASETS) and 'directory' in str(e.value)
    with pytest.raises(FileNotFoundError, match='no such directory'): load_dataset('./no/such/folder')


@pytest.mark.parametrize('name', ['mnist', 'cifar10'])
def test_missing_files_say_where_and_how(isolated, name):
    (isolated / 'empty').mkdir()
    with pytest.raises(FileNotFoundError) as e: load_dataset(name, root=isolated / 'empty', download=False)
    msg = str(e.value)
    for s in (str(isolated / 'empty'), str(isolated / 'user-cache'), 'GDML_DATA', '../shared/datasets', 'download=True'):
        assert s in msg, (s, msg)


def test_missing_fashion_mentions_debian_package(isolated, monkeypatch):
    monkeypatch.setattr(data, 'DEBIAN_FASHION_MNIST', isolated / 'no-debian')
    with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
        load_dataset('fashion_mnist', root=isolated, download=False)


def test_fashion_found_in_debian_location(isolated, monkeypatch):
    deb = isolated / 'debian'; deb.mkdir()
    rng = np.random.default_rng(0)
    for k, stem in data._IDX_STEMS.items():
        write_idx(deb / f'{stem}.gz', rng.integers(0, 256, (20, 28, 28)) if k.startswith('x') else np.arange(20) % 10)
    monkeypatch.setattr(data, 'DEBIAN_FASHION_MNIST', deb)
    with pytest.raises(ValueError, match=f'from {deb}'):  # found there (and then refused: 20 images, not 70,000)
        load_dataset('fashion_mnist', root=isolated / 'nothing', download=False)


def test_download_policy(isolated, monkeypatch):
    monkeypatch.delenv('GDML_OFFLINE', raising=False)   # CI sets it; this test stubs the probe instead
    calls = []
    monkeypatch.setattr(data, '_download', lambda key, dest: calls.append((key, dest)) or (_ for _ in ()).throw(OSError('no route')))
    monkeypatch.setattr(data, '_online', lambda host, timeout=3.0: False)
    with pytest.raises(FileNotFoundError, match='not reachable'): load_dataset('mnist', root=isolated)
    assert calls == []  # download=None and offline: not even tried
    with pytest.raises(FileNotFoundError, match='download failed: no route'): load_dataset('mnist', root=isolated, download=True)
    assert calls == [('mnist', isolated / 'user-cache')]  # downloads go to the user cache folder


def test_offline_switch_never_probes(isolated, monkeypatch):
    probes = []
    monkeypatch.setattr(data, '_online', lambda host, timeout=3.0: probes.append(host) or True)
    monkeypatch.setenv('GDML_OFFLINE', '1')
    with pytest.raises(FileNotFoundError, match='GDML_OFFLINE'): load_dataset('mnist', root=isolated)
    assert probes == []
