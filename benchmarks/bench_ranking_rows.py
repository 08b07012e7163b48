"""Chunk size of `RetrievalIndex.ranking` (queries of one class measured together against one band of references):
CPU-seconds of Recall@1's sibling metrics (R-Precision, MAP@R) for the claims' query sets (500 queries, 50 a class)
and for a whole 10k test set, against 60k 2-D train embeddings of 10 Gaussian classes, one worker thread.

    python benchmarks/bench_ranking_rows.py

Every chunk size gives the same numbers (printed beside each time).
"""
import time
import numpy as np
from gdml.metrics import RetrievalIndex


def cpu_seconds(f, repeat=1):
    t = time.process_time()
    for _ in range(repeat): out = f()
    return (time.process_time() - t) / repeat, out


def main():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 2)) * 3
    y_tr, y_te = rng.integers(0, 10, 60_000), rng.integers(0, 10, 10_000)
    train, test = centres[y_tr] + rng.normal(size=(60_000, 2)), centres[y_te] + rng.normal(size=(10_000, 2))
    index = RetrievalIndex(train, y_tr); index.ranking(test[:10], y_te[:10])   # the sorted side, built once
    q = np.sort(rng.choice(10_000, 500, replace=False))
    for noise in (0, 2):   # clean queries, and queries moved as a corruption moves them
        qe = test[q] + rng.normal(size=(500, 2)) * noise
        for rows in (64, 32, 16, 8):
            s, out = cpu_seconds(lambda: index.ranking(qe, y_te[q], rows=rows, workers=1), repeat=5)
            print(f"500 queries, noise {noise}, rows {rows:3d}: {s:.3f} CPU-s  (R-Precision, MAP@R) = {out}", flush=True)
    for rows in (64, 16):
        s, out = cpu_seconds(lambda: index.ranking(test, y_te, rows=rows, workers=1))
        print(f"10k queries, rows {rows:3d}: {s:.2f} CPU-s  {out}", flush=True)


if __name__ == '__main__':
    main()
