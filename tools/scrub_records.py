"""Remove the machine a record was made on from committed run records: absolute paths and the interpreter's location.

Records keep versions, not paths. Under each folder given (default `results/`) it rewrites, in place and atomically
(a temporary file beside it, then os.replace):

  result.json  drops `versions.python_executable`.
  run.ipynb    (the executed run notebook) in papermill's injected-parameters cell and in its metadata, the absolute
               `out_dir` and `zhat_cache` become paths relative to the run folder (`../../..`,
               `../../../.zhat-cache`); `input_path` keeps its part from `nbs/` on, `output_path` becomes relative to
               the run folder; in the outputs, the `kernel python: ...` line is dropped and the absolute run folder
               printed by the notebook becomes the one the relative `out_dir` gives.
  sweep.json   each cell's absolute `dir` becomes relative to the manifest's folder (`<dataset>/<method>/<run>`).

Nothing else changes: a file is rewritten only when its JSON text round-trips through json.dumps unchanged, and the
script checks that the rewritten record differs from the old one in those fields alone (no metric can change).
Running it twice changes nothing the second time.

usage: python tools/scrub_records.py [FOLDER ...] [--check]   (--check: list what would change, exit 1 if anything)
"""
from __future__ import annotations
import argparse, copy, json, os, posixpath, re, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH_PARAMS = ('out_dir', 'zhat_cache')


def _dump_like(obj, text: str) -> str | None:
    "json.dumps(obj) in the format `text` was written in (indent 1, with or without ASCII escapes), or None."
    old = json.loads(text)
    for kw in (dict(indent=1), dict(indent=1, ensure_ascii=False), dict(indent=1, ensure_ascii=False, sort_keys=True),
               dict(indent=2), dict(indent=2, ensure_ascii=False)):
        for end in ('', '\n'):
            if json.dumps(old, **kw) + end == text: return json.dumps(obj, **kw) + end
    return None


def _write(path: Path, text: str):
    "Write `text` to `path` atomically, keeping the file's permissions."
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f: f.write(text)
        os.chmod(tmp, mode); os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True); raise


def _rel(value, run_folder: str):
    "An absolute path as seen from the run folder; anything else unchanged."
    return posixpath.relpath(value, run_folder) if isinstance(value, str) and value.startswith('/') else value


def scrub_result(rec: dict) -> dict:
    rec = copy.deepcopy(rec)
    if isinstance(rec.get('versions'), dict): rec['versions'].pop('python_executable', None)
    return rec


def _run_folder(nb: dict) -> str | None:
    "The absolute folder the notebook was executed into: from papermill's output_path, else the printed run folder."
    out = (nb.get('metadata', {}).get('papermill') or {}).get('output_path')
    if isinstance(out, str) and out.startswith('/'): return posixpath.dirname(out)
    for c in nb.get('cells', []):
        for o in c.get('outputs', []):
            m = re.search(r'^run folder: (/\S+)$', ''.join(o.get('text', '')), re.M)
            if m: return m.group(1)
    return None


