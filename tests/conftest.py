"""One CPU thread for every test. The library notebooks run in the pytest process (nbdev's `test_nb`), and the
papermill kernels, Dask workers and `gdml` processes that tests start inherit its environment; unpinned, each
takes every core, and the suite oversubscribes a small machine (more than 8 minutes instead of ~4 on 2 cores).
A test that needs another thread count sets it itself (tests/test_cli.py unsets it for one run)."""
import os

for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ[_var] = '1'   # before torch or numpy start their thread pools

import torch  # noqa: E402

torch.set_num_threads(1)


# ---------------------------------------------------------------- the `slow` set
# End-to-end tests (wheel install, docs site, claims/ablations and scaling grids, sweep kill/resume, offline-GPU
# dry run, browser, Fashion-MNIST runs) are marked `@pytest.mark.slow` and skip unless GDML_TEST_FLAGS names `slow`,
# the variable that also runs the notebooks' `#| slow` cells: `make test` is the fast set, `make test-slow` the slow
# tests alone (`pytest -m slow`), `make test GDML_TEST_FLAGS=slow` both. .ci/run runs `make test`, then `make test-slow`.
import pytest  # noqa: E402

SLOW = 'slow' in os.environ.get('GDML_TEST_FLAGS', '').split()


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: an end-to-end test; runs only when GDML_TEST_FLAGS names slow (make test-slow)')


def pytest_collection_modifyitems(config, items):
    if SLOW: return
    skip = pytest.mark.skip(reason='slow: GDML_TEST_FLAGS=slow runs it')
    for item in items:
        if item.get_closest_marker('slow'): item.add_marker(skip)
