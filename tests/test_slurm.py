"""`gdml sweep --cluster slurm` as an HPC user meets it (issue 38).

The fast tests put stand-ins for `sbatch`, `squeue` and `scancel` first on PATH: Slurm refusing the job, a job that
queues for ever, a job that ends before its worker connects, Ctrl-C while the jobs queue. Each ends in one line
within seconds. `test_sweeps_on_a_real_slurm` (slow) starts a one-node Slurm (tools/slurm_local.sh, which needs root
and Debian's slurm-wlm and munge; .ci/run installs them) and runs sweeps through it."""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path

import pytest

from gdml.cli import main
from gdml.store import RESULT

pytest.importorskip('dask_jobqueue')   # the `slurm` extra (a dev requirement)

ROOT = Path(__file__).resolve().parents[1]
GRID = ['--datasets', 'digits', '--methods', 'gdml', '--seeds', '1', '--epochs', '1', '--gemini-epochs', '1', '--no-progress']


def gdml_cmd():
    exe = shutil.which('gdml', path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, '-c', 'import sys; from gdml.cli import main; sys.exit(main())']


def run_main(capsys, *args):
    "`gdml ARGS` in this process: (exit status, stdout, stderr)."
    try: code = main(list(map(str, args)))
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, *words):
    assert code == 2, (code, err[-2000:])
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err, err
    assert all(w in err for w in words), err


