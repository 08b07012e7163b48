"""A sweep killed part-way and restarted repeats no finished run and leaves no half-written record."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from gdml.store import RESULT, ARRAYS, load_record


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
        if any(part.startswith('.') for part in p.relative_to(out).parts): continue   # a record being swapped in
        rec = load_record(p)                                    # raises on a half-written file
        assert (p.parent/ARRAYS).exists()
        recs[str(p)] = (rec['run_id'], p.stat().st_mtime_ns)
    return recs


@pytest.mark.slow
def test_sweep_resumes_after_sigkill(tmp_path):
    import tempfile
    out = tmp_path/'runs'
    tmp = Path(tempfile.mkdtemp(prefix='g'))   # the kernels' IPC folders (a short path: socket paths are limited)
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = subprocess.Popen(_sweep_args(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env=env)
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
    r = subprocess.run(_sweep_args(out), capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not list(tmp.glob('gdml-kernel-*')), list(tmp.iterdir())   # the killed sweep's kernel folders went with its rerun
    shutil.rmtree(tmp, ignore_errors=True)
    after = _records(out)
    assert len(after) == 6
    assert {k: after[k] for k in before} == before               # no finished run was repeated
    import re
    assert int(re.search(r'(\d+) already done', r.stdout).group(1)) >= len(before), r.stdout
    leftovers = [p for p in out.glob('**/.*.tmp')]
    assert not leftovers, leftovers
    cells = json.loads((out/'sweep.json').read_text())['cells']
    assert len(cells) == 6 and {c['hash'] for c in cells} == {Path(p).parent.name.split('-')[1] for p in after}



def _free_port() -> int:
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.mark.skipif('slow' not in os.environ.get('GDML_TEST_FLAGS', '').split(), reason='slow: GDML_TEST_FLAGS=slow runs it')
def test_a_sweep_survives_a_worker_killed_mid_run(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on the loopback: 8 digits cells all finish although one
    worker is killed with SIGKILL while it runs a cell (the scheduler gives its cell to the other worker)."""
    dask = [sys.executable, '-m', 'distributed.cli.dask_scheduler']
    port, out = _free_port(), tmp_path/'runs'
    address = f'tcp://127.0.0.1:{port}'
    procs = [subprocess.Popen(dask + ['--host', '127.0.0.1', '--port', str(port), '--dashboard-address', ':0'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        for i in range(2):
            procs.append(subprocess.Popen([sys.executable, '-m', 'distributed.cli.dask_worker', address, '--nthreads', '1',
                                           '--no-nanny', '--name', f'w{i}', '--no-dashboard'], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        sweep = subprocess.Popen(_gdml_cmd() + ['sweep', '--datasets', 'digits', '--methods', 'gdml', 'siamese', 'triplet',
                                                'multisim', '--seeds', '2', '--gemini-epochs', '1', '--epochs', '1',
                                                '--device', 'cpu', '--no-progress', '--scheduler', address, '--out', str(out)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 600
        victim = procs[1]
        while not list(out.glob('**/.*.attempt-*.ipynb')):   # a cell is running on some worker
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[0][-3000:]
            time.sleep(0.2)
        time.sleep(2)
        os.killpg(victim.pid, signal.SIGKILL)                 # the worker and its kernel, mid-run
        text = sweep.communicate(timeout=max(1, deadline - time.monotonic()))[0]
        assert sweep.returncode == 0, text[-3000:]
        assert 'sweep: 8 cells: 8 run, 0 already done, 0 failed' in text, text[-3000:]
        assert len(_records(out)) == 8
        assert victim.poll() is not None
    finally:
        for p in procs:
            if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
            p.wait()
