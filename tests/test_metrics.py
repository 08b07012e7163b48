"""Tests of gdml.metrics: the exact path against a brute-force numpy oracle, the PML path (default) against
the exact path and against plain PML calls."""
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from gdml.metrics import (METRICS, RANKINGS, sq_dists, top_r, brute_force_metrics, evaluate, kmeans_clusters,
                          nn_predictions, pml_ranking_metrics, ranking_metrics)


def grid_data(seed, n_train=150, n_test=60, n_classes=3, side=5, dim=2):
    "Integer-grid embeddings: many exact distance ties, within and across classes."
    r = np.random.default_rng(seed)
    return (r.integers(0, side, (n_train, dim)), r.integers(0, n_classes, n_train),
            r.integers(0, side, (n_test, dim)), r.integers(0, n_classes, n_test))


def blob_data(seed, n_train=300, n_test=120, n_classes=4, dim=2):
    "Continuous overlapping Gaussian classes: no ties."
    r = np.random.default_rng(seed)
    centres = r.normal(0, 2, (n_classes, dim))
    ytr, yte = r.integers(0, n_classes, n_train), r.integers(0, n_classes, n_test)
    return centres[ytr] + r.normal(size=(n_train, dim)), ytr, centres[yte] + r.normal(size=(n_test, dim)), yte


def pml_metrics(tr, ytr, te, yte, knn_func=None):
    calc = AccuracyCalculator(include=('precision_at_1', 'r_precision', 'mean_average_precision_at_r'),
                              k='max_bin_count', device=torch.device('cpu'), knn_func=knn_func)
    return calc.get_accuracy(np.asarray(te, np.float32), np.asarray(yte), np.asarray(tr, np.float32),
                             np.asarray(ytr), ref_includes_query=False)


@pytest.mark.parametrize('seed,dim,n_classes,side', [(0, 2, 3, 5), (1, 2, 5, 4), (2, 1, 3, 6), (3, 3, 4, 3), (4, 2, 2, 2)])
def test_exact_path_matches_brute_force_on_ties(seed, dim, n_classes, side):
    tr, ytr, te, yte = grid_data(seed, n_classes=n_classes, side=side, dim=dim)
    got = evaluate(tr, ytr, te, yte, seed=seed, ranking='exact')
    ref = brute_force_metrics(tr, ytr, te, yte, kmeans_clusters(te, len(np.unique(yte)), seed))
    for k in METRICS:
        assert got[k] == pytest.approx(ref[k], abs=1e-6), k


def test_boundary_ties_take_the_full_sort_path():
    # rows where ties straddle the R-th place exist in the grid data, and top_r ranks them by index
    tr, ytr, te, _ = grid_data(0)
    tr, te = tr.astype(float), te.astype(float)
    d = sq_dists(te, tr)
    r = 40
    kth = np.sort(d, axis=1)[:, r - 1:r]
    assert ((d <= kth).sum(1) > r).any()
    top = top_r(d, r)
    want = np.stack([np.lexsort((np.arange(len(tr)), row))[:r] for row in d])
    np.testing.assert_array_equal(top, want)