def tree(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*'))


# ------------------------------------------------------------------ stand-ins for Slurm's commands

SBATCH_REFUSES = """#!/bin/sh
echo "sbatch: error: invalid partition specified: nosuch" >&2
echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
exit 1
"""
SBATCH_ACCEPTS = """#!/bin/sh
for last; do :; done
cp "$last" "$FAKE_SLURM/job.sh"
echo "Submitted batch job 4242"
"""
SQUEUE = """#!/bin/sh
echo "4242|$(cat "$FAKE_SLURM/state")"
"""
SCANCEL = """#!/bin/sh
echo "$@" >> "$FAKE_SLURM/cancelled"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    "A folder of stand-in Slurm commands, first on PATH; `make(sbatch, state)` writes them."
    d = tmp_path/'fake-slurm'; d.mkdir()
    def make(sbatch=SBATCH_ACCEPTS, state='PENDING|Resources'):
        for name, text in (('sbatch', sbatch), ('squeue', SQUEUE), ('scancel', SCANCEL)):
            (d/name).write_text(text); (d/name).chmod(0o755)
        (d/'state').write_text(state)
        return d
    monkeypatch.setenv('FAKE_SLURM', str(d))
    monkeypatch.setenv('PATH', f"{d}{os.pathsep}{os.environ['PATH']}")
    return make


def test_sbatch_missing_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path/'empty'))   # a machine without Slurm's commands
    code, out, err = run_main(capsys, 'sweep', *GRID, '--cluster', 'slurm', '--out', tmp_path/'runs')
    one_line(code, err, 'sbatch is not on PATH', '--cluster slurm')
    assert tree(tmp_path) == []


def test_a_refused_job_quotes_slurm_and_writes_nothing(capsys, tmp_path, fake_slurm):
    fake_slurm(SBATCH_REFUSES)
    t0 = time.monotonic()
    code, out, err = run_main(capsys, 'sweep', *GRID, '--cluster', 'slurm', '--slurm-partition', 'nosuch', '--out', tmp_path/'runs')
    one_line(code, err, 'invalid partition specified: nosuch', 'Invalid partition name specified', 'set --slurm-partition')
    assert time.monotonic() - t0 < 30
    assert not (tmp_path/'runs').exists()   # no sweep.json, no empty log folder


def test_the_job_script_holds_the_named_resources(capsys, tmp_path, fake_slurm):
    "Defaults: one GPU, 2 CPUs and 8GB per run, 12 h, logs under --out; extra directives add to the GPU request."
    d = fake_slurm(state='PENDING|Priority')
    code, out, err = run_main(capsys, 'sweep', *GRID, '--cluster', 'slurm', '--runs-per-gpu', '2', '--slurm-account', 'me',
                              '--slurm-directive=--qos=long', '--slurm-opt', "job_extra_directives=['--constraint=a100']",
                              '--slurm-wait', '1', '--out', tmp_path/'runs')
    one_line(code, err, 'no Dask worker connected within 1 s', 'job 4242 PENDING (Priority)', '--slurm-wait')
    script = (d/'job.sh').read_text()
    for line in ('#SBATCH --gres=gpu:1', '#SBATCH --qos=long', '#SBATCH --constraint=a100', '#SBATCH -A me',
                 '#SBATCH --cpus-per-task=4', '#SBATCH --mem=15G', '#SBATCH -t 12:00:00', '#SBATCH -J gdml-sweep',
                 f"#SBATCH -e {tmp_path/'runs'/'slurm-logs'}/gdml-sweep-%J.err", 'export GDML_EXPECT_GPU=1',
                 '--nthreads 1', '--nworkers 2'):
        assert line in script, (line, script)
    assert (d/'cancelled').read_text().split() == ['4242']   # the queued job went with the sweep


def test_cpu_jobs_ask_for_no_gpu(capsys, tmp_path, fake_slurm):
    d = fake_slurm()
    code, out, err = run_main(capsys, 'sweep', *GRID, '--cluster', 'slurm', '--slurm-gpus', '0', '--slurm-cpus-per-run', '4',
                              '--slurm-mem-per-run', '2GB', '--slurm-partition', 'short', '--slurm-wait', '1',
                              '--out', tmp_path/'runs')
    assert code == 2, err
    script = (d/'job.sh').read_text()
    assert 'gres' not in script and 'GDML_EXPECT_GPU' not in script, script
    for line in ('#SBATCH -p short', '#SBATCH --cpus-per-task=4', '#SBATCH --mem=2G', 'export CUDA_VISIBLE_DEVICES='):
        assert line in script, (line, script)


def test_a_job_that_ends_before_its_worker_is_one_line(capsys, tmp_path, fake_slurm):
    fake_slurm(state='FAILED|NonZeroExitCode')
    t0 = time.monotonic()
    code, out, err = run_main(capsys, 'sweep', *GRID, '--cluster', 'slurm', '--out', tmp_path/'runs')
    one_line(code, err, 'job 4242 FAILED (NonZeroExitCode)', 'before a Dask worker connected',
             str(tmp_path/'runs'/'slurm-logs'/'gdml-sweep-4242.err'))
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize('state, words', [
    ('PENDING|PartitionConfig', ['job 4242 PENDING (PartitionConfig)', '--slurm-cpus-per-run', '--slurm-mem-per-run']),
    ('PENDING|PartitionTimeLimit', ['job 4242 PENDING (PartitionTimeLimit)', '--slurm-walltime']),
    ('PENDING|QOSMaxWallDurationPerJobLimit', ['(QOSMaxWallDurationPerJobLimit)', '--slurm-walltime']),
])
def test_a_job_slurm_will_never_start_is_one_line(capsys, tmp_path, fake_slurm, state, words):
    "Accepted, but more than the partition or QOS ever gives: no --slurm-wait to sit out."
    d = fake_slurm(state=state)
    t0 = time.monotonic()
    code, out, err = run_main(capsys, 'sweep', *GRID, '--cluster', 'slurm', '--out', tmp_path/'runs')
    one_line(code, err, "Slurm will not start the sweep's job as asked", *words)
    assert time.monotonic() - t0 < 30
    assert (d/'cancelled').read_text().split() == ['4242']


def test_jobs_that_end_with_cells_left_say_how_to_resume(monkeypatch):
    "Every job ended (here at its walltime) while cells were left: one line naming the state, the walltime and the resume."
    from types import SimpleNamespace as NS
    import gdml.slurm as sweep
    from gdml.config import ConfigError
    monkeypatch.setattr(sweep, 'slurm_job_states', lambda ids: {i: ('TIMEOUT', 'TimeLimit') for i in ids})
    cluster = NS(failures=[], workers={'w0': NS(job_id='7')}, log_dir='runs/slurm-logs', job_name='gdml-sweep')
    watch = sweep.SlurmWatch(cluster, NS(scheduler_info=lambda: dict(workers={})))
    watch.connected = True   # its worker had run cells
    with pytest.raises(ConfigError) as e: watch(done=3, left=2)
    assert str(e.value) == ("every Slurm job of the sweep ended (job 7 TIMEOUT (TimeLimit)) with cells left (a longer "
                            "--slurm-walltime lets them finish); see runs/slurm-logs/gdml-sweep-7.err; 3 cell(s) finished "
                            "and keep their records: the same command resumes the other 2"), str(e.value)


@pytest.mark.parametrize('args, words', [
    (['--slurm-partition', 'gpu'], ['--slurm-partition applies to --cluster slurm only']),
    (['--slurm-opt', 'queue=gpu'], ['--slurm-opt applies to --cluster slurm only']),
    (['--cluster', 'slurm', '--workers', '2'], ['--workers sets the local cluster', '--slurm-jobs']),
    (['--cluster', 'slurm', '--scheduler', 'tcp://127.0.0.1:8786'], ['give one of them']),
    (['--cluster', 'slurm', '--device', 'cpu'], ['--slurm-gpus 0']),
    (['--cluster', 'slurm', '--slurm-gpus', '0', '--runs-per-gpu', '2'], ['needs GPU jobs']),
    (['--cluster', 'slurm', '--slurm-gpus', '0', '--slurm-directive=--gres=gpu:1'], ["'--gres=gpu:1' asks for GPUs"]),
    (['--cluster', 'slurm', '--slurm-mem-per-run', '8'], ["'8' is not a size"]),
    (['--cluster', 'slurm', '--slurm-gpus', '2'], ['--slurm-gpus', 'invalid choice']),
    (['--cluster', 'slurm', '--slurm-wait', '0'], ['--slurm-wait', 'must be a number of seconds > 0']),
])
def test_slurm_options_are_checked_before_anything_runs(capsys, tmp_path, fake_slurm, args, words):
    d = fake_slurm()
    one_line(*run_main(capsys, 'sweep', *GRID, *args, '--out', tmp_path/'runs')[::2], *words)
    assert not (d/'job.sh').exists() and not (tmp_path/'runs').exists()


def test_ctrl_c_while_the_jobs_queue(tmp_path, fake_slurm):
    "Ctrl-C: the usual one line, exit status 130, and the queued job cancelled."
    d = fake_slurm()
    p = subprocess.Popen(gdml_cmd() + ['sweep', *GRID, '--cluster', 'slurm', '--out', str(tmp_path/'runs')],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (d/'job.sh').exists():
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.1)
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 130, (p.returncode, out, err)
    assert err.strip() == 'gdml sweep: interrupted', err
    assert (d/'cancelled').read_text().split() == ['4242']


# ------------------------------------------------------------------ a real Slurm (slow)

def _free_port_pair() -> int:
    "A port p with p + 1 free too (slurmctld's and slurmd's)."
    for _ in range(50):
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]
        try:
            with socket.socket() as s: s.bind(('127.0.0.1', p + 1)); return p
        except OSError: continue
    raise RuntimeError('no two free ports in a row')


@pytest.fixture
def slurm():
    """A one-node Slurm with one (declared, absent) GPU: the environment of its commands. Skips where Slurm is not
    installed, unless GDML_REQUIRE_SLURM is set (.ci/run), where that fails."""
    if shutil.which('slurmctld') is None or os.geteuid() != 0:
        if os.environ.get('GDML_REQUIRE_SLURM'): pytest.fail('Slurm is required: run as root with slurm-wlm and munge installed')
        pytest.skip('needs root and slurm-wlm + munge (apt-get install slurm-wlm munge)')
    d = Path(tempfile.mkdtemp(prefix='slurm'))   # short: munge's socket path is limited
    env = dict(os.environ, SLURM_LOCAL_GPUS='1', SLURM_LOCAL_PORT=str(_free_port_pair()))
    r = subprocess.run([ROOT/'tools'/'slurm_local.sh', 'start', d], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    try: yield dict(os.environ, SLURM_CONF=str(d/'slurm.conf'))
    finally:
        subprocess.run([ROOT/'tools'/'slurm_local.sh', 'stop', d], timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def _job_state(env, job) -> str:
    return subprocess.run(['squeue', '-h', '-t', 'all', '-j', job, '-o', '%T'], env=env, capture_output=True,
                          text=True).stdout.strip()


def _records(out):
    return [json.loads(p.read_text()) for p in Path(out).glob(f'**/{RESULT}')]


@pytest.mark.slow
def test_sweeps_on_a_real_slurm(slurm, tmp_path):
    """One Slurm, in order: a rejected submission ends within a minute; a 2-cell digits sweep in two CPU jobs writes both
    records inside Slurm jobs, which end COMPLETED with clean logs; the same command again runs nothing; a GPU job on
    the node without a GPU says so in its record and in the summary."""
    sweep = lambda *a: subprocess.run(gdml_cmd() + ['sweep', *GRID, '--cluster', 'slurm', '--slurm-wait', '120',
                                                    *map(str, a)], env=slurm, capture_output=True, text=True, timeout=400)
    t0 = time.monotonic()
    r = sweep('--slurm-partition', 'nosuch', '--out', tmp_path/'refused')
    took = time.monotonic() - t0
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'Slurm refused' in r.stderr and 'invalid partition specified: nosuch' in r.stderr, r.stderr
    assert took < 60 and not (tmp_path/'refused').exists(), took
    print(f"rejected submission: {took:.1f} s")

    out = tmp_path/'cpu'
    t0 = time.monotonic()
    r = sweep('--methods', 'gdml', 'triplet', '--slurm-gpus', '0', '--slurm-jobs', '2', '--slurm-cpus-per-run', '1',
              '--slurm-mem-per-run', '2GB', '--out', out)
    print(f"2-cell sweep in 2 CPU jobs: {time.monotonic() - t0:.0f} s")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'sweep: 2 cells: 2 run, 0 already done, 0 failed' in r.stdout, r.stdout
    recs = _records(out)
    jobs = {rec['device'].get('slurm_job') for rec in recs}
    assert len(recs) == 2 and None not in jobs, [rec['device'] for rec in recs]   # written inside Slurm jobs
    assert not any('note' in rec['device'] for rec in recs)
    for job in jobs:
        assert _job_state(slurm, job) == 'COMPLETED', job
    logs = sorted((out/'slurm-logs').iterdir())
    assert logs and not [p for p in logs if 'Traceback' in p.read_text()], [p.read_text()[-2000:] for p in logs]
    assert not list(Path.cwd().glob('slurm-*.out'))

    r = sweep('--methods', 'gdml', 'triplet', '--slurm-gpus', '0', '--out', out)   # resuming: nothing left to run
    assert r.returncode == 0 and 'sweep: 2 cells: 0 run, 2 already done' in r.stdout, r.stdout + r.stderr

    gpu = tmp_path/'gpu'
    t0 = time.monotonic()
    r = sweep('--methods', 'siamese', '--out', gpu)   # the defaults: one GPU per job, on a node whose GPU is not there
    print(f"1-cell sweep in a GPU job: {time.monotonic() - t0:.0f} s")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rec,) = _records(gpu)
    assert rec['device']['type'] == 'cpu' and rec['device']['note'].startswith('expected a GPU, found none'), rec['device']
    assert 'note digits/siamese/seed 0: expected a GPU, found none' in r.stdout, r.stdout
    assert _job_state(slurm, rec['device']['slurm_job']) == 'COMPLETED'
