"""Time gdml.metrics on a paper-sized problem: 10k test x 60k train 2-D embeddings, 10 classes.

Target: the full metric set (`evaluate`) in <= 30 s on 2 CPU cores. Prints per-metric and total
seconds and the machine/versions. `--pml` also times PML's AccuracyCalculator (k="max_bin_count",
the reference path for R-Precision/MAP@R) on the same data and prints the difference of the values.

usage: python benchmarks/bench_metrics.py [--n-train 60000] [--n-test 10000] [--dim 2] [--pml]
"""
import argparse, os, platform, time

import numpy as np
import sklearn, scipy, torch, faiss
import pytorch_metric_learning as pml
from sklearn.metrics import accuracy_score, f1_score, normalized_mutual_info_score

from gdml.metrics import evaluate, kmeans_clusters, nn_predictions, ranking_metrics


def embeddings(n_train, n_test, dim, n_classes=10, seed=0):
    "Overlapping Gaussian classes, roughly the look of a 2-D metric-learning embedding."
    r = np.random.default_rng(seed)
    centres = r.normal(0, 3, (n_classes, dim))
    ytr, yte = r.integers(0, n_classes, n_train), r.integers(0, n_classes, n_test)
    tr = (centres[ytr] + r.normal(size=(n_train, dim))).astype(np.float32)
    te = (centres[yte] + r.normal(size=(n_test, dim))).astype(np.float32)
    return tr, ytr, te, yte


def timed(f):
    t = time.perf_counter(); out = f(); return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n-train', type=int, default=60_000)
    ap.add_argument('--n-test', type=int, default=10_000)
    ap.add_argument('--dim', type=int, default=2)
    ap.add_argument('--pml', action='store_true', help="also time PML's AccuracyCalculator (about 40 s)")
    a = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} | os.cpu_count={os.cpu_count()} "
          f"| affinity={len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} | torch threads={torch.get_num_threads()}")
    print(f"versions: python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"scipy {scipy.__version__}, torch {torch.__version__}, pytorch-metric-learning {pml.__version__}, faiss {faiss.__version__}")
    tr, ytr, te, yte = embeddings(a.n_train, a.n_test, a.dim)
    print(f"data: train {tr.shape}, test {te.shape}, 10 classes (R ~ {a.n_train // 10} per query)")
    trd, ted = tr.astype(np.float64), te.astype(np.float64)

    pred, t_nn = timed(lambda: nn_predictions(trd, ytr, ted))
    (r1, f1), t_f = timed(lambda: (accuracy_score(yte, pred), f1_score(yte, pred, average='macro')))
    (rp, mapr), t_rank = timed(lambda: ranking_metrics(trd, ytr, ted, yte))
    nmi, t_nmi = timed(lambda: normalized_mutual_info_score(yte, kmeans_clusters(ted, 10, 0)))
    print(f"recall_at_1 + f1 (sklearn 1-NN, brute) : {t_nn + t_f:7.2f} s   R@1 {100 * r1:.3f}  F1 {100 * f1:.3f}")
    print(f"r_precision + map_at_r (ranking_metrics): {t_rank:7.2f} s   RP {100 * rp:.3f}  MAP@R {100 * mapr:.3f}")
    print(f"nmi (sklearn KMeans n_init=10)          : {t_nmi:7.2f} s   NMI {100 * nmi:.3f}")
    res, t_all = timed(lambda: evaluate(tr, ytr, te, yte))
    print(f"evaluate (full metric set, end to end)  : {t_all:7.2f} s   {'OK' if t_all <= 30 else 'OVER'} (target <= 30 s)")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in res.items()))

    if a.pml:
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
        calc = AccuracyCalculator(include=('r_precision', 'mean_average_precision_at_r'), k='max_bin_count',
                                  device=torch.device('cpu'))
        p, t_pml = timed(lambda: calc.get_accuracy(te, yte, tr, ytr, ref_includes_query=False))
        print(f"PML AccuracyCalculator (RP + MAP@R)     : {t_pml:7.2f} s   "
              f"|diff| RP {abs(p['r_precision'] - rp):.2e}  MAP@R {abs(p['mean_average_precision_at_r'] - mapr):.2e}")


if __name__ == '__main__':
    main()
