"""gdml's pooling layers against torch's on the CPU, and whether the two give the same bits: CPU-seconds of embedding
Fashion-MNIST train images through GEMINI's streams (Z-hat) and through the small-CNN student (gdml's `MaxPool2d`
pools in channels-last without autograd), and of training GEMINI on sklearn's digits with the `quick` profile
(gdml's `AdaptiveAvgPool2d` skips the 4x4 -> 4x4 pooling of its conv stream there).

    python benchmarks/bench_pool.py [--n 20000] [--json benchmarks/results/embed_pool.json]

One torch thread; CPU-seconds of this process (time.process_time), so a busy machine inflates them less than wall
time. Each measurement is the best of `--repeats`.
"""
import argparse, json, time
import torch
from torch import nn
from gdml.data import load_dataset
from gdml.gemini import Gemini
from gdml.distill import make_student
from gdml import gemini
from gdml.config import make_config
from gdml.engine import MaxPool2d, AdaptiveAvgPool2d, embed, flush_denormals
from gdml.train import protocol_kwargs


def with_torch_pooling(model: nn.Module) -> nn.Module:
    "`model` with every gdml pooling layer replaced by torch's of the same settings (in place)."
    for name, m in model.named_children():
        if isinstance(m, MaxPool2d):
            setattr(model, name, nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode))
        elif isinstance(m, AdaptiveAvgPool2d): setattr(model, name, nn.AdaptiveAvgPool2d(m.output_size))
        else: with_torch_pooling(m)
    return model


def gemini_on_digits(torch_pooling: bool) -> torch.Tensor:
    "Z-hat of GEMINI trained on digits with the `quick` profile, its streams built with torch's pooling or gdml's."
    d, c = load_dataset('digits'), make_config('digits', 'gdml', 0, 'quick', device='cpu')
    saved = gemini.MaxPool2d, gemini.AdaptiveAvgPool2d
    if torch_pooling: gemini.MaxPool2d, gemini.AdaptiveAvgPool2d = nn.MaxPool2d, nn.AdaptiveAvgPool2d
    try:
        return gemini.fit_gemini(d.x_train, d.y_train, mean=d.mean, std=d.std, device='cpu', seed=0, progress=False,
                                 **protocol_kwargs(gemini.fit_gemini, c, exclude=('constraints',)))[1]
    finally: gemini.MaxPool2d, gemini.AdaptiveAvgPool2d = saved


def best_time(fn, repeats: int):
    "The output of `fn` and its fewest CPU-seconds over `repeats` calls."
    best, out = float('inf'), None
    for _ in range(repeats):
        t = time.process_time(); out = fn(); best = min(best, time.process_time() - t)
    return out, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=20000); ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--json', default=None)
    a = ap.parse_args()
    torch.set_num_threads(1); flush_denormals()
    ds = load_dataset('fashion_mnist')
    x, y = ds.x_train[:a.n], ds.y_train[:a.n]
    torch.manual_seed(0)
    models = {'Z-hat (GEMINI conv streams)': (Gemini(10, (1, 28, 28)).eval(), y),
              'student (small CNN, width 24)': (make_student('small_cnn', 1, 2, width=24).eval(), None)}
    rows = []
    for what, (model, classes) in models.items():
        run = lambda: embed(model, x, classes=classes, mean=ds.mean, std=ds.std, device='cpu')
        z_gdml, t_gdml = best_time(run, a.repeats)
        with_torch_pooling(model)
        z_torch, t_torch = best_time(run, a.repeats)
        rows.append(dict(what=what, n=a.n, torch_cpu_s=round(t_torch, 3), gdml_cpu_s=round(t_gdml, 3),
                         speedup=round(t_torch / t_gdml, 2), identical=bool(torch.equal(z_gdml, z_torch))))
        print(f"{what:32s} torch pooling {t_torch:6.2f} CPU-s   gdml pooling {t_gdml:6.2f} CPU-s   "
              f"{t_torch / t_gdml:4.2f}x   same bits: {rows[-1]['identical']}", flush=True)
    what = 'GEMINI training, digits, quick'
    z_gdml, t_gdml = best_time(lambda: gemini_on_digits(False), a.repeats)
    z_torch, t_torch = best_time(lambda: gemini_on_digits(True), a.repeats)
    rows.append(dict(what=what, n=1797, torch_cpu_s=round(t_torch, 3), gdml_cpu_s=round(t_gdml, 3),
                     speedup=round(t_torch / t_gdml, 2), identical=bool(torch.equal(z_gdml, z_torch))))
    print(f"{what:32s} torch pooling {t_torch:6.2f} CPU-s   gdml pooling {t_gdml:6.2f} CPU-s   "
          f"{t_torch / t_gdml:4.2f}x   same bits: {rows[-1]['identical']}", flush=True)
    if a.json:
        with open(a.json, 'w') as f: json.dump(dict(torch=torch.__version__, threads=1, rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
