"""Pack the datasets and the missing Python packages for a GPU node without network;
receive and unpack them there.

The GPU node has no network and receives only the working tree plus a few git-ignored folders, with a size
limit per transfer (64 MiB), so everything it needs travels as files under `.gpu/` (git-ignored), in parts:

  pack      here: datasets -> `.gpu/<name>.pack.NN` parts (each under --part-mib), checksums in
            `.gpu/manifest.json`: of every part, of the whole pack, and of the arrays that
            `gdml.data.load_dataset` returns for the dataset (what the runs will train on).
            MNIST / Fashion-MNIST: the four IDX files, decompressed, in one xz stream (xz packs
            them ~15% tighter than their gzip). Image folders (CIFAR-10's `cifar10-png/`, or any
            ImageFolder-style directory): every image in load order, tiled 32x32 per tile into
            lossless WebP (colour) or PNG (grey), plus the file names; ~0.49 of the raw bytes.
  site      here: `.whl/*.whl` (from gpu_wheels.sh) installed for CPython 3.12 into a folder,
            packed as `.gpu/site.pack.NN` (xz; about half the size of the wheels).
  repart    here: split a pack again into parts of another size (no re-encoding).
  receive   there: copy the parts found under --src into --incoming (a folder that outlives the
            call while the machine stays warm), so a pack can arrive over several calls.
  unpack    there: reassemble each pack from --src and --incoming, check its checksums, lay it
            out under --root in the layout load_dataset reads (`MNIST/raw/*-ubyte`,
            `FashionMNIST/raw/*-ubyte`, `cifar10-png/{train,test}/<class>/<file>.png`), then load
            it with load_dataset and compare the arrays' checksums with the manifest's. A marker
            makes a second call skip what is done. `site` unpacks into --site.
  status    either side: which packs are complete, which parts are missing.

usage:
  python offline_gpu/gpu_pack.py pack mnist fashion_mnist cifar10 [--data $GDML_DATA] [--dest .gpu]
  python offline_gpu/gpu_pack.py site [--wheels .whl] [--dest .gpu]
  python offline_gpu/gpu_pack.py repart cifar10 --part-mib 58
  python offline_gpu/gpu_pack.py receive --src .gpu --incoming $GDML_GPU_WORK/incoming
  python offline_gpu/gpu_pack.py unpack [NAME ...|all] --src .gpu --incoming DIR --root DIR [--site DIR]
  python offline_gpu/gpu_pack.py status --src .gpu [--incoming DIR]
"""
from __future__ import annotations
import argparse, hashlib, io, json, lzma, os, shutil, subprocess, sys, tarfile, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MANIFEST = 'manifest.json'
MIB = 2**20
# where load_dataset looks for each named benchmark under its data root (the README's layouts)
IDX_DIRS = {'mnist': 'MNIST/raw', 'fashion_mnist': 'FashionMNIST/raw'}
IDX_STEMS = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
FOLDER_DIRS = {'cifar10': 'cifar10-png'}
ARRAYS = ('x_train', 'y_train', 'x_test', 'y_test')
TILE = 32          # images per tile side: 32x32 CIFAR images make 1024x1024 tiles
WEBP_MAX = 16383   # WebP's largest side
SITE_TAGS = ['--python-version', '3.12', '--implementation', 'cp'] + [
    a for p in ('manylinux_2_28', 'manylinux_2_27', 'manylinux_2_26', 'manylinux_2_17', 'manylinux2014',
                'manylinux_2_12', 'manylinux2010', 'manylinux_2_5', 'manylinux1') for a in ('--platform', f'{p}_x86_64')]


class PackError(RuntimeError):
    "A pack that cannot be made or used; the message is one line naming the file and what to do."


def log(*a): print('gpu_pack:', *a, flush=True)


# ---------------------------------------------------------------- checksums, atomic files, parts
def sha256_file(path, bufsize=4 * MIB) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(bufsize): h.update(chunk)
    return h.hexdigest()