def test_sklearn_1nn_ties_go_to_lowest_index():
    tr, ytr, te, _ = grid_data(5, n_train=2000, n_test=500, n_classes=10, side=12)
    tr, te = tr.astype(float), te.astype(float)
    d = ((te[:, None] - tr[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(nn_predictions(tr, ytr, te), ytr[d.argmin(1)])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_pml_default_and_exact_paths_agree_without_ties(seed):
    tr, ytr, te, yte = blob_data(seed)
    got, exact, p = evaluate(tr, ytr, te, yte), evaluate(tr, ytr, te, yte, ranking='exact'), pml_metrics(tr, ytr, te, yte)
    for res in (got, exact):
        assert res['r_precision'] / 100 == pytest.approx(p['r_precision'], abs=1e-6)
        assert res['map_at_r'] / 100 == pytest.approx(p['mean_average_precision_at_r'], abs=1e-6)
        assert res['recall_at_1'] / 100 == pytest.approx(p['precision_at_1'], abs=1e-6)
    for k in METRICS:
        assert got[k] == pytest.approx(exact[k], abs=1e-6), k


@pytest.mark.parametrize('data', [blob_data(4), grid_data(1, n_classes=4)])
@pytest.mark.parametrize('batch', [1, 13, 10_000])
def test_pml_batches_equal_one_pml_call(data, batch):
    # batching queries by class (k = that class's R) and re-weighting gives PML's all-query mean, ties included
    tr, ytr, te, yte = data
    p = pml_metrics(tr, ytr, te, yte)
    got = pml_ranking_metrics(tr, ytr, te, yte, batch=batch)
    assert got == pytest.approx((p['r_precision'], p['mean_average_precision_at_r']), abs=1e-12)


def test_pml_path_differs_from_plain_mean_of_class_means():
    # the re-weighting matters: unbalanced test classes make the unweighted mean of batch means differ
    tr, ytr, te, yte = blob_data(5)
    keep = (yte != 0) | (np.arange(len(yte)) % 5 == 0)   # class 0 rare among queries
    te, yte = te[keep], yte[keep]
    per_class = [pml_ranking_metrics(tr, ytr, te[yte == c], yte[yte == c])[0] for c in np.unique(yte)]
    rp = pml_ranking_metrics(tr, ytr, te, yte)[0]
    assert rp == pytest.approx(ranking_metrics(tr, ytr, te, yte)[0], abs=1e-6)
    assert abs(rp - np.mean(per_class)) > 1e-3


@pytest.mark.parametrize('dim', [3, 12])
def test_distances_match_definition(dim):
    r = np.random.default_rng(dim)
    q, ref = r.normal(size=(7, dim)), r.normal(size=(9, dim))
    np.testing.assert_allclose(sq_dists(q, ref), ((q[:, None] - ref[None]) ** 2).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('ranking', RANKINGS)
def test_high_dimensional_embeddings_match_brute_force(ranking):
    tr, ytr, te, yte = blob_data(7, dim=16)
    got = evaluate(tr, ytr, te, yte, ranking=ranking)
    ref = brute_force_metrics(tr, ytr, te, yte, kmeans_clusters(te, len(np.unique(yte))))
    for k in METRICS:
        assert got[k] == pytest.approx(ref[k], abs=1e-6), k


def test_chunking_does_not_change_ranking_metrics():
    tr, ytr, te, yte = grid_data(3, n_train=400, n_test=200, n_classes=4, side=6)
    tr, te = tr.astype(float), te.astype(float)
    assert ranking_metrics(tr, ytr, te, yte, rows=1, workers=3) == ranking_metrics(tr, ytr, te, yte, workers=1)
    # the same on tie-free data, where the fast path (no exact fallback) settles every query
    tr, ytr, te, yte = blob_data(0)
    assert ranking_metrics(tr, ytr, te, yte, rows=3, workers=3) == ranking_metrics(tr, ytr, te, yte, rows=500, workers=1)


@pytest.mark.parametrize('ranking', RANKINGS)
def test_query_classes_missing_from_train_are_left_out_of_ranking(ranking):
    tr, ytr, te, yte = blob_data(0)
    yte2 = yte.copy(); yte2[:10] = 99   # a class that train lacks
    got = evaluate(tr, ytr, te, yte2, ranking=ranking)
    keep = evaluate(tr, ytr, te[10:], yte[10:], ranking=ranking)
    assert got['r_precision'] == pytest.approx(keep['r_precision'], abs=1e-9)
    assert got['map_at_r'] == pytest.approx(keep['map_at_r'], abs=1e-9)
    assert math.isnan(ranking_metrics(tr, ytr, te[:3], np.array([99, 99, 99]))[0])


def test_macro_recall_is_the_authors_recall_not_recall_at_1():
    "On an imbalanced test set the authors' macro recall and Recall@1 differ: 90 of 90 vs 0 of 10 recalled."
    tr, ytr = np.array([[0., 0.], [0., 1.], [10., 0.], [10., 1.]]), np.array([0, 0, 1, 1])
    te, yte = np.zeros((100, 2)) + np.linspace(0, 0.5, 100)[:, None], np.array([0] * 90 + [1] * 10)
    res = evaluate(tr, ytr, te, yte)
    assert res['recall_at_1'] == pytest.approx(90.0) and res['recall_macro'] == pytest.approx(50.0)
