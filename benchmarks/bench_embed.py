"""Inference chunk size on the CPU: CPU-seconds of embedding 20k Fashion-MNIST train images through GEMINI's streams
(Z-hat) and through the small-CNN student, per chunk size, and whether the embeddings are bit-identical to those of
the largest chunk (eval mode: each sample is normalised with the running statistics, alone).

    python benchmarks/bench_embed.py [--n 20000] [--json benchmarks/results/embed_chunks.json]

One torch thread; CPU-seconds of this process (time.process_time), so a busy machine inflates them less than wall
time. `gdml.engine.embed` uses chunks of at most `CPU_EVAL_BATCH` in eval mode on the CPU; this script sets that cap
to each size it measures.
"""
import argparse, json, time
import torch
from gdml.data import load_dataset
from gdml.gemini import Gemini
from gdml.distill import make_student
from gdml import engine
from gdml.engine import normalise, flush_denormals


def run(model, x, y, mean, std, chunk):
    "gdml's `embed` of x in chunks of `chunk` (its CPU cap lifted to `chunk`) and the CPU-seconds it took."
    engine.CPU_EVAL_BATCH = chunk
    t = time.process_time()
    z = engine.embed(model, x, classes=y, mean=mean, std=std, batch_size=chunk, device='cpu')
    return z, time.process_time() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=20000); ap.add_argument('--json', default=None)
    a = ap.parse_args()
    torch.set_num_threads(1); flush_denormals(); torch.manual_seed(0)
    ds = load_dataset('fashion_mnist')
    x, y = ds.x_train[:a.n], ds.y_train[:a.n]
    gem = Gemini(ds.n_classes, tuple(x.shape[1:]), 2, 'conv', 32, 128)
    student = make_student('small_cnn', in_channels=1, embedding_dim=2, width=24)
    with torch.no_grad():   # running statistics that are not the initial ones
        for k in range(ds.n_classes): gem(normalise(x[:256], ds.mean, ds.std), k)
        student(normalise(x[:256], ds.mean, ds.std))
    rows = []
    for name, model, labels, layouts in (('GEMINI streams (Z-hat)', gem, y, [False]), ('small CNN student, width 24', student, None, [False, True])):
        model.eval()
        for cl in layouts:
            if cl: model = model.to(memory_format=torch.channels_last)
            ref = None
            for chunk in (2048, 1024, 512, 256, 128, 64):
                z, s = run(model, x, labels, ds.mean, ds.std, chunk)
                ref = z if ref is None else ref
                rows.append(dict(model=name, channels_last=cl, chunk=chunk, cpu_s=round(s, 2), identical=bool(torch.equal(z, ref))))
                print(f"{name:30s} channels_last={cl!s:5s} chunk {chunk:5d}: {s:6.2f} CPU-s for {len(x)} images, "
                      f"bit-identical to chunk 2048: {rows[-1]['identical']}", flush=True)
    if a.json: open(a.json, 'w').write(json.dumps(dict(n=len(x), torch=torch.__version__, rows=rows), indent=1) + '\n')


if __name__ == '__main__':
    main()
