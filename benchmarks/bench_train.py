"""Training throughput: gdml's engine against a loop written like the authors' scripts.

Side by side in one process on one device, with the same model:
  * gdml: `fit_student` (Algorithm 2) and `fit_baseline` (a PML baseline) for one epoch: data resident
    on the device as uint8, index-gather batches, normalisation on the device, channels-last + bf16
    autocast + fused SGD on CUDA;
  * reference: a per-sample `Dataset` + `DataLoader` (batch 32, float32), as in the authors' code.
Prints images/s of each, their ratio, the model's training FLOPs per image (PyTorch's flop counter),
and the achieved share of the device's measured matmul peak (bf16 on CUDA, float32 on the CPU).

usage: python benchmarks/bench_train.py [--device auto] [--n 4096] [--arch resnet18] [--json out.json]
"""
import argparse, json, platform, subprocess, time
from pathlib import Path

import torch
from torch.utils.data import Dataset, DataLoader
from torch.utils.flop_counter import FlopCounterMode

import gdml
from gdml.engine import get_device, channel_stats
from gdml.distill import make_student, fit_student, l2_distance_loss
from gdml.baselines import fit_baseline


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def measured_peak_flops(device, n=None, reps=10):
    "Measured dense matmul throughput (FLOP/s): bf16 on CUDA, float32 on the CPU."
    dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2): a @ b
    sync(device); t = time.perf_counter()
    for _ in range(reps): a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def train_flops_per_image(model, shape, device):
    "Forward + backward FLOPs of one image, from PyTorch's flop counter on a batch of 8."
    x = torch.randn(8, *shape, device=device)
    with FlopCounterMode(display=False) as fc:
        model(x).float().square().sum().backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / 8


class PerSample(Dataset):
    "The authors' style: one normalised float32 image per __getitem__."
    def __init__(self, x, z, mean, std): self.x, self.z, self.mean, self.std = x, z, mean, std
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        return (self.x[i].float() - self.mean[:, None, None]) / self.std[:, None, None], self.z[i]


def reference_epoch(model, x, z, mean, std, device, batch_size=32):
    "One epoch the way the authors' scripts train: DataLoader, batch 32, float32."
    loader = DataLoader(PerSample(x, z, mean, std), batch_size=batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.to(device).train()
    sync(device); t = time.perf_counter()
    for xb, zb in loader:
        xb, zb = xb.to(device), zb.to(device)
        loss = l2_distance_loss(model(xb), zb)
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1); opt.step()
    sync(device)
    return len(x) / (time.perf_counter() - t)


def timed(fn, n, device):
    sync(device); t = time.perf_counter(); fn(); sync(device)
    return n / (time.perf_counter() - t)


def git_commit():
    try: return subprocess.check_output(['git', 'rev-parse', '--short', 'HEAD'], text=True,
                                        stderr=subprocess.DEVNULL).strip()
    except Exception: return 'unknown'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='auto')
    ap.add_argument('--n', type=int, default=None, help='images per epoch (default: 60000 on CUDA, 2048 on the CPU)')
    ap.add_argument('--arch', default='resnet18', choices=['resnet18', 'small_cnn'])
    ap.add_argument('--channels', type=int, default=1)
    ap.add_argument('--size', type=int, default=28)
    ap.add_argument('--batch-size', type=int, default=128, help="gdml's batch size (the reference uses 32)")
    ap.add_argument('--baseline', default='multisim')
    ap.add_argument('--json', default=None, help='write the numbers to this JSON file too')
    a = ap.parse_args(argv)
    device = get_device(a.device)
    n = a.n or (60000 if device.type == 'cuda' else 2048)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, a.channels, a.size, a.size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    z = torch.randn(n, 2, generator=g)
    mean, std = channel_stats(x)
    kw = dict(mean=mean, std=std, batch_size=a.batch_size, device=device, progress=False)

    model = make_student(a.arch, a.channels, 2).to(device)
    flops = train_flops_per_image(model, (a.channels, a.size, a.size), device)
    peak = measured_peak_flops(device)
    # one warm-up epoch each (allocator, cuDNN autotuning), then the timed one
    fit_student(model, x, z, epochs=1, **kw)
    student_ips = timed(lambda: fit_student(model, x, z, epochs=1, **kw), n, device)
    fit_baseline(a.baseline, model, x, y, epochs=1, **kw)
    baseline_ips = timed(lambda: fit_baseline(a.baseline, model, x, y, epochs=1, **kw), n, device)
    ref_model = make_student(a.arch, a.channels, 2)
    m_ref = min(n, 4096 if device.type == 'cuda' else 1024)
    reference_epoch(ref_model, x[:256], z[:256], mean, std, device)
    ref_ips = reference_epoch(ref_model, x[:m_ref], z[:m_ref], mean, std, device)

    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    out = dict(device=name, date=time.strftime('%Y-%m-%d'), commit=git_commit(), torch=torch.__version__, gdml=gdml.__version__,
               arch=a.arch, image=[a.channels, a.size, a.size], n_images=n, gdml_batch_size=a.batch_size,
               train_gflop_per_image=flops / 1e9, measured_peak_tflops=peak / 1e12,
               student_images_per_s=student_ips, baseline_images_per_s=baseline_ips, baseline=a.baseline,
               reference_images_per_s=ref_ips, speedup_student_vs_reference=student_ips / ref_ips,
               student_share_of_peak=student_ips * flops / peak,
               student_seconds_per_60k_epoch=60000 / student_ips)
    for k, v in out.items(): print(f"{k:32s} {v:.4g}" if isinstance(v, float) else f"{k:32s} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + '\n')
    return out


if __name__ == '__main__': main()
