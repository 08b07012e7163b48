"""Tests of gdml.data: the embedded digits set, the paper's three datasets (when the data root holds
them), the decoded-array cache, and the errors for corrupt files and bad input."""
import gzip, os, shutil, struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gdml.data as data
import gdml.datacache as datacache
from gdml.data import PUBLISHED, class_counts, load_dataset

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
    if root is None: pytest.skip(f'GDML_DATA is unset or not a folder; {name} needs the real data (GDML_DATA: your data root)')
    if not (root / REAL_DIRS[name]).is_dir(): pytest.skip(f'{root} has no {REAL_DIRS[name]}')
    return root


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
    if not datacache.writable(root / REAL_DIRS[name]): assert root not in ds.cache_file.parents
    # second load: from the cache, without decoding anything
    monkeypatch.setattr(data, 'read_idx', fail_if_called)
    monkeypatch.setattr(data, 'decode_images', fail_if_called)
    monkeypatch.setattr(data, '_decode', fail_if_called)
    again = load_dataset(name, download=False)
    assert again.cache_file == ds.cache_file
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)


def copy_raw_files(src, dst, names):
    "Copy only the named raw files of a dataset: never a cache that earlier runs left in the data root."
    dst.mkdir(parents=True)
    for n in names: shutil.copyfile(src / n, dst / n)


@pytest.fixture(params=['as shipped', 'after runs'])
def mnist_root(request, tmp_path):
    "The real MNIST data root, and one as runs with a writable GDML_DATA leave it: a decoded cache beside the files."
    root = need_real('mnist')
    if request.param == 'as shipped': return root
    raw = tmp_path / 'used' / 'MNIST' / 'raw'; raw.mkdir(parents=True)
    for f in (root / 'MNIST' / 'raw').iterdir(): (raw / f.name).symlink_to(f)
    np.savez(raw / 'gdml-mnist-0123abcd-0123456789abcdef.npz', x_train=np.zeros(1))
    return tmp_path / 'used'


def test_truncated_real_mnist_copy(isolated, mnist_root):
    raw = isolated / 'data' / 'MNIST' / 'raw'
    copy_raw_files(mnist_root / 'MNIST' / 'raw', raw, [f'{s}.gz' for s in data._IDX_STEMS.values()])
    f = raw / 't10k-images-idx3-ubyte.gz'
    f.write_bytes(f.read_bytes()[:500_000])
    with pytest.raises(ValueError, match='t10k-images-idx3-ubyte.gz'):
        load_dataset('mnist', root=isolated / 'data', download=False)
    assert not list(raw.glob('*.npz')) and not (isolated / 'user-cache').exists()  # no partial dataset cached


# ---------------------------------------------------------------- image folders

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


def test_16bit_greyscale_is_scaled_not_clipped(isolated):
    # PIL's convert('L') clips 16-bit values to 255: such a folder loaded as all white (issue 12, point 5)
    root, rng = isolated / 'deep', np.random.default_rng(0)
    for split in ('train', 'test'):
        for c in ('a', 'b'):
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 65536, (4, 4), dtype=np.uint16)).save(root / split / c / f'{i}.png')
    ds = load_dataset(root)
    v = np.asarray(Image.open(root / 'train' / 'a' / '0.png')).astype(np.int64)
    assert Image.open(root / 'train' / 'a' / '0.png').mode == 'I;16' and ds.x_train.shape == (4, 1, 4, 4)
    assert np.array_equal(ds.x_train[0, 0].numpy(), np.round(v * 255 / 65535))  # scaled, rounded
    Image.fromarray(np.ones((4, 4), np.float32)).save(root / 'train' / 'a' / 'f.tiff')
    with pytest.raises(ValueError, match=r'f.tiff: a 32-bit float image \(PIL mode F\)'): load_dataset(root)


def test_invalid_dataset_is_never_cached(isolated):
    raw = isolated / 'data' / 'MNIST' / 'raw'; raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, stem in data._IDX_STEMS.items():   # valid IDX files, but 20 images: not the published MNIST
        write_idx(raw / f'{stem}.gz', rng.integers(0, 256, (20, 28, 28)) if k.startswith('x') else np.arange(20) % 10)
    with pytest.raises(ValueError, match='published 60000'): load_dataset('mnist', root=isolated / 'data', download=False)
    assert not list(raw.glob('*.npz')) and not (isolated / 'user-cache').exists()


def test_a_new_cache_replaces_the_old_one(isolated):
    root = make_image_folder(isolated / 'pets')
    caches = []
    for value in (0, 128, 255):   # three edits of one file: three contents, one cache left
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(root / 'train' / 'cat' / '0.png')
        ds = load_dataset(root)
        assert int(ds.x_train[0].max()) == value
        caches.append(ds.cache_file)
    assert len(set(caches)) == 3 and list(root.glob('*.npz')) == [caches[-1]]


def test_cache_is_keyed_on_content_not_size_and_mtime(isolated):
    root = make_image_folder(isolated / 'bmp')
    f = root / 'train' / 'cat' / '0.png'
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(f, format='BMP')   # BMP: the size depends on the shape only
    assert int(load_dataset(root).x_train[0].max()) == 0
    st = f.stat()
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(f, format='BMP')
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))   # as `cp -p` or `rsync -t` keep them
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert int(load_dataset(root).x_train[0].max()) == 9


def test_missing_data_message_serves_the_command_line_too(isolated):
    with pytest.raises(FileNotFoundError) as e: load_dataset('mnist', root=isolated, download=False)
    msg = str(e.value)
    assert "load_dataset('mnist', download=True) in Python" in msg and 'GDML_OFFLINE is unset' in msg
    assert 'or pass download=True' not in msg and '\n' not in msg


# ---------------------------------------------------------------- bad names, missing files, downloads

@pytest.mark.parametrize('name', ['mnist', 'cifar10'])
def test_missing_files_say_where_and_how(isolated, name):
    (isolated / 'empty').mkdir()
    with pytest.raises(FileNotFoundError) as e: load_dataset(name, root=isolated / 'empty', download=False)
    msg = str(e.value)
    for s in (str(isolated / 'empty'), str(isolated / 'user-cache'), 'GDML_DATA', 'your data root', 'download=True'):
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