def scrub_notebook(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    folder = _run_folder(nb)
    if folder is None: return nb
    pm = nb.get('metadata', {}).get('papermill')
    params = {}
    if isinstance(pm, dict):
        for k in PATH_PARAMS:
            if k in (pm.get('parameters') or {}): params[k] = pm['parameters'][k] = _rel(pm['parameters'][k], folder)
        ip = pm.get('input_path')
        if isinstance(ip, str) and ip.startswith('/'):
            pm['input_path'] = ip[ip.rindex('/nbs/') + 1:] if '/nbs/' in ip else posixpath.basename(ip)
        pm['output_path'] = _rel(pm.get('output_path'), folder)
    for c in nb.get('cells', []):
        if 'injected-parameters' in c.get('metadata', {}).get('tags', []):
            lines = c['source'] if isinstance(c['source'], list) else c['source'].splitlines(keepends=True)
            for i, line in enumerate(lines):
                m = re.match(r'^(\w+) = "(/[^"]*)"(\s*)$', line)
                if m and m.group(1) in PATH_PARAMS:
                    new = _rel(m.group(2), folder); params.setdefault(m.group(1), new)
                    lines[i] = f'{m.group(1)} = "{new}"{m.group(3)}'
            c['source'] = lines if isinstance(c['source'], list) else ''.join(lines)
        out_dir = params.get('out_dir')
        for o in c.get('outputs', []):
            if o.get('output_type') != 'stream': continue
            text = o['text'] if isinstance(o['text'], list) else o['text'].splitlines(keepends=True)
            keep = []
            for line in text:
                if line.startswith('kernel python: /'): continue
                m = re.match(r'^run folder: (/\S+)(\s*)$', line)
                if m and isinstance(out_dir, str) and m.group(1) == folder:
                    line = f"run folder: {posixpath.join(out_dir, posixpath.relpath(folder, posixpath.normpath(posixpath.join(folder, out_dir))))}{m.group(2)}"
                keep.append(line)
            o['text'] = keep if isinstance(o['text'], list) else ''.join(keep)
    return nb


def scrub_manifest(man: dict) -> dict:
    man = copy.deepcopy(man)
    for c in man.get('cells', []):
        d = c.get('dir')
        if isinstance(d, str) and d.startswith('/'): c['dir'] = '/'.join(d.rstrip('/').split('/')[-3:])
    return man


def _strip_paths(x):
    "The record with every field this script may change removed: what must be identical before and after."
    x = copy.deepcopy(x)
    if isinstance(x, dict):
        if isinstance(x.get('versions'), dict): x['versions'].pop('python_executable', None)
        pm = x.get('metadata', {}).get('papermill') if isinstance(x.get('metadata'), dict) else None
        if isinstance(pm, dict):
            for k in ('input_path', 'output_path'): pm.pop(k, None)
            for k in PATH_PARAMS: (pm.get('parameters') or {}).pop(k, None)
        for c in x.get('cells', []):
            c.pop('dir', None)
            if c.get('cell_type') == 'code' or 'outputs' in c:
                if 'injected-parameters' in c.get('metadata', {}).get('tags', []): c['source'] = None
                for o in c.get('outputs', []):
                    if o.get('output_type') == 'stream':
                        t = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
                        o['text'] = [l for l in t.splitlines() if not l.startswith(('kernel python: ', 'run folder: '))]
    return x


SCRUBBERS = {'result.json': scrub_result, 'run.ipynb': scrub_notebook, 'sweep.json': scrub_manifest}


def scrub_file(path: Path, check: bool = False) -> bool:
    "Scrub one record file; True when it changed (or, with `check`, would change)."
    text = path.read_text(encoding='utf-8')
    old = json.loads(text)
    new = SCRUBBERS[path.name](old)
    if new == old: return False
    if _strip_paths(new) != _strip_paths(old): raise ValueError(f"{path}: scrubbing would change more than paths; left as it is")
    out = _dump_like(new, text)
    if out is None: raise ValueError(f"{path}: its JSON does not round-trip through json.dumps; left as it is")
    if not check: _write(path, out)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('folders', nargs='*', default=[str(ROOT/'results')])
    ap.add_argument('--check', action='store_true', help='change nothing; exit 1 when a file would change')
    a = ap.parse_args(argv)
    changed = []
    for folder in a.folders:
        for name in SCRUBBERS:
            for p in sorted(Path(folder).rglob(name)):
                if scrub_file(p, a.check): changed.append(p)
    for p in changed: print(('would change ' if a.check else 'scrubbed ') + str(p))
    print(f"{len(changed)} file(s) {'to scrub' if a.check else 'scrubbed'}")
    return 1 if a.check and changed else 0


if __name__ == '__main__':
    sys.exit(main())
