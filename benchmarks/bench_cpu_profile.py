"""Choose the `cpu` profile's student: the widest small CNN whose full-dataset run fits the per-run budget.

A run of the `cpu` profile (one torch thread) is GEMINI (the paper's: 12 epochs of c(c-1) class-pair batches, then
Z-hat over the train set), 10 student (or backbone) epochs, the embedding of train and test, and the claims. This
script times a few steps of each phase per dataset on the real data and extrapolates to a whole run for each
candidate width, then prints the widest width under the budget (default 480 s = 8 CPU-minutes). Times are CPU
seconds of this process (one thread), so other jobs on the machine inflate them little (the load average is printed).

usage: python benchmarks/bench_cpu_profile.py [--datasets mnist fashion_mnist cifar10] [--widths 16 24 32 48] [--epochs 10 20]
                                              [--budget 480]

`--epochs` prices each width at several student epoch counts (default: the `cpu` profile's 10).
"""
import argparse, os, platform, time

import torch

from gdml.data import load_dataset
from gdml.distill import make_student
from gdml.engine import to_model_input, on_device, embed, flush_denormals
from gdml.gemini import Gemini, gemini_step
from gdml.protocol import CPU, PAPER

STEPS = 12          # timed steps per measurement (after 3 warm-up steps)
CLAIMS_SECONDS = 25  # the claims of one run (41 query sets of 500 images, silhouette, OOD): measured in bench_run.py


def per_step(fn, steps=STEPS, warm=3) -> float:
    for _ in range(warm): fn()
    t = time.process_time()
    for _ in range(steps): fn()
    return (time.process_time() - t) / steps


def gemini_seconds(ds) -> float:
    "GEMINI's whole phase: 12 epochs of c(c-1) steps of 64 triplets, then Z-hat over the train set."
    c = ds.n_classes
    model, xd, mean, std = on_device(Gemini(c, tuple(ds.x_train.shape[1:]), 2, PAPER['gemini_stream'], PAPER['gemini_width'],
                                            PAPER['gemini_hidden']), ds.x_train, ds.mean, ds.std, False, torch.device('cpu'))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    n = PAPER['triplets_per_batch']
    g = torch.Generator().manual_seed(0)
    def step():
        i = torch.randint(len(xd), (3 * n,), generator=g)
        xa, xp, xn = (to_model_input(xd[j], mean, std) for j in i.split(n))
        loss = gemini_step(model, xa, xp, xn, 0, 1, PAPER['beta'], PAPER['margin'])
        opt.zero_grad(); loss.backward(); opt.step()
    train = per_step(step) * PAPER['gemini_epochs'] * c * (c - 1)
    t = time.process_time()
    embed(model, ds.x_train[:4096], classes=ds.y_train[:4096], mean=ds.mean, std=ds.std, device='cpu')
    zhat = (time.process_time() - t) * len(ds.x_train) / 4096
    return train + zhat


def student_seconds(ds, width: int) -> tuple[float, float]:
    "(one student epoch, one embedding of train + test) for the small CNN of `width`, channels-last."
    model, xd, mean, std = on_device(make_student('small_cnn', ds.in_channels, 2, width=width), ds.x_train, ds.mean, ds.std,
                                     False, torch.device('cpu'), CPU['channels_last'])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    bs = CPU['batch_size']
    g = torch.Generator().manual_seed(0)
    def step():
        idx = torch.randint(len(xd), (bs,), generator=g)
        loss = model(to_model_input(xd[idx], mean, std)).square().mean()
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_value_(model.parameters(), 0.1); opt.step()
    epoch = per_step(step) * len(xd) / bs
    t = time.process_time()
    embed(model, ds.x_train[:4096], mean=ds.mean, std=ds.std, device='cpu')
    emb = (time.process_time() - t) * (len(ds.x_train) + len(ds.x_test)) / 4096
    return epoch, emb


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--datasets', nargs='+', default=['mnist', 'fashion_mnist', 'cifar10'])
    ap.add_argument('--widths', nargs='+', type=int, default=[16, 24, 32, 48])
    ap.add_argument('--epochs', nargs='+', type=int, default=[CPU['epochs']], help='student epochs to price')
    ap.add_argument('--budget', type=float, default=480.0, help='seconds per run')
    a = ap.parse_args()
    torch.set_num_threads(1); flush_denormals()
    print(f"cpu: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
          f"load average {os.getloadavg()[0]:.2f}; budget {a.budget:.0f} s per run, {', '.join(map(str, a.epochs))} student epochs")
    for name in a.datasets:
        ds = load_dataset(name)
        gem = gemini_seconds(ds)
        print(f"\n{name}: GEMINI phase {gem:.0f} s (12 epochs + Z-hat)   [load {os.getloadavg()[0]:.2f}]")
        best = {}
        for w in a.widths:
            epoch, emb = student_seconds(ds, w)
            for e in a.epochs:
                run = gem + e * epoch + emb + CLAIMS_SECONDS
                ok = run <= a.budget
                if ok: best[e] = w
                print(f"  width {w:3d}, {e:3d} epochs: epoch {epoch:6.1f} s, embed {emb:5.1f} s -> G-DML run {run:6.0f} s "
                      f"{'fits' if ok else 'OVER'}   [load {os.getloadavg()[0]:.2f}]")
        for e in a.epochs: print(f"  widest that fits with {e} epochs: {best.get(e)}")


if __name__ == '__main__':
    main()