def array_digests(ds) -> dict:
    "sha256, shape and dtype of the four arrays of a `GDMLDataset`, and its class names."
    out = {}
    for k in ARRAYS:
        a = np.ascontiguousarray(getattr(ds, k).numpy())
        out[k] = dict(sha256=hashlib.sha256(a.tobytes()).hexdigest(), shape=list(a.shape), dtype=str(a.dtype))
    out['classes'] = [str(c) for c in ds.classes]
    return out


def atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f: f.write(data)
        os.chmod(tmp, 0o644); os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True); raise


def read_manifest(src: Path) -> dict:
    p = Path(src)/MANIFEST
    if not p.exists(): raise PackError(f"{p} not found: run `python offline_gpu/gpu_pack.py pack ...` here first "
                                       "and carry the folder (its manifest.json too)")
    return json.loads(p.read_text())


def update_manifest(dest: Path, key: str, entry: dict):
    "Merge one pack's entry into dest/manifest.json (packs made at different times accumulate)."
    p = dest/MANIFEST
    man = json.loads(p.read_text()) if p.exists() else dict(packs={})
    man['packs'][key] = entry
    man['updated'] = time.strftime('%Y-%m-%d %H:%M:%S')
    atomic_write(p, (json.dumps(man, indent=1) + '\n').encode())


def write_parts(stream: Path, dest: Path, key: str, part_bytes: int) -> list[dict]:
    "Split the file `stream` into dest/<key>.pack.NN parts of at most `part_bytes`; their names and checksums."
    for old in dest.glob(f'{key}.pack.*'): old.unlink()   # a re-pack may have fewer parts
    parts = []
    with open(stream, 'rb') as f:
        while chunk := f.read(part_bytes):
            name = f'{key}.pack.{len(parts):02d}'
            atomic_write(dest/name, chunk)
            parts.append(dict(file=name, bytes=len(chunk), sha256=hashlib.sha256(chunk).hexdigest()))
    return parts


def git_commit() -> str:
    try: return subprocess.check_output(['git', 'rev-parse', 'HEAD'], cwd=REPO, text=True, stderr=subprocess.DEVNULL).strip()
    except Exception: return 'unknown'


# ---------------------------------------------------------------- packing (here)
def find_idx_files(name: str, data_root: Path) -> list[Path]:
    d = data_root/IDX_DIRS[name]
    files = []
    for stem in IDX_STEMS:
        found = [d/n for n in (stem, stem + '.gz') if (d/n).is_file()]
        if not found: raise PackError(f"{name}: {d} lacks {stem}(.gz); set --data to the folder holding {IDX_DIRS[name]}/")
        files.append(found[0])
    return files


def idx_tar_xz(name: str, data_root: Path, out: Path, preset: int) -> dict:
    "The four IDX files of `name`, decompressed, as one tar.xz stream at `out`; each member's sha256."
    import gzip
    members = {}
    with lzma.open(out, 'wb', preset=preset) as xz, tarfile.open(fileobj=xz, mode='w|') as tar:
        for f in find_idx_files(name, data_root):
            raw = gzip.decompress(f.read_bytes()) if f.suffix == '.gz' else f.read_bytes()
            arc = f"{IDX_DIRS[name]}/{f.name.removesuffix('.gz')}"
            info = tarfile.TarInfo(arc); info.size = len(raw); info.mtime = 0; info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
            members[arc] = hashlib.sha256(raw).hexdigest()
    return members


