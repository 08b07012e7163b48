"""`gdml sweep` within a time budget, for a GPU node whose commands are cut off after a time
limit (e.g. 10 minutes).

The same cells, records and resuming as `gdml sweep` (gdml.sweep's cluster, manifest and
`execute_run`: one papermill run per cell, a cell with a record is skipped), but runs are handed to
the workers one at a time, seed by seed (all methods of seed 0 first, so a cut-off sweep still gives
whole seeds), and a run is launched only while its expected wall time fits before --deadline
seconds. Runs still going at --hard-deadline are killed (they leave no record; the next call
reruns them). Expected time of a run: the longest wall time seen for its dataset and method in this
sweep, else its records' `timings.total` plus the kernel start-up (--overhead); else the same for
any method on its dataset; else from --bench-json; else --first-estimate. Writes OUT/gpu_sweep_status.json (one row per cell) and prints a summary.

usage: python offline_gpu/gpu_sweep.py --datasets fashion_mnist --profile paper --seeds 3 \\
           --runs-per-gpu 4 --deadline 480 --hard-deadline 540 --out $GDML_GPU_WORK/results/paper [--epochs 1 ...]
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

from gdml.cli import add_hyper_options, hyper_values
from gdml.protocol import METHODS, PROFILES
from gdml.files import atomic_write
from gdml.config import ConfigError, config_hash, dataset_slug
from gdml.store import load_records
from gdml.sweep import expand_grid, write_manifest, make_cluster

STATUS = 'gpu_sweep_status.json'


def seed_major(configs: list) -> list:
    "Cells ordered seed by seed (then dataset, then the given method order): a cut-off sweep leaves whole seeds."
    methods = list(dict.fromkeys(c.method for c in configs))
    return sorted(configs, key=lambda c: (c.seed, dataset_slug(c.dataset), methods.index(c.method)))


def recorded_times(out_dir, profile: str) -> dict:
    "{(dataset, method): [timings.total of each record]} of the records under `out_dir` of `profile`."
    times = {}
    for r in load_records(out_dir, profile) if Path(out_dir).exists() else []:
        t = (r.get('timings') or {}).get('total')
        if t: times.setdefault((r['dataset'], r['method']), []).append(float(t))
    return times


def bench_estimate(bench: dict | None, c, runs_per_gpu: int, overhead: float) -> float | None:
    """Expected wall time of cell `c` from bench_train.py's JSON: its epochs over the measured images/s of
    one of `runs_per_gpu` concurrent runs, +30% for GEMINI (a guess: GEMINI is not benchmarked), plus
    start-up and evaluation (`overhead` + 40 s). None if the bench used another architecture."""
    from gdml.data import PUBLISHED
    if not bench or bench.get('arch') != c.arch: return None
    each = {x['processes']: x['images_per_s_total'] / x['processes'] for x in bench.get('concurrency', [])
            if 'images_per_s_total' in x}
    student = each.get(runs_per_gpu) or bench['student_images_per_s'] / runs_per_gpu
    ips = student if c.method == 'gdml' else student * bench['baseline_images_per_s'] / bench['student_images_per_s']
    n = sum(PUBLISHED.get(dataset_slug(c.dataset), {}).get('train', [60000]))
    train = c.epochs * n / ips
    return overhead + 40 + train * (1.3 if c.method == 'gdml' else 1.0)


def expected_seconds(c, seen: dict, recorded: dict, overhead: float, first: float, bench: dict | None = None,
                     runs_per_gpu: int = 1) -> float:
    """Expected wall time of cell `c`: the longest seen in this sweep for its dataset and method, else in
    its records; else the longest of any method on its dataset (seen, then recorded); else from the
    bench; else `first`."""
    ds = dataset_slug(c.dataset)
    key = (ds, c.method)
    if seen.get(key): return max(seen[key])
    if recorded.get(key): return max(recorded[key]) + overhead
    same_ds = [t for (d, _), ts in seen.items() if d == ds for t in ts]
    if same_ds: return max(same_ds)
    same_ds = [t for (d, _), ts in recorded.items() if d == ds for t in ts]
    if same_ds: return max(same_ds) + overhead
    if first == 0 and bench: return bench_estimate(bench, c, runs_per_gpu, overhead) or first
    return first


def launchable(now: float, deadline: float, expected: float) -> bool:
    "Whether a run expected to take `expected` seconds, launched at `now`, ends by `deadline`."
    return now + expected <= deadline


def run(configs: list, out_dir, *, deadline: float, hard_deadline: float, runs_per_gpu: int = 1,
        workers: int | None = None, overhead: float = 20.0, first_estimate: float = 0.0, gpus=None,
        bench: dict | None = None, log=print) -> list[dict]:
    """Run the cells of `configs` without a record under `out_dir` within the budget (seconds from now);
    one status row per cell."""
    from gdml.store import has_record
    from gdml.execute import execute_run
    t0 = time.monotonic()
    out_dir = Path(out_dir).resolve(); out_dir.mkdir(parents=True, exist_ok=True)
    configs = seed_major(configs)
    write_manifest(configs, out_dir)
    rows = {config_hash(c): dict(dataset=dataset_slug(c.dataset), method=c.method, seed=c.seed, hash=config_hash(c),
                                 status='skipped' if has_record(c, out_dir) else 'not launched') for c in configs}
    todo = [c for c in configs if rows[config_hash(c)]['status'] == 'not launched']
    recorded = recorded_times(out_dir, configs[0].profile) if configs else {}
    seen, running = {}, {}
    if todo and not launchable(0.0, deadline, expected_seconds(todo[0], seen, recorded, overhead, first_estimate,
                                                                bench, runs_per_gpu)):
        log(f"gpu_sweep: nothing launched: the first run expects "
            f"{expected_seconds(todo[0], seen, recorded, overhead, first_estimate, bench, runs_per_gpu):.0f} s, "
            f"the launch deadline is {deadline:.0f} s away")
        todo = []
    if todo:
        from distributed import Client
        n = min(workers or os.cpu_count() or 1, len(todo))
        cluster = make_cluster('local', workers=n, runs_per_gpu=runs_per_gpu, gpus=gpus)
        client = Client(cluster)
        try:
            slots = len(cluster.workers) if hasattr(cluster, 'workers') else n
            client.wait_for_workers(slots, timeout=120)
            log(f"gpu_sweep: {len(todo)} runs to do, {len(configs) - len(todo)} done already; {slots} workers; "
                f"launch deadline {deadline:.0f} s, hard deadline {hard_deadline:.0f} s")
            while todo or running:
                now = time.monotonic() - t0
                while todo and len(running) < slots:
                    c = todo[0]
                    exp = expected_seconds(c, seen, recorded, overhead, first_estimate, bench, runs_per_gpu)
                    if not launchable(now, deadline, exp):
                        log(f"gpu_sweep: stop launching at {now:.0f} s: {dataset_slug(c.dataset)}/{c.method}/seed {c.seed} "
                            f"expects {exp:.0f} s, {deadline - now:.0f} s left before the launch deadline")
                        todo = []; break
                    fut = client.submit(execute_run, c, str(out_dir), key=f"gdml-run-{config_hash(c)}", pure=False)
                    running[fut] = (c, now); todo.pop(0)
                    rows[config_hash(c)].update(status='running', expected_s=round(exp, 1))
                for fut in [f for f in running if f.done()]:
                    c, start = running.pop(fut)
                    wall = time.monotonic() - t0 - start
                    try: st = fut.result()
                    except Exception as e: st = dict(status='failed', error=f"{type(e).__name__}: {e}".splitlines()[0])
                    row = rows[config_hash(c)]
                    row.update(status=st['status'], wall_s=round(wall, 1), error=st.get('error'))
                    if st['status'] == 'done': seen.setdefault((row['dataset'], row['method']), []).append(wall)
                    log(f"gpu_sweep: {row['dataset']}/{row['method']}/seed {row['seed']}: {st['status']} in {wall:.0f} s"
                        + (f" ({st.get('error')})" if st['status'] == 'failed' else ''))
                if time.monotonic() - t0 >= hard_deadline and running:
                    for fut, (c, start) in running.items():
                        rows[config_hash(c)].update(status='killed at the hard deadline',
                                                    wall_s=round(time.monotonic() - t0 - start, 1))
                    log(f"gpu_sweep: hard deadline: killing {len(running)} run(s) in flight")
                    client.cancel(list(running)); running = {}
                    break
                if running: time.sleep(1.0)
        finally:
            client.close(); cluster.close()
    out = list(rows.values())
    atomic_write(out_dir/STATUS, json.dumps(dict(rows=out, elapsed_s=round(time.monotonic() - t0, 1)), indent=1))
    return out


def summary(rows: list[dict]) -> str:
    counts = {}
    for r in rows: counts[r['status']] = counts.get(r['status'], 0) + 1
    return 'gpu_sweep: ' + ', '.join(f"{v} {k}" for k, v in sorted(counts.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--datasets', nargs='+', required=True)
    ap.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--first-seed', type=int, default=0)
    ap.add_argument('--profile', default='paper')
    ap.add_argument('--out', required=True)
    ap.add_argument('--runs-per-gpu', type=int, default=1)
    ap.add_argument('--workers', type=int, default=None, help='CPU workers where there is no GPU')
    ap.add_argument('--deadline', type=float, required=True, help='seconds from now after which no run is launched')
    ap.add_argument('--hard-deadline', type=float, default=None, help='seconds from now at which runs in flight are killed')
    ap.add_argument('--overhead', type=float, default=20.0, help='kernel start-up added to a record\'s time (s)')
    ap.add_argument('--first-estimate', type=float, default=0.0,
                    help='expected run time with nothing to go by (s); 0: from --bench-json if given, else launch')
    ap.add_argument('--bench-json', default=None, help="bench_train.py's JSON, for the first estimate")
    add_hyper_options(ap)
    a = ap.parse_args(argv)
    if a.profile not in PROFILES:
        print(f"gpu_sweep: error: profile {a.profile!r} is not one of: {', '.join(PROFILES)}", file=sys.stderr); return 2
    try:
        configs = expand_grid(a.datasets, a.methods, range(a.first_seed, a.first_seed + a.seeds), a.profile, **hyper_values(a))
    except ConfigError as e:
        print(f"gpu_sweep: error: {e}", file=sys.stderr); return 2
    bench = json.loads(Path(a.bench_json).read_text()) if a.bench_json and Path(a.bench_json).exists() else None
    rows = run(configs, a.out, deadline=a.deadline, hard_deadline=a.hard_deadline or a.deadline + 60,
               runs_per_gpu=a.runs_per_gpu, workers=a.workers, overhead=a.overhead, first_estimate=a.first_estimate,
               bench=bench)
    print(summary(rows))
    return 1 if any(r['status'] == 'failed' for r in rows) else 0


if __name__ == '__main__': sys.exit(main())
