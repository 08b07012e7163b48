"""One run's phases on the CPU, each beside its floor: where the time of a run goes.

For each dataset (default: digits, fashion_mnist, cifar10) with the `quick` profile on one torch thread: data
loading, one GEMINI epoch and Z-hat (and the whole `quick` GEMINI on the `--full-gemini` datasets, default digits),
one student epoch, one baseline (Triplet) epoch, the embedding of train and test, `evaluate`, and the claims. Each
phase prints its work (FLOPs from PyTorch's flop counter, or distance evaluations for the metrics), its time (wall
and CPU of this process), its floor (work divided by this machine's measured peak for that kind of work: a one-
thread float32 matrix product for FLOPs, a vectorised subtract-square-add for distances) and the ratio time / floor.
The CPU is named as the machine reports it.

usage: python benchmarks/bench_run.py [--datasets digits fashion_mnist cifar10] [--out benchmarks/results/run_phases.json]
"""
import argparse, json, os, platform, time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from gdml.config import make_config
from gdml.data import load_dataset
from gdml.distill import make_student, fit_student
from gdml.baselines import fit_baseline
from gdml.engine import embed, flush_denormals
from gdml.gemini import Gemini, fit_gemini
from gdml.metrics import evaluate
from gdml.train import protocol_kwargs
from gdml.slices import ood_images
from gdml.corruptions import CORRUPTIONS, SEVERITIES
from gdml.claims import measure_claims


def cpu_name() -> str:
    """The CPU as the machine reports it (/proc/cpuinfo): model name, family and model, and its widest vector unit,
    else platform's answer. A bare name such as 'AMD EPYC' covers CPUs whose convolutions differ by 1.5x."""
    try: info = dict(l.split(':', 1) for l in Path('/proc/cpuinfo').read_text().split('\n\n')[0].splitlines() if ':' in l)
    except OSError: return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get('flags', '').split())
    vector = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'
    return f"{info.get('model name', platform.machine())} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}, {vector})"


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def peak_flops() -> float:
    "FLOP/s of a one-thread float32 matrix product (1024 x 1024), the best of 5."
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = min(timed(lambda: a @ b)[1] for _ in range(5))
    return 2 * 1024 ** 3 / best


def peak_distances() -> float:
    "2-D squared distances per second of a vectorised numpy subtract-square-add (a 256 x 65536 block, best of 5)."
    q, r = np.random.rand(256, 1), np.random.rand(1, 65536)
    def block():
        d = q - r; d *= d; e = q - r; e *= e; d += e
    best = min(timed(block)[1] for _ in range(5))
    return 256 * 65536 / best


def train_flops(model, x, k=None) -> float:
    "Forward + backward FLOPs of the batch `x` through `model` (GEMINI with stream `k`)."
    with FlopCounterMode(display=False) as fc:
        out = model(x) if k is None else model(x, k)
        out.float().sum().backward()
    return fc.get_total_flops()


