"""The gdml command line: help, one-line errors, tables and figures from records."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from gdml.experiment import METRICS, config_dict, config_hash, make_config, write_record
from gdml.sweep import write_manifest


def gdml(*args, cwd=None):
    exe = shutil.which('gdml', path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from gdml.cli import main; sys.exit(main())']
    env = dict(os.environ, OMP_NUM_THREADS='1')   # tiny CPU models: one thread is fastest
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


@pytest.mark.parametrize('cmd', ['run', 'sweep', 'tables', 'figures', 'demo'])
def test_help(cmd):
    r = gdml(cmd, '--help')
    assert r.returncode == 0 and 'usage: gdml ' + cmd in r.stdout


def test_sweep_help_documents_the_clusters():
    out = gdml('sweep', '--help').stdout
    assert '--scheduler' in out and 'tcp://host:8786' in out and 'slurm' in out and 'dask-jobqueue' in out


@pytest.mark.parametrize('args, words', [
    (['run', '--dataset', 'imagenet'], ['imagenet', 'mnist, fashion_mnist, cifar10, digits']),
    (['run', '--method', 'arcface'], ['arcface', 'multisim']),
    (['sweep', '--methods', 'gdml', 'proxy'], ['proxy', 'siamese']),
    (['sweep', '--datasets', 'digits', 'svhn'], ['svhn', 'cifar10']),
    (['run', '--epochs', 'ten'], ["'ten'", 'int']),
    (['run', '--beta', '1.5'], ['beta', '[0, 1]']),
    (['run', '--profile', 'huge'], ['huge', 'paper', 'quick']),
    (['run', '--arch', 'vgg'], ['vgg', 'resnet18', 'small_cnn']),
    (['sweep', '--slurm-opt', 'queue'], ["'queue'", 'KEY=VALUE']),
    (['bake'], ['bake', 'run']),
])
def test_bad_input_is_one_line_without_traceback(args, words):
    r = gdml(*args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert all(w in r.stderr for w in words), r.stderr


def _records(runs):
    "Made-up records (known numbers) for three methods x 2 seeds, and a grid expecting a fourth method."
    cells = []
    for m, base in (('gdml', 90), ('triplet', 80), ('siamese', 70)):
        for s in (0, 1):
            c = make_config('digits', m, s)
            write_record(dict(run_id=f'{m}{s}', dataset='digits', method=m, seed=s, profile='quick',
                              config_hash=config_hash(c), config=config_dict(c), classes=['a', 'b', 'c'],
                              metrics=dict.fromkeys(METRICS, base + s), finished='2026-01-01',
                              arrays=dict(test_embeddings=np.random.rand(30, 2).astype(np.float32),
                                          test_labels=np.arange(30) % 3)), runs)
    write_manifest([make_config('digits', m, s) for m in ('gdml', 'triplet', 'siamese', 'multisim') for s in (0, 1)], runs)


def test_tables_and_figures(tmp_path):
    runs = tmp_path/'runs'; _records(runs)
    r = gdml('tables', '--runs', str(runs))
    assert r.returncode == 0, r.stderr
    md = (runs/'tables'/'table_digits.md').read_text()
    assert '| Ours (G-DML) | **90.50 ± 6.35** |' in md        # mean and t-interval of (90, 91), best in bold
    assert '| Siamese | 70.50 ± 6.35 |' in md and '| Margin | – |' in md
    assert r'\textbf{90.50 $\pm$ 6.35}' in (runs/'tables'/'table_digits.tex').read_text()
    assert (runs/'tables'/'table_digits.csv').read_text().splitlines()[0] == 'Model,Recall@1,F-score,NMI,RP,MAP@R'
    assert 'missing runs (2)' in r.stdout and 'multisim' in r.stdout   # expected cells without a record are listed
    r = gdml('figures', '--runs', str(runs), '--out', str(tmp_path/'figs'))
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'figs'/'figure_digits.png').stat().st_size > 0
    assert (tmp_path/'figs'/'figure_digits.pdf').read_bytes()[:4] == b'%PDF'


def test_tables_without_records_fails_in_one_line(tmp_path):
    r = gdml('tables', '--runs', str(tmp_path))
    assert r.returncode == 2 and 'no run records' in r.stderr and 'Traceback' not in r.stderr


def test_run_in_process(tmp_path):
    r = gdml('run', '--in-process', '--method', 'margin', '--gemini-epochs', '1', '--epochs', '1', '--device', 'cpu',
             '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert 'recall_at_1=' in r.stdout and len(list(tmp_path.glob('digits/margin/seed0-*/result.json'))) == 1
