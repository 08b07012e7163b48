"""Where a GEMINI training step spends its time on the CPU, operator by operator, beside the FLOPs each does.

For each dataset, `quick` profile, one torch thread: GEMINI's class-pair steps (Eq. 5 forward, backward, SGD with
momentum, clipping by value) on real images, profiled with torch.profiler. Each operator row gives its share of the
step's CPU time, its FLOPs (torch.profiler's count for convolutions and matrix products) and the rate it reached, beside
this machine's one-thread float32 matrix-product peak. FLOPs are PyTorch's flop counter's, per operator of one step, put
on the profiler's row of the kernel that does them (oneDNN's convolution for `aten.convolution`). A rate far below the peak at a small share of the FLOPs is
per-operation overhead; a convolution far below the peak is the kernel's efficiency at that shape, which no change to
gdml's code can raise.

usage: python benchmarks/bench_gemini_ops.py [--datasets digits fashion_mnist] [--steps 30]
"""
import argparse, os, time

import torch
from torch.profiler import profile, ProfilerActivity
from torch.utils.flop_counter import FlopCounterMode

from gdml.config import make_config
from gdml.data import load_dataset
from gdml.engine import to_model_input, flush_denormals
from gdml.gemini import Gemini, gemini_step

from bench_run import cpu_name, peak_flops


# the profiler's row of the kernel that does an operator's FLOPs (the flop counter names the operator)
KERNEL = {'convolution': 'aten::mkldnn_convolution', 'convolution_backward': 'aten::convolution_backward'}


def class_pair_batches(ds, n: int, steps: int, seed: int = 0):
    "`steps` (k, l, anchors, positives, negatives) batches of `n` model inputs each, classes cycling through the pairs."
    g = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(ds.y_train == c).flatten() for c in range(ds.n_classes)]
    pairs = [(k, l) for k in range(ds.n_classes) for l in range(ds.n_classes) if k != l]
    pick = lambda c: by_class[c][torch.randint(len(by_class[c]), (n,), generator=g)]
    inputs = lambda i: to_model_input(ds.x_train[i], ds.mean, ds.std, False)
    return [(k, l, inputs(pick(k)), inputs(pick(k)), inputs(pick(l))) for k, l in (pairs[s % len(pairs)] for s in range(steps))]


def profile_steps(name: str, steps: int, peak: float):
    ds = load_dataset(name)
    cfg = make_config(name, 'gdml', 0, 'quick', device='cpu')
    torch.manual_seed(0)
    model = Gemini(ds.n_classes, tuple(ds.x_train.shape[1:]), 2, cfg.gemini_stream, cfg.gemini_width, cfg.gemini_hidden)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.gemini_lr, momentum=cfg.gemini_momentum,
                          weight_decay=cfg.gemini_weight_decay)
    batches = class_pair_batches(ds, cfg.triplets_per_batch, steps)
    def step(b):
        k, l, xa, xp, xn = b
        opt.zero_grad(set_to_none=True)
        gemini_step(model, xa, xp, xn, k, l, cfg.beta, cfg.margin).backward()
        if cfg.gemini_clip: torch.nn.utils.clip_grad_value_(model.parameters(), cfg.gemini_clip)
        opt.step()
    for b in batches[:5]: step(b)   # warm-up: oneDNN picks its kernels
    t = time.process_time()
    for b in batches: step(b)
    per_step = (time.process_time() - t) / steps
    with FlopCounterMode(display=False) as fc: step(batches[0])
    counted = {str(op).split('.')[1]: n for op, n in fc.get_flop_counts()['Global'].items()}
    step_flops = {KERNEL.get(op, 'aten::' + op): n for op, n in counted.items()}   # per step, on the kernel's row
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches: step(b)
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    flops = steps * sum(step_flops.values())
    print(f"\n{name}: {cfg.triplets_per_batch} triplets a step, {per_step * 1e3:.1f} ms a step without the profiler "
          f"({flops / steps / per_step / 1e9:.1f} GFLOP/s over the counted FLOPs, {flops / steps / per_step / peak:.0%} "
          f"of the matrix-product peak)")
    print(f"{'operator':44s} {'share':>6s} {'self ms/step':>12s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'of peak':>7s}")
    for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:14]:
        ms, f = e.self_cpu_time_total / 1e3 / steps, step_flops.get(e.key, 0)
        rate = f / (ms / 1e3) if f and ms else float('nan')
        print(f"{e.key[:44]:44s} {e.self_cpu_time_total / total:6.1%} {ms:12.2f} {f / 1e9:10.3f} "
              f"{rate / 1e9:8.1f} {rate / peak:7.0%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--datasets', nargs='+', default=['digits', 'fashion_mnist'])
    ap.add_argument('--steps', type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(1); flush_denormals()
    peak = peak_flops()
    print(f"cpu: {cpu_name()} ({os.cpu_count()} logical CPUs), torch {torch.__version__} on 1 thread; "
          f"load average {os.getloadavg()[0]:.2f}; matrix-product peak {peak / 1e9:.1f} GFLOP/s")
    for name in a.datasets: profile_steps(name, a.steps, peak)


if __name__ == '__main__':
    main()
