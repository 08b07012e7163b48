"""Carry run records back from a GPU node without network: `pack` there, `unpack` here.

  pack    there (gpu_stage.sh calls it): the records, tables and figures under --results, the
          benchmark JSON and the stage's notes, as one tar.gz for $OUT (the folder that comes back) (at most --max-mib).
          Leaves out temporary files and any .npz holding an array over --max-array-mib (1 MB:
          the paper's 10k x 2 test embeddings are 80 kB).
  unpack  here: check such a tar.gz (paths, array sizes), lay its records, tables and figures
          into the repository's results/ (`results/<profile>/<dataset>/<method>/seed<N>-<hash>/`,
          `results/<profile>/{tables,figures}/`), its benchmark JSON into benchmarks/results/, and
          keep a copy in .gpu/returned/ so that the next command, carrying it, resumes from
          these records. A record whose `git_commit` is 'unknown' (no git on the GPU node) gets the
          commit the tree came from (the tarball's COMMIT), with `git_commit_from` saying so.

usage: python offline_gpu/gpu_results.py pack --results $GDML_GPU_WORK/results --extra DIR... --out $OUT/results.tar.gz
       python offline_gpu/gpu_results.py unpack results.tar.gz [more.tar.gz] [--repo .]
"""
from __future__ import annotations
import argparse, io, json, os, shutil, sys, tarfile, tempfile, zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MB = 10**6


class ResultsError(RuntimeError):
    "A tarball that cannot be packed or unpacked; one line naming the file and why."


def npz_largest_array(data: bytes) -> int:
    "Bytes of the largest array in an .npz file's contents (from the headers: nothing is loaded)."
    largest = 0
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            largest = max(largest, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return largest


def _keep(path: Path, max_array: int) -> str | None:
    "None if `path` goes into the tarball, else why not."
    if path.name.endswith('.tmp') or path.name.startswith('.'): return 'temporary'
    if path.suffix == '.pt': return 'model weights (tens of MB for a ResNet-18: they stay on the device)'
    if path.suffix == '.npz':
        n = npz_largest_array(path.read_bytes())
        if n > max_array: return f'holds an array of {n / MB:.1f} MB'
    return None


def pack(results: Path, extras: list[Path], out: Path, *, max_mib: float = 15.0, max_array_mib: float = 1.0) -> dict:
    "Write `out` (tar.gz): results/<...> from `results`, extra/<name>/<...> from each of `extras`."
    left_out, n = [], 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f'.{out.name}.tmp')
    with tarfile.open(tmp, 'w:gz') as tar:
        for base, arc in [(results, 'results')] + [(e, f'extra/{e.name}') for e in extras]:
            if not base.exists(): continue
            for p in sorted(base.rglob('*')) if base.is_dir() else [base]:
                if not p.is_file(): continue
                why = _keep(p, int(max_array_mib * MB))
                rel = p.relative_to(base) if base.is_dir() else p.name
                if why: left_out.append(f"{p} ({why})"); continue
                tar.add(p, arcname=f'{arc}/{rel}'); n += 1
    size = tmp.stat().st_size
    if size > max_mib * 2**20:
        tmp.unlink()
        raise ResultsError(f"{out}: {size / 2**20:.1f} MiB is over the {max_mib} MiB a returned file may have; "
                           "pack fewer folders (--results one profile)")
    os.replace(tmp, out)
    return dict(files=n, bytes=size, left_out=left_out)


def _safe_members(tar: tarfile.TarFile, name: str):
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith('/') or '..' in parts or not (m.isfile() or m.isdir()):
            raise ResultsError(f"{name}: unsafe member {m.name!r} (absolute, '..' or not a plain file)")
        if parts[0] not in ('results', 'extra'):
            raise ResultsError(f"{name}: member {m.name!r} is outside results/ and extra/; not a gpu_results tarball")
        yield m


