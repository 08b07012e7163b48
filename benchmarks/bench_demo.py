"""The demo's wall time beside the work its runs record: how much of `gdml demo` is training and how much is not.

Runs `gdml demo --workers W --out TMP` from scratch (a fresh folder, so every run executes), then reads the records'
own timings. The floor is the runs' summed `total` (GEMINI, training, evaluation and claims, as each run measured
itself) divided by the workers: what the demo would take with no kernel start, no imports and no tables. Ratio =
wall / floor; the rest is overhead (papermill kernels, the Dask cluster, the table and the figure).

usage: python benchmarks/bench_demo.py [--workers 2]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    gdml = Path(sys.executable).with_name('gdml')
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([str(gdml), 'demo', '--workers', str(a.workers), '--out', tmp], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        runs = [json.loads(p.read_text()) for p in Path(tmp).glob('runs/*/*/*/result.json')]
    work = sum(r['timings']['total'] for r in runs)
    by_method = {}
    for r in runs: by_method[r['method']] = by_method.get(r['method'], 0) + r['timings']['total']
    floor = work / a.workers
    print(f"load average {os.getloadavg()[0]:.2f}; {len(runs)} runs on {a.workers} workers")
    print(f"demo wall {wall:.1f} s; the runs' own time {work:.1f} s ({', '.join(f'{m} {t:.0f}' for m, t in by_method.items())})")
    print(f"floor (runs' time / workers) {floor:.1f} s; ratio {wall / floor:.2f}; overhead {wall - floor:.1f} s")


if __name__ == '__main__':
    main()
