"""One CPU thread for every test. The library notebooks run in the pytest process (nbdev's `test_nb`), and the
papermill kernels, Dask workers and `gdml` processes that tests start inherit its environment; unpinned, each
takes every core, and the suite oversubscribes a small machine (more than 8 minutes instead of ~4 on 2 cores).
A test that needs another thread count sets it itself (tests/test_cli.py unsets it for one run)."""
import os

for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ[_var] = '1'   # before torch or numpy start their thread pools

import torch  # noqa: E402

torch.set_num_threads(1)