def tile_grid(h: int, w: int) -> tuple[int, int]:
    "Images per tile row and column for (h, w) images: up to TILE each, within WebP's side limit."
    return max(1, min(TILE, WEBP_MAX // w)), max(1, min(TILE, WEBP_MAX // h))


def encode_tile(imgs: np.ndarray, cols: int, rows: int, fmt: str, webp_method: int) -> bytes:
    "uint8 images (n <= cols*rows, C, H, W) as one lossless image of rows x cols cells (unused cells black)."
    from PIL import Image
    n, c, h, w = imgs.shape
    grid = np.zeros((rows * cols, h, w, c), np.uint8)
    grid[:n] = imgs.transpose(0, 2, 3, 1)
    grid = grid.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)
    im = Image.fromarray(grid[..., 0] if c == 1 else grid, 'L' if c == 1 else 'RGB')
    buf = io.BytesIO()
    if fmt == 'webp': im.save(buf, 'WEBP', lossless=True, quality=100, method=webp_method, exact=True)
    else: im.save(buf, 'PNG', optimize=True)
    return buf.getvalue()


def decode_tile(data: bytes, n: int, c: int, h: int, w: int, cols: int, rows: int) -> np.ndarray:
    "Inverse of `encode_tile`: the first `n` images (n, C, H, W)."
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im: a = np.asarray(im.convert('L' if c == 1 else 'RGB'))
    a = a.reshape(rows * h, cols * w, c) if c == 1 else a
    a = a.reshape(rows, h, cols, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * cols, h, w, c)
    return np.ascontiguousarray(a[:n].transpose(0, 3, 1, 2))


def folder_tar(name: str, folder: Path, ds, out: Path, webp_method: int, workers: int) -> dict:
    "Every image of the image-folder dataset `ds` (loaded from `folder`) tiled into lossless images, as a tar at `out`."
    from PIL import features
    from gdml.images import scan_image_folder
    classes, items = scan_image_folder(folder)   # load_dataset's own order: class folders, then sorted names
    c, h, w = (int(s) for s in ds.x_train.shape[1:])
    fmt = 'webp' if c == 3 and features.check('webp') else 'png'
    cols, rows = tile_grid(h, w)
    per = cols * rows
    index = dict(name=name, classes=list(classes), shape=[c, h, w], format=fmt, cols=cols, rows=rows, splits={})
    with tarfile.open(out, 'w') as tar, ThreadPoolExecutor(workers) as pool:
        for split in ('train', 'test'):
            x = getattr(ds, f'x_{split}').numpy()
            names = [os.path.relpath(p, folder/split) for p, _ in items[split]]
            labels = [int(l) for _, l in items[split]]
            if len(names) != len(x) or labels != getattr(ds, f'y_{split}').tolist():
                raise PackError(f"{name}: {folder/split} lists {len(names)} files whose labels differ from the "
                                f"{len(x)} loaded images; the folder changed since it was cached?")
            starts = range(0, len(x), per)
            blobs = list(pool.map(lambda s: encode_tile(x[s:s + per], cols, rows, fmt, webp_method), starts))
            tiles = []
            for s, blob in zip(starts, blobs):
                back = decode_tile(blob, min(per, len(x) - s), c, h, w, cols, rows)
                if not np.array_equal(back, x[s:s + per]):   # lossless or nothing
                    raise PackError(f"{name}: tile {split}/{s} does not decode to the same pixels ({fmt})")
                arc = f"{split}-{len(tiles):04d}.{fmt}"
                info = tarfile.TarInfo(arc); info.size = len(blob); info.mtime = 0; info.mode = 0o644
                tar.addfile(info, io.BytesIO(blob)); tiles.append(arc)
            index['splits'][split] = dict(n=len(x), names=names, labels=labels, tiles=tiles)
        blob = lzma.compress(json.dumps(index).encode(), preset=6)
        info = tarfile.TarInfo('index.json.xz'); info.size = len(blob); info.mtime = 0; info.mode = 0o644
        tar.addfile(info, io.BytesIO(blob))
    return dict(format=fmt, tile=[cols, rows], images=sum(s['n'] for s in index['splits'].values()))


def dataset_source(name: str, data_root: Path) -> tuple[str, str, Path | None]:
    "(kind, layout folder relative to the data root, image folder) of a dataset name or an image-folder path."
    if name in IDX_DIRS: return 'idx', IDX_DIRS[name], None
    if name in FOLDER_DIRS:
        folder = data_root/FOLDER_DIRS[name]
        if not folder.is_dir():
            raise PackError(f"{name}: {folder} not found; only the PNG class-folder layout is packed "
                            f"(torchvision's python batches are checked against md5 sums a re-pack cannot keep)")
        return 'folder', FOLDER_DIRS[name], folder
    p = Path(name).expanduser().resolve()
    if (p/'train').is_dir() and (p/'test').is_dir(): return 'folder', p.name, p
    raise PackError(f"cannot pack {name!r}: use mnist, fashion_mnist, cifar10 or an ImageFolder-style directory")


def pack_dataset(name: str, data_root: Path, dest: Path, *, part_mib: float, preset: int, webp_method: int,
                 workers: int) -> dict:
    "Pack one dataset into dest/<key>.pack.NN and record it in dest/manifest.json; returns its entry."
    from gdml.data import load_dataset
    t0 = time.perf_counter()
    kind, layout, folder = dataset_source(name, data_root)
    generic = folder is not None and name not in FOLDER_DIRS    # an ImageFolder path, not a named benchmark
    key = folder.name if generic else name
    ds = load_dataset(folder if generic else name, root=data_root)
    digests = array_digests(ds)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        stream = Path(tmp)/'stream'
        if kind == 'idx': extra = dict(members=idx_tar_xz(name, data_root, stream, preset), compression='xz')
        else: extra = dict(folder_tar(key, folder, ds, stream, webp_method, workers), compression='none')
        whole = sha256_file(stream)
        parts = write_parts(stream, dest, key, int(part_mib * MIB))
    entry = dict(kind=kind, name=key, layout=layout, load_name=None if generic else name,
                 sha256=whole, bytes=sum(p['bytes'] for p in parts), parts=parts, arrays=digests,
                 source=str(data_root if folder is None else folder), commit=git_commit(), **extra)
    update_manifest(dest, key, entry)
    log(f"{key}: {len(parts)} part(s), {entry['bytes'] / 1e6:.1f} MB ({kind}) in {time.perf_counter() - t0:.0f} s")
    return entry


def pack_site(wheels: Path, dest: Path, *, part_mib: float, preset: int, python: str = sys.executable) -> dict:
    "Install the wheels for CPython 3.12 into a folder here (no network, no compiling) and pack it as xz."
    whls = sorted(Path(wheels).glob('*.whl'))
    if not whls: raise PackError(f"no wheels in {wheels}: run offline_gpu/gpu_wheels.sh first")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        target = Path(tmp)/'site'
        r = subprocess.run([python, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile',
                            '--only-binary=:all:', *SITE_TAGS, '--target', str(target), *map(str, whls)],
                           capture_output=True, text=True)
        if r.returncode: raise PackError(f"pip install --target failed: {r.stderr.strip().splitlines()[-1]}")
        shutil.rmtree(target/'bin', ignore_errors=True)   # console scripts with this machine's interpreter path
        stream = Path(tmp)/'stream'
        with lzma.open(stream, 'wb', preset=preset) as xz, tarfile.open(fileobj=xz, mode='w|') as tar:
            tar.add(target, arcname='.', filter=lambda ti: (setattr(ti, 'mtime', 0), ti)[1])
        parts = write_parts(stream, dest, 'site', int(part_mib * MIB))
        entry = dict(kind='site', sha256=sha256_file(stream), bytes=sum(p['bytes'] for p in parts), parts=parts,
                     compression='xz', wheels=[w.name for w in whls], python='3.12', commit=git_commit())
    update_manifest(dest, 'site', entry)
    log(f"site: {len(whls)} wheels -> {len(parts)} part(s), {entry['bytes'] / 1e6:.1f} MB")
    return entry


def repart(key: str, dest: Path, part_mib: float) -> dict:
    "Split pack `key` again into parts of at most `part_mib` MiB (no re-encoding); updates the manifest."
    man = read_manifest(dest)
    if key not in man['packs']: raise PackError(f"no pack named {key}; the manifest has {', '.join(man['packs'])}")
    entry = man['packs'][key]
    parts, missing = find_parts(entry, [dest])
    if missing: raise PackError(f"{key}: parts missing in {dest}: {' '.join(missing)}")
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        stream = Path(tmp)/'stream'
        with open(stream, 'wb') as out, _stream(parts) as f: shutil.copyfileobj(f, out, 4 * MIB)
        if sha256_file(stream) != entry['sha256']: raise PackError(f"{key}: the parts do not reassemble to the packed stream")
        entry['parts'] = write_parts(stream, dest, key, int(part_mib * MIB))
    update_manifest(dest, key, entry)
    log(f"{key}: {len(entry['parts'])} part(s): " + ', '.join(f"{p['bytes'] / 1e6:.1f} MB" for p in entry['parts']))
    return entry


# ---------------------------------------------------------------- receiving and unpacking (there)
def find_parts(entry: dict, dirs: list[Path]) -> tuple[list[Path], list[str]]:
    "Each part of `entry` found (with the right checksum) in one of `dirs`, and the names of the missing ones."
    found, missing = [], []
    for p in entry['parts']:
        hit = None
        for d in dirs:
            f = Path(d)/p['file']
            if f.is_file() and f.stat().st_size == p['bytes'] and sha256_file(f) == p['sha256']: hit = f; break
        if hit: found.append(hit)
        else: missing.append(p['file'])
    return found, missing


def receive(src: Path, incoming: Path) -> dict:
    "Copy the (checked) parts under `src` into `incoming`; returns {pack: missing part names}."
    man = read_manifest(src)
    incoming.mkdir(parents=True, exist_ok=True)
    atomic_write(incoming/MANIFEST, (Path(src)/MANIFEST).read_bytes())
    status = {}
    for key, entry in man['packs'].items():
        for p in entry['parts']:
            f = Path(src)/p['file']
            if f.is_file() and not (incoming/p['file']).is_file():
                if sha256_file(f) != p['sha256']: raise PackError(f"{f}: checksum differs from the manifest; pack it again")
                shutil.copyfile(f, incoming/f'.{p["file"]}.tmp'); os.replace(incoming/f'.{p["file"]}.tmp', incoming/p['file'])
        status[key] = find_parts(entry, [incoming])[1]
    return status


def _stream(parts: list[Path]):
    "A readable binary stream over the concatenated parts."
    class Cat(io.RawIOBase):
        def __init__(self): self.files, self.cur = iter(parts), None
        def readable(self): return True
        def readinto(self, b):
            while True:
                if self.cur is None:
                    nxt = next(self.files, None)
                    if nxt is None: return 0
                    self.cur = open(nxt, 'rb')
                n = self.cur.readinto(b)
                if n: return n
                self.cur.close(); self.cur = None
    return io.BufferedReader(Cat(), 4 * MIB)


def _whole_sha(parts: list[Path]) -> str:
    h = hashlib.sha256()
    with _stream(parts) as f:
        while chunk := f.read(4 * MIB): h.update(chunk)
    return h.hexdigest()


def _open_tar(parts: list[Path], compression: str):
    f = _stream(parts)
    return tarfile.open(fileobj=lzma.open(f) if compression == 'xz' else f, mode='r|')


def _marker(root: Path, key: str) -> Path: return root/f'.gdml-pack-{key}'


def verify_dataset(entry: dict, root: Path) -> None:
    "Load the unpacked dataset with load_dataset and compare its arrays' checksums with the manifest's."
    from gdml.data import load_dataset
    ds = load_dataset(entry['load_name'] or root/entry['layout'], root=root)
    got = array_digests(ds)
    bad = [k for k in (*ARRAYS, 'classes') if got[k] != entry['arrays'][k]]
    if bad: raise PackError(f"{entry['name']}: unpacked under {root} but {', '.join(bad)} differ from the packed "
                            "dataset's checksums; delete the folder and unpack again")


def unpack_folder(tar, root: Path, layout: str, workers: int) -> None:
    "Write the tiled images back as one PNG per image under root/layout/{train,test}/<class>/<name>."
    from PIL import Image
    blobs = {m.name: tar.extractfile(m).read() for m in tar}
    index = json.loads(lzma.decompress(blobs.pop('index.json.xz')))
    c, h, w = index['shape']
    cols, rows = index['cols'], index['rows']
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f'.{Path(layout).name}.'))
    def write(args):
        split, t, tile = args
        s = index['splits'][split]
        lo = t * cols * rows
        imgs = decode_tile(blobs[tile], min(cols * rows, s['n'] - lo), c, h, w, cols, rows)
        for i, img in enumerate(imgs):
            f = tmp/split/s['names'][lo + i]
            Image.fromarray(img[0] if c == 1 else img.transpose(1, 2, 0)).save(f, 'PNG', compress_level=1)
        return len(imgs)
    for split, s in index['splits'].items():
        for name in {os.path.dirname(n) for n in s['names']}: (tmp/split/name).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(workers) as pool:
        n = sum(pool.map(write, [(sp, t, tile) for sp, s in index['splits'].items() for t, tile in enumerate(s['tiles'])]))
    if n != sum(s['n'] for s in index['splits'].values()): raise PackError(f"{layout}: wrote {n} images, expected more")
    dest = root/layout
    if dest.exists(): shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def unpack(key: str, entry: dict, dirs: list[Path], root: Path, site: Path | None, workers: int) -> str:
    "Unpack one pack (dataset under `root`, site into `site`); 'done', 'already there' or 'missing parts: ...'."
    target = site if entry['kind'] == 'site' else root
    if target is None: return 'skipped (no --site given)'
    if entry['kind'] == 'site' and f"{sys.version_info[0]}.{sys.version_info[1]}" != entry['python']:
        return f"skipped (built for Python {entry['python']}, this is {sys.version.split()[0]})"
    if _marker(target, key).is_file() and _marker(target, key).read_text().strip() == entry['sha256']:
        return 'already there'
    parts, missing = find_parts(entry, dirs)
    if missing: return f"missing parts: {' '.join(missing)}"
    if _whole_sha(parts) != entry['sha256']: raise PackError(f"{key}: the reassembled pack's checksum differs; pack it again")
    target.mkdir(parents=True, exist_ok=True)
    _marker(target, key).unlink(missing_ok=True)
    with _open_tar(parts, entry['compression']) as tar:
        if entry['kind'] == 'folder': unpack_folder(tar, root, entry['layout'], workers)
        else: tar.extractall(target, filter='data')
    if entry['kind'] == 'idx':
        for arc, sha in entry['members'].items():
            if sha256_file(root/arc) != sha: raise PackError(f"{root/arc}: checksum differs from the packed IDX file")
    if entry['kind'] != 'site': verify_dataset(entry, root)
    atomic_write(_marker(target, key), (entry['sha256'] + '\n').encode())
    return 'done'


