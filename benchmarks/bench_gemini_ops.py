"""Where a GEMINI training epoch spends its time on the CPU, operator by operator, beside the FLOPs each does.

For each dataset, `quick` profile, one torch thread: one epoch of Algorithm 1 as `fit_gemini` runs it (the library's
class-pair sampler, `triplet_step`, `make_sgd` and `train_epochs`, so gathering, normalising, clipping and the loss
checks are in it), profiled with torch.profiler after an unprofiled warm-up epoch. Each operator row gives its share
of the epoch's CPU time, its FLOPs per step (PyTorch's flop counter on one step, put on the profiler's row of the
kernel that does them: oneDNN's convolution for `aten.convolution`) and the rate it reached, beside this machine's
one-thread float32 matrix-product peak. A rate far below the peak at a small share of the FLOPs is per-operation
overhead; a convolution far below the peak is the kernel's efficiency at that shape, which no change to gdml's code
can raise.

usage: python benchmarks/bench_gemini_ops.py [--datasets digits fashion_mnist]
"""
import argparse, os, time

import torch
from torch.profiler import profile, ProfilerActivity
from torch.utils.flop_counter import FlopCounterMode

from gdml.config import make_config
from gdml.data import load_dataset
from gdml.engine import flush_denormals, make_sgd, on_device, train_epochs
from gdml.gemini import Gemini, triplet_step
from gdml.sampler import ClassPairTripletSampler

from bench_run import cpu_name, peak_flops


# the profiler's row of the kernel that does an operator's FLOPs (the flop counter names the operator)
KERNEL = {'convolution': 'aten::mkldnn_convolution', 'convolution_backward': 'aten::convolution_backward'}


def profile_epoch(name: str, peak: float):
    ds = load_dataset(name)
    cfg = make_config(name, 'gdml', 0, 'quick', device='cpu')
    cpu = torch.device('cpu')
    torch.manual_seed(0)
    model, x, mean, std = on_device(Gemini(ds.n_classes, tuple(ds.x_train.shape[1:]), 2, cfg.gemini_stream, cfg.gemini_width,
                                           cfg.gemini_hidden), ds.x_train, ds.mean, ds.std, cfg.raw_pixels, cpu)
    sampler = ClassPairTripletSampler(ds.y_train, cfg.triplets_per_batch, seed=0, reuse=cfg.reuse_triplets)
    step = triplet_step(model, x, mean, std, cfg.raw_pixels, cfg.beta, cfg.margin)
    opt = make_sgd(model.parameters(), lr=cfg.gemini_lr, momentum=cfg.gemini_momentum, weight_decay=cfg.gemini_weight_decay)
    epoch = lambda: train_epochs(model, opt, 1, lambda e: iter(sampler), step, clip=cfg.gemini_clip,
                                 clip_mode=cfg.clip_mode, device=cpu, progress=False)
    epoch()   # warm-up: oneDNN picks its kernels
    t = time.process_time(); epoch(); per_step = (time.process_time() - t) / len(sampler)
    with FlopCounterMode(display=False) as fc: step(next(iter(sampler))).backward()
    counted = {str(op).split('.')[1]: n for op, n in fc.get_flop_counts()['Global'].items()}
    step_flops = {KERNEL.get(op, 'aten::' + op): n for op, n in counted.items()}   # per step, on the kernel's row
    with profile(activities=[ProfilerActivity.CPU]) as prof: epoch()
    ev, steps = prof.key_averages(), len(sampler)
    total, flops = sum(e.self_cpu_time_total for e in ev), sum(step_flops.values())
    print(f"\n{name}: {steps} steps of {cfg.triplets_per_batch} triplets, {per_step * 1e3:.1f} ms a step without the "
          f"profiler ({flops / per_step / 1e9:.1f} GFLOP/s over the counted FLOPs, {flops / per_step / peak:.0%} of the "
          f"matrix-product peak)")
    print(f"{'operator':44s} {'share':>6s} {'self ms/step':>12s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'of peak':>7s}")
    for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:14]:
        ms, f = e.self_cpu_time_total / 1e3 / steps, step_flops.get(e.key, 0)
        rate = f / (ms / 1e3) if f and ms else float('nan')
        print(f"{e.key[:44]:44s} {e.self_cpu_time_total / total:6.1%} {ms:12.2f} {f / 1e9:10.3f} "
              f"{rate / 1e9:8.1f} {rate / peak:7.0%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--datasets', nargs='+', default=['digits', 'fashion_mnist'])
    a = ap.parse_args()
    torch.set_num_threads(1); flush_denormals()
    peak = peak_flops()
    print(f"cpu: {cpu_name()} ({os.cpu_count()} logical CPUs), torch {torch.__version__} on 1 thread; "
          f"load average {os.getloadavg()[0]:.2f}; matrix-product peak {peak / 1e9:.1f} GFLOP/s")
    for name in a.datasets: profile_epoch(name, peak)


if __name__ == '__main__':
    main()
