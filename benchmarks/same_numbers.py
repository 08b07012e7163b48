"""Fingerprints of a few digits runs, to show that a refactor leaves the numbers as they were.

    python benchmarks/same_numbers.py before.json        # on the old commit (e.g. in a git worktree)
    python benchmarks/same_numbers.py after.json         # on the new one
    python benchmarks/same_numbers.py --compare before.json after.json

Each case is one `run_experiment` on sklearn's digits (CPU, one torch thread, OMP_NUM_THREADS=1 for
faiss): its metrics, configuration hash, validation loss and SHA-256 prefixes of its train and test
embeddings and of its claims. The cases cover G-DML (Eq. 5 and Eq. 6, the conv and MLP streams, the
three extraction modes, the 90/10 split), a baseline with and without a miner, and the authors' profile.
"""
import hashlib, json, os, sys

os.environ.setdefault('OMP_NUM_THREADS', '1')
CASES = {
    'quick_gdml': dict(method='gdml'),
    'quick_margin': dict(method='margin', epochs=5),
    'quick_siamese_miner': dict(method='siamese', epochs=3, miner='pair_margin'),
    'authors_gdml': dict(method='gdml', profile='authors', gemini_epochs=2, epochs=2, arch='small_cnn'),
    'authors_triplet': dict(method='triplet', profile='authors', epochs=2, arch='small_cnn'),
    'trainbn_gdml': dict(method='gdml', extraction='train_bn', gemini_epochs=2, epochs=3),
    'corners_gdml': dict(method='gdml', constraints='corners', gemini_epochs=2, epochs=3),
    'mlp_gdml': dict(method='gdml', gemini_stream='mlp', gemini_epochs=2, epochs=3, train_fraction=0.9),
}


def digest(a) -> str: return hashlib.sha256(a.tobytes() if hasattr(a, 'tobytes') else a).hexdigest()[:16]


def fingerprints() -> dict:
    import torch
    from gdml.config import make_config
    from gdml.records import run_experiment
    torch.set_num_threads(1)
    out = {}
    for name, kw in CASES.items():
        kw = dict(kw); method, profile = kw.pop('method'), kw.pop('profile', 'quick')
        rec = run_experiment(make_config('digits', method, 0, profile, device='cpu', **kw))
        a = rec['arrays']
        out[name] = dict(metrics=rec['metrics'], config_hash=rec['config_hash'], val_loss=rec['val_loss'],
                         train=digest(a['train_embeddings']), test=digest(a['test_embeddings']),
                         claims=digest(json.dumps(rec['claims'], sort_keys=True, default=str).encode()))
        print(f"{name:20s} Recall@1 {rec['metrics']['recall_at_1']:6.2f}  test {out[name]['test']}", flush=True)
    return out


def compare(before: dict, after: dict) -> int:
    bad = [(k, f) for k in before for f in before[k] if after.get(k, {}).get(f) != before[k][f]]
    for k, f in bad: print(f"differs: {k} {f}: {before[k][f]} -> {after.get(k, {}).get(f)}")
    print(f"{len(before) - len({k for k, _ in bad})} of {len(before)} cases identical")
    return 1 if bad else 0


if __name__ == '__main__':
    if sys.argv[1:2] == ['--compare']: sys.exit(compare(*(json.load(open(p)) for p in sys.argv[2:4])))
    json.dump(fingerprints(), open(sys.argv[1], 'w'), indent=1)
