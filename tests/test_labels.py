"""Class labels are checked the same way by every function that takes them (`gdml.data.check_labels`):
any integer labels are mapped to 0..c-1, non-integer floats and strings are refused, one class is refused."""
import numpy as np
import pytest
import torch

from gdml.baselines import fit_baseline
from gdml.distill import make_student
from gdml.gemini import fit_gemini
from gdml.metrics import METRICS, evaluate

N_PER_CLASS, CLASSES = 8, 3


@pytest.fixture(scope='module')
def xy():
    "Tiny 1x8x8 uint8 images of three classes, labelled 0..2."
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N_PER_CLASS * CLASSES, 1, 8, 8), dtype=torch.uint8, generator=g)
    return x, torch.arange(CLASSES).repeat_interleave(N_PER_CLASS)


def gemini(x, y):
    return fit_gemini(x, y, gemini_epochs=1, triplets_per_batch=4, device='cpu', progress=False, seed=0)


def baseline(x, y):
    model = make_student('small_cnn', in_channels=1, seed=0)
    return fit_baseline('triplet', model, x, y, epochs=1, batch_size=8, device='cpu', progress=False, seed=0)


@pytest.mark.parametrize('relabel', [lambda y: y + 1, lambda y: 2 * y, lambda y: 10 - 5 * y, lambda y: y.double()],
                         ids=['1..c', '0,2,4', 'decreasing', 'whole floats'])
def test_fit_gemini_maps_any_integer_labels_to_c_streams(xy, relabel):
    x, y = xy
    model, z = gemini(x, y)
    model2, z2 = gemini(x, relabel(y))
    assert len(model2.streams) == CLASSES                        # not max(label) + 1 streams
    if relabel(y)[0] < relabel(y)[-1]: assert torch.equal(z2, z)  # same order of classes: the very same Z-hat


@pytest.mark.parametrize('relabel', [lambda y: y + 1, lambda y: 2 * y], ids=['1..c', '0,2,4'])
def test_fit_baseline_does_not_depend_on_the_numbering(xy, relabel):
    x, y = xy
    a, b = baseline(x, y), baseline(x, relabel(y))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


BAD = [(lambda y: y + 0.5, 'y must hold integer class labels; y[0] is 0.5'),
       (lambda y: np.array(['cat', 'dog', 'cow'])[y.numpy()], 'y must hold integer class labels, got dtype <U3'),
       (lambda y: torch.zeros_like(y), 'y holds 1 class(es) [0]; at least 2')]


@pytest.mark.parametrize('fit', [gemini, baseline], ids=['fit_gemini', 'fit_baseline'])
@pytest.mark.parametrize('spoil,msg', BAD, ids=['non-integer floats', 'strings', 'one class'])
def test_training_refuses_bad_labels(xy, fit, spoil, msg):
    x, y = xy
    with pytest.raises(ValueError) as e: fit(x, spoil(y))
    assert msg in str(e.value) and '\n' not in str(e.value)


def blobs(n_classes=3, n=60, seed=0):
    r = np.random.default_rng(seed)
    c = r.normal(0, 3, (n_classes, 2))
    ytr, yte = r.integers(0, n_classes, n), r.integers(0, n_classes, n)
    return c[ytr] + r.normal(size=(n, 2)), ytr, c[yte] + r.normal(size=(n, 2)), yte


def test_evaluate_maps_labels_and_refuses_bad_ones():
    tr, ytr, te, yte = blobs()
    assert evaluate(tr, 2 * ytr + 1, te, 2 * yte + 1) == evaluate(tr, ytr, te, yte)
    one = np.zeros(len(ytr), int)
    with pytest.raises(ValueError, match=r'train_labels holds 1 class\(es\) \[0\]; at least 2'): evaluate(tr, one, te, yte)
    with pytest.raises(ValueError, match=r'test_labels holds 1 class'): evaluate(tr, ytr, te, one)   # NMI would be 100
    with pytest.raises(ValueError, match='test_labels must hold integer class labels'): evaluate(tr, ytr, te, yte + 0.5)
    with pytest.raises(ValueError, match='train_labels must hold integer class labels, got dtype <U'):
        evaluate(tr, ytr.astype(str), te, yte)
    assert set(evaluate(tr, ytr, te, yte)) >= set(METRICS)