def status(src: Path, incoming: Path | None) -> dict:
    dirs = [src] + ([incoming] if incoming else [])
    man = read_manifest(src if (Path(src)/MANIFEST).exists() or not incoming else incoming)
    return {k: find_parts(e, dirs)[1] for k, e in man['packs'].items()}


# ---------------------------------------------------------------- command line
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('pack', help='datasets -> .gpu/<name>.pack.NN')
    p.add_argument('datasets', nargs='+', help='mnist, fashion_mnist, cifar10 or ImageFolder-style directories')
    p.add_argument('--data', default=os.environ.get('GDML_DATA'), help='data root (default $GDML_DATA)')
    p.add_argument('--dest', default=str(REPO/'.gpu'))
    p.add_argument('--part-mib', type=float, default=45.0, help='largest part, MiB (default 45)')
    p.add_argument('--xz-preset', type=int, default=9, help='xz preset for IDX data, 0-9 (default 9)')
    p.add_argument('--webp-method', type=int, default=6, help='WebP effort 0-6 (default 6, the smallest)')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    s = sub.add_parser('site', help='.whl/*.whl -> .gpu/site.pack.NN')
    s.add_argument('--wheels', default=str(REPO/'.whl'))
    s.add_argument('--dest', default=str(REPO/'.gpu'))
    s.add_argument('--part-mib', type=float, default=45.0)
    s.add_argument('--xz-preset', type=int, default=9)
    rp = sub.add_parser('repart', help='split a pack again into parts of another size')
    rp.add_argument('pack')
    rp.add_argument('--part-mib', type=float, required=True)
    rp.add_argument('--dest', default=str(REPO/'.gpu'))
    r = sub.add_parser('receive', help='keep the parts found under --src in --incoming')
    u = sub.add_parser('unpack', help='reassemble, check and lay out packs')
    u.add_argument('packs', nargs='*', default=['all'], help="pack names, or 'all' (default)")
    st = sub.add_parser('status', help='which packs are complete')
    for q in (r, u, st):
        q.add_argument('--src', default=str(REPO/'.gpu'), help='folder the parts travelled in')
        q.add_argument('--incoming', default=None, help='folder keeping parts between calls')
    u.add_argument('--root', required=True, help='data root to lay the datasets out in (GDML_DATA there)')
    u.add_argument('--site', default=None, help="folder for the 'site' pack (on PYTHONPATH there)")
    u.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    a = ap.parse_args(argv)
    try:
        if a.cmd == 'pack':
            if not a.data: raise PackError("no data root: pass --data or set GDML_DATA")
            for name in a.datasets:
                pack_dataset(name, Path(a.data).resolve(), Path(a.dest), part_mib=a.part_mib, preset=a.xz_preset,
                             webp_method=a.webp_method, workers=a.workers)
        elif a.cmd == 'site':
            pack_site(Path(a.wheels), Path(a.dest), part_mib=a.part_mib, preset=a.xz_preset)
        elif a.cmd == 'repart':
            repart(a.pack, Path(a.dest), a.part_mib)
        elif a.cmd == 'receive':
            for k, miss in receive(Path(a.src), Path(a.incoming or a.src)).items():
                log(f"{k}: {'complete' if not miss else 'missing ' + ' '.join(miss)}")
        elif a.cmd == 'status':
            for k, miss in status(Path(a.src), Path(a.incoming) if a.incoming else None).items():
                log(f"{k}: {'complete' if not miss else 'missing ' + ' '.join(miss)}")
        else:
            dirs = [Path(a.src)] + ([Path(a.incoming)] if a.incoming else [])
            man = read_manifest(dirs[0] if (dirs[0]/MANIFEST).exists() else dirs[-1])
            keys = list(man['packs']) if a.packs == ['all'] else a.packs
            unknown = [k for k in keys if k not in man['packs']]
            if unknown: raise PackError(f"no pack named {', '.join(unknown)}; the manifest has {', '.join(man['packs'])}")
            failed = False
            for k in keys:
                t0 = time.perf_counter()
                res = unpack(k, man['packs'][k], dirs, Path(a.root).resolve(), Path(a.site).resolve() if a.site else None, a.workers)
                failed |= res.startswith('missing')
                log(f"{k}: {res} ({time.perf_counter() - t0:.1f} s)")
            return 3 if failed else 0
    except PackError as e:
        print(f"gpu_pack {a.cmd}: error: {e}", file=sys.stderr); return 2
    return 0


if __name__ == '__main__': sys.exit(main())
