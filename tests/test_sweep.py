"""A sweep killed part-way and restarted repeats no finished run and leaves no half-written record."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from gdml.records import RESULT, ARRAYS, load_record


def _gdml_cmd():
    exe = shutil.which('gdml', path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, '-c', 'import sys; from gdml.cli import main; sys.exit(main())']


def _sweep_args(out):
    return _gdml_cmd() + ['sweep', '--datasets', 'digits', '--methods', 'gdml', 'siamese', 'triplet', '--seeds', '2',
                          '--workers', '2', '--gemini-epochs', '1', '--epochs', '1', '--device', 'cpu',
                          '--no-progress', '--out', str(out)]


def _records(out):
    "run_id and mtime of every finished record (each must be whole: parseable JSON plus its arrays)."
    recs = {}
    for p in Path(out).glob(f'**/{RESULT}'):
        rec = load_record(p)                                    # raises on a half-written file
        assert (p.parent/ARRAYS).exists()
        recs[str(p)] = (rec['run_id'], p.stat().st_mtime_ns)
    return recs


@pytest.mark.slow
def test_sweep_resumes_after_sigkill(tmp_path):
    out = tmp_path/'runs'
    proc = subprocess.Popen(_sweep_args(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob(f'**/{RESULT}')):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, 'no record appeared'
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)                      # the sweep and its Dask workers, mid-flight
        proc.wait()
    time.sleep(3)   # kernels notice their worker is gone (ipykernel's parent poller) and exit
    before = _records(out)
    assert 1 <= len(before) < 6
    r = subprocess.run(_sweep_args(out), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = _records(out)
    assert len(after) == 6
    assert {k: after[k] for k in before} == before               # no finished run was repeated
    import re
    assert int(re.search(r'(\d+) already done', r.stdout).group(1)) >= len(before), r.stdout
    leftovers = [p for p in out.glob('**/.*.tmp')]
    assert not leftovers, leftovers
    cells = json.loads((out/'sweep.json').read_text())['cells']
    assert len(cells) == 6 and {c['hash'] for c in cells} == {Path(p).parent.name.split('-')[1] for p in after}