def unpack(tarball: Path, repo: Path = REPO, *, max_array_mib: float = 1.0) -> dict:
    "Lay the tarball's records into repo/results, its bench JSON into repo/benchmarks/results; keep a copy in repo/.gpu/returned."
    from gdml.store import RESULT, load_record
    tarball = Path(tarball)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tarball) as tar:
        tar.extractall(tmp, members=list(_safe_members(tar, str(tarball))), filter='data')
        tmp = Path(tmp)
        commit = next((p.read_text().strip() for p in tmp.glob('extra/*/COMMIT')), 'unknown')
        device_root = next((p.read_text().strip() for p in tmp.glob('extra/*/RESULTS_ROOT')), None)
        copied, records = [], []
        for p in sorted((tmp/'results').rglob('*')) if (tmp/'results').exists() else []:
            if not p.is_file(): continue
            if p.suffix == '.npz' and npz_largest_array(p.read_bytes()) > max_array_mib * MB:
                raise ResultsError(f"{tarball}: {p.relative_to(tmp)} holds an array over {max_array_mib} MB")
            rel = p.relative_to(tmp/'results')
            dest = repo/'results'/rel
            data = p.read_bytes()
            if p.name == RESULT:
                rec = json.loads(data)
                if rec.get('git_commit', 'unknown') == 'unknown' and commit != 'unknown':
                    rec.update(git_commit=commit, git_commit_from='.gpu/COMMIT (the tree sent to the GPU node)')
                    data = (json.dumps(rec, indent=1)).encode()
                records.append(dest.parent)
            if p.name == 'sweep.json' and device_root:   # the device's absolute run folders -> this checkout's
                data = data.replace(device_root.encode(), str((repo/'results').resolve()).encode())
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp_dest = dest.with_name(f'.{dest.name}.tmp'); tmp_dest.write_bytes(data); os.replace(tmp_dest, dest)
            copied.append(dest)
        for p in tmp.glob('extra/*/*.json'):
            if p.name.startswith('bench'):
                device = str(json.loads(p.read_text()).get('device', 'device'))
                slug = ''.join(ch if ch.isalnum() else '-' for ch in device.lower()).strip('-')
                dest = repo/'benchmarks'/'results'/f"gpu_{slug}_{p.name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest); copied.append(dest)
        for d in records: load_record(d)   # each laid-out record reads back
    keep = repo/'.gpu'/'returned'/tarball.name
    if keep.resolve() != tarball.resolve():
        keep.parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(tarball, keep)
    return dict(files=len(copied), records=len(records), commit=commit, kept=str(keep))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('pack')
    p.add_argument('--results', required=True, help='folder of the profiles\' record folders')
    p.add_argument('--extra', nargs='*', default=[], help='folders or files to add under extra/')
    p.add_argument('--out', required=True)
    p.add_argument('--max-mib', type=float, default=15.0)
    p.add_argument('--max-array-mib', type=float, default=1.0)
    u = sub.add_parser('unpack')
    u.add_argument('tarballs', nargs='+')
    u.add_argument('--repo', default=str(REPO))
    u.add_argument('--max-array-mib', type=float, default=1.0)
    a = ap.parse_args(argv)
    try:
        if a.cmd == 'pack':
            r = pack(Path(a.results), [Path(e) for e in a.extra], Path(a.out), max_mib=a.max_mib, max_array_mib=a.max_array_mib)
            print(f"gpu_results: {r['files']} files, {r['bytes'] / MB:.2f} MB -> {a.out}")
            for x in r['left_out']: print(f"gpu_results: left out {x}")
        else:
            for t in a.tarballs:
                r = unpack(Path(t), Path(a.repo), max_array_mib=a.max_array_mib)
                print(f"gpu_results: {t}: {r['records']} records, {r['files']} files into {Path(a.repo)/'results'} "
                      f"(commit {r['commit'][:10]}); copy kept in {r['kept']}")
    except (ResultsError, tarfile.TarError, FileNotFoundError) as e:
        print(f"gpu_results {a.cmd}: error: {e}", file=sys.stderr); return 2
    return 0


if __name__ == '__main__': sys.exit(main())
