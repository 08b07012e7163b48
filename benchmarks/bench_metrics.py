"""Time gdml.metrics on a paper-sized problem: 10k test x 60k train 2-D embeddings, 10 classes.

Target: the full metric set (`evaluate`, default ranking='exact': gdml's exact R-Precision/MAP@R) in
<= 3 s on 2 CPU cores, with the same numbers as PML's AccuracyCalculator (ties aside, to 1e-6), and >= 5x
faster than PML. Prints the load average (other jobs inflate wall times), per-part seconds, end-to-end
seconds (wall and process CPU) of `evaluate` and of PML's AccuracyCalculator alone, their ratio, and the
largest difference between the two sets of values.

usage: python benchmarks/bench_metrics.py [--n-train 60000] [--n-test 10000] [--dim 2]
"""
import argparse, os, platform, time

import numpy as np
import sklearn, scipy, torch, faiss
import pytorch_metric_learning as pml
from sklearn.metrics import accuracy_score, f1_score, normalized_mutual_info_score

from gdml.metrics import evaluate, kmeans_clusters, nn_predictions, pml_ranking_metrics, ranking_metrics


def embeddings(n_train, n_test, dim, n_classes=10, seed=0):
    "Overlapping Gaussian classes, roughly the look of a 2-D metric-learning embedding."
    r = np.random.default_rng(seed)
    centres = r.normal(0, 3, (n_classes, dim))
    ytr, yte = r.integers(0, n_classes, n_train), r.integers(0, n_classes, n_test)
    tr = (centres[ytr] + r.normal(size=(n_train, dim))).astype(np.float32)
    te = (centres[yte] + r.normal(size=(n_test, dim))).astype(np.float32)
    return tr, ytr, te, yte


def timed(f):
    "(f(), wall seconds, process CPU seconds: all threads; CPU/cores bounds the unloaded wall time from below)."
    w, c = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - w, time.process_time() - c


def load():
    return "load average {:.2f} {:.2f} {:.2f} (1/5/15 min)".format(*os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n-train', type=int, default=60_000)
    ap.add_argument('--n-test', type=int, default=10_000)
    ap.add_argument('--dim', type=int, default=2)
    a = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    print(f"machine: {platform.machine()} {platform.processor() or ''} | os.cpu_count={os.cpu_count()} "
          f"| affinity={cores} | torch threads={torch.get_num_threads()} | faiss threads={faiss.omp_get_max_threads()}")
    print(f"versions: python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"scipy {scipy.__version__}, torch {torch.__version__}, pytorch-metric-learning {pml.__version__}, faiss {faiss.__version__}")
    tr, ytr, te, yte = embeddings(a.n_train, a.n_test, a.dim)
    print(f"data: train {tr.shape}, test {te.shape}, 10 classes (R ~ {a.n_train // 10} per query)")
    print(f"start: {load()}")

    # headline: the default path end to end, against PML's AccuracyCalculator alone (its R-Precision and MAP@R)
    ex, t_ex, c_ex = timed(lambda: evaluate(tr, ytr, te, yte))
    print(f"\nHEADLINE evaluate() end to end: {t_ex:6.2f} s wall, {c_ex:6.2f} s CPU "
          f"{'OK' if t_ex <= 3 else 'OVER'} (target <= 3 s)  [{load()}]")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in ex.items()))
    (prp, pmap), t_pml, c_pml = timed(lambda: pml_ranking_metrics(tr.astype(np.float64), ytr, te.astype(np.float64), yte))
    print(f"PML AccuracyCalculator alone (R-Precision, MAP@R): {t_pml:6.2f} s wall, {c_pml:6.2f} s CPU  [{load()}]")
    print(f"RATIO PML / evaluate: {t_pml / t_ex:.1f}x wall, {c_pml / c_ex:.1f}x CPU (target >= 5x)")
    print(f"  |evaluate - PML| (percent points): r_precision {abs(ex['r_precision'] - 100 * prp):.1e}, "
          f"map_at_r {abs(ex['map_at_r'] - 100 * pmap):.1e} (target <= 1e-6 as fractions, i.e. 1e-4 points)")

    print("\nparts (float64 inputs as evaluate passes them):")
    trd, ted = tr.astype(np.float64), te.astype(np.float64)
    pred, t_nn, _ = timed(lambda: nn_predictions(trd, ytr, ted))
    (r1, f1), t_f, _ = timed(lambda: (accuracy_score(yte, pred), f1_score(yte, pred, average='macro')))
    nmi, t_nmi, _ = timed(lambda: normalized_mutual_info_score(yte, kmeans_clusters(ted, 10, 0)))
    (rp, mapr), t_rank, c_rank = timed(lambda: ranking_metrics(trd, ytr, ted, yte))
    print(f"recall_at_1 + f1 (k-d tree 1-NN)           : {t_nn + t_f:6.2f} s   R@1 {100 * r1:.3f}  F1 {100 * f1:.3f}")
    print(f"nmi (sklearn KMeans n_init=10)              : {t_nmi:6.2f} s   NMI {100 * nmi:.3f}")
    print(f"r_precision + map_at_r, exact (ranking_metrics): {t_rank:6.2f} s ({c_rank:.2f} s CPU)   RP {100 * rp:.3f}  MAP@R {100 * mapr:.3f}")
    print(f"end: {load()}")


if __name__ == '__main__':
    main()
