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


@pytest.mark.slow   # a skipif on GDML_TEST_FLAGS alone left it out of `make test-slow` (pytest -m slow)
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


# --- issue 34: `--scheduler` pointing at something that is not a Dask scheduler ---

def _serve(handler) -> str:
    "A TCP server on a free loopback port, in a daemon thread: its address."
    import socketserver, threading
    srv = socketserver.ThreadingTCPServer(('127.0.0.1', 0), handler); srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f'tcp://127.0.0.1:{srv.server_address[1]}'


def _web_server() -> str:
    import http.server
    class Quiet(http.server.SimpleHTTPRequestHandler):   # `python -m http.server`, its log left out of the test's stderr
        def log_message(self, *args): pass
    return _serve(Quiet)


def _http_proxy() -> str:
    import socketserver
    class Proxy(socketserver.BaseRequestHandler):   # answers any bytes at once, as a proxy does, and keeps the line
        def handle(self):
            self.request.recv(65536)
            self.request.sendall(b'HTTP/1.1 400 Bad Request\r\nServer: squid\r\nContent-Length: 0\r\n\r\n')
            time.sleep(60)
    return _serve(Proxy)


def _closed_port() -> str:
    return f'tcp://127.0.0.1:{_free_port()}'


def _sweep_in_thread(argv, limit: float = 60):
    "`gdml.cli.main(argv)` in a thread that may hang: (exit status or None if still running after `limit` s, stderr, seconds)."
    import contextlib, io, threading
    err, got = io.StringIO(), []
    def go():
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            from gdml.cli import main
            try: got.append(main(argv))
            except BaseException as e: got.append(e)
    t0 = time.monotonic()
    th = threading.Thread(target=go, daemon=True); th.start(); th.join(limit)
    return (got[0] if got else None), err.getvalue(), time.monotonic() - t0


@pytest.mark.parametrize('where, words', [
    (_web_server, ['gave no Dask answer', 'not a Dask scheduler']),
    (_http_proxy, ['answered, not as Dask', 'not a Dask scheduler']),
    (_closed_port, ['no Dask scheduler answers at tcp://127.0.0.1:', ', after ']),   # refused (or, on a busy machine, timed out)
    (lambda: 'notanaddress', ["'notanaddress' is not a scheduler address", 'missing port', 'tcp://host:8786']),
    (lambda: '', ['--scheduler is empty', 'tcp://host:8786']),
], ids=['web server', 'http proxy', 'closed port', 'no port', 'empty'])
def test_a_scheduler_address_without_a_scheduler_is_one_line(tmp_path, where, words):
    """Within about the connect timeout (10 s), one line naming what is there, exit status 2, and nothing written: no
    sweep folder, no sweep.json merged, no local cluster started in its place."""
    address = where()
    code, err, took = _sweep_in_thread(['sweep', '--datasets', 'digits', '--methods', 'gdml', '--seeds', '1', '--epochs', '1',
                                        '--gemini-epochs', '1', '--no-progress', '--scheduler', address,
                                        '--out', str(tmp_path/'runs')])
    assert code == 2, (code, err, took)
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err and 'EiB' not in err, err
    assert all(w in err for w in words), err
    assert 'waited' not in err, err   # the time it took, not the timeout it had
    assert took < 20, took
    assert not (tmp_path/'runs').exists(), sorted(tmp_path.rglob('*'))