def phases(name: str, flops_peak: float, dist_peak: float, full_gemini=()) -> list[dict]:
    rows = []
    def row(phase, work, unit, wall, cpu, peak):
        floor = work / peak if work else float('nan')
        rows.append(dict(dataset=name, phase=phase, work=work, unit=unit, wall_s=wall, cpu_s=cpu, floor_s=floor,
                         ratio=cpu / floor if work else float('nan')))
        print(f"{name:14s} {phase:22s} {work:10.3g} {unit:9s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  floor {floor:7.3f} s  "
              f"ratio {rows[-1]['ratio']:6.1f}", flush=True)
    ds, w, c = timed(lambda: load_dataset(name))
    row('data', 0, '', w, c, 1)
    cfg = make_config(name, 'gdml', 0, 'quick', device='cpu')
    stats = dict(mean=ds.mean, std=ds.std, device='cpu', seed=0, progress=False)
    gk = dict(protocol_kwargs(fit_gemini, cfg, exclude=('constraints',)), gemini_epochs=1)
    (gem, z_hat), w, c = timed(lambda: fit_gemini(ds.x_train, ds.y_train, **gk, **stats))
    x1 = torch.zeros(cfg.triplets_per_batch, *ds.x_train.shape[1:])
    g = Gemini(ds.n_classes, tuple(ds.x_train.shape[1:]), 2, cfg.gemini_stream, cfg.gemini_width, cfg.gemini_hidden)
    step_flops = 3 * train_flops(g, x1, 0)   # anchors, positives, negatives
    n_pairs = ds.n_classes * (ds.n_classes - 1)
    zhat_flops = train_flops(g, x1, 0) / 3 * len(ds.x_train) / len(x1)   # forward only: about a third of fwd + bwd
    _, wz, cz = timed(lambda: embed(gem, ds.x_train, classes=ds.y_train, mean=ds.mean, std=ds.std, device='cpu'))
    row('GEMINI epoch', step_flops * n_pairs, 'FLOP', w - wz, c - cz, flops_peak)
    row('Z-hat', zhat_flops, 'FLOP', wz, cz, flops_peak)
    if name in full_gemini:   # the whole `quick` GEMINI (all its epochs, then Z-hat): the target on digits
        _, w, c = timed(lambda: fit_gemini(ds.x_train, ds.y_train, **dict(gk, gemini_epochs=cfg.gemini_epochs), **stats))
        row(f"GEMINI, {cfg.gemini_epochs} epochs", step_flops * n_pairs * cfg.gemini_epochs + zhat_flops, 'FLOP', w, c, flops_peak)
    tk = dict(protocol_kwargs(fit_student, cfg), epochs=1)
    student = make_student(cfg.arch, ds.in_channels, 2, width=cfg.arch_width)
    per_image = train_flops(make_student(cfg.arch, ds.in_channels, 2, width=cfg.arch_width), torch.zeros(8, *ds.x_train.shape[1:])) / 8
    _, w, c = timed(lambda: fit_student(student, ds.x_train, z_hat, **tk, **stats))
    row('student epoch', per_image * len(ds.x_train), 'FLOP', w, c, flops_peak)
    backbone = make_student(cfg.arch, ds.in_channels, 2, width=cfg.arch_width)
    _, w, c = timed(lambda: fit_baseline('triplet', backbone, ds.x_train, ds.y_train, **dict(protocol_kwargs(fit_baseline, cfg), epochs=1), **stats))
    row('baseline epoch', per_image * len(ds.x_train), 'FLOP', w, c, flops_peak)
    (tr, te), w, c = timed(lambda: (embed(student, ds.x_train, mean=ds.mean, std=ds.std, device='cpu').numpy(),
                                    embed(student, ds.x_test, mean=ds.mean, std=ds.std, device='cpu').numpy()))
    row('embedding', per_image / 3 * (len(tr) + len(te)), 'FLOP', w, c, flops_peak)
    _, w, c = timed(lambda: evaluate(tr, ds.y_train.numpy(), te, ds.y_test.numpy()))
    row('evaluate', float(len(tr)) * len(te), 'distances', w, c, dist_peak)
    fn = lambda x: embed(student, x, mean=ds.mean, std=ds.std, device='cpu').numpy()
    partner, x_ood, note = ood_images(name, tuple(ds.x_train.shape[1:]), cfg.claim_queries, 0)
    _, w, c = timed(lambda: measure_claims(fn, tr, ds.y_train.numpy(), te, ds.y_test.numpy(), ds.x_test, ood_x=x_ood,
                                           ood_name=partner, ood_note=note, max_queries=cfg.claim_queries))
    sets = 1 + len(CORRUPTIONS) * len(SEVERITIES)
    q = min(cfg.claim_queries, len(te))
    work = float(sets * q * len(tr) + len(te) ** 2)   # the shifted query sets' distances + the silhouette's
    row('claims', work, 'distances', w, c, dist_peak)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--datasets', nargs='+', default=['digits', 'fashion_mnist', 'cifar10'])
    ap.add_argument('--out', default=None, help='also write the rows as JSON here')
    ap.add_argument('--full-gemini', nargs='*', default=['digits'], help='datasets whose whole quick GEMINI is also timed')
    a = ap.parse_args()
    torch.set_num_threads(1); flush_denormals()
    fp, dp = peak_flops(), peak_distances()
    print(f"cpu: {cpu_name()} ({os.cpu_count()} logical CPUs), torch {torch.__version__} on 1 thread, numpy {np.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"measured peaks: {fp / 1e9:.1f} GFLOP/s (float32 matmul, 1 thread), {dp / 1e9:.2f} G 2-D distances/s (numpy)\n")
    rows = [r for name in a.datasets for r in phases(name, fp, dp, a.full_gemini)]
    if a.out:
        Path(a.out).write_text(json.dumps(dict(cpu=cpu_name(), peak_flops=fp, peak_distances=dp,
                                               load=os.getloadavg()[0], rows=rows), indent=1))


if __name__ == '__main__':
    main()
