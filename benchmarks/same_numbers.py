"""Fingerprints of a few digits runs, to show that a refactor leaves the numbers as they were.

    python benchmarks/same_numbers.py before.json        # on the old commit (e.g. in a git worktree)
    python benchmarks/same_numbers.py after.json         # on the new one
    python benchmarks/same_numbers.py --compare before.json after.json
    python benchmarks/same_numbers.py --compare before.json after.json --tol 1e-6   # metrics to 1e-6 points
    python benchmarks/same_numbers.py --compare before.json after.json --no-claims  # all but the claims

Each case is one `run_experiment` on sklearn's digits (CPU, one torch thread, OMP_NUM_THREADS=1 for
faiss): its metrics, configuration hash, validation loss and SHA-256 prefixes of its train and test
embeddings and of its claims, and the claims' summary numbers. `--tol` compares metrics and claim
numbers to that many percentage points (for a change of how a metric is computed, not of what trains);
embeddings, hashes and validation losses are always compared exactly. `--no-claims` leaves the claims out (their
digest, summary and scalars in `metrics`): for a change of how the claims are measured, which must leave the rest as it was. The cases cover G-DML (Eq. 5 and Eq. 6, the conv and MLP streams, the
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
    from gdml.train import run_experiment
    torch.set_num_threads(1)
    out = {}
    for name, kw in CASES.items():
        kw = dict(kw); method, profile = kw.pop('method'), kw.pop('profile', 'quick')
        rec = run_experiment(make_config('digits', method, 0, profile, device='cpu', **kw))
        a = rec['arrays']
        out[name] = dict(metrics=rec['metrics'], config_hash=rec['config_hash'], val_loss=rec['val_loss'],
                         train=digest(a['train_embeddings']), test=digest(a['test_embeddings']),
                         claims=digest(json.dumps(rec['claims'], sort_keys=True, default=str).encode()),
                         claims_summary=rec['claims']['summary'])
        print(f"{name:20s} Recall@1 {rec['metrics']['recall_at_1']:6.2f}  test {out[name]['test']}", flush=True)
    return out


def _close(a, b, tol: float) -> bool:
    "Equal, or (with a tolerance) dicts of numbers within `tol` of each other."
    if a == b: return True
    if tol and isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
        return all(abs(a[k] - b[k]) <= tol for k in a)
    return False

CLAIM_KEYS = ('shift_recall_at_1', 'shift_drop', 'ood_auroc', 'ood_fpr95', 'silhouette', 'intra_inter',
              'unseen_recall_at_1', 'unseen_map_at_r')

def without_claims(cases: dict) -> dict:
    "The fingerprints without the claims: their digest and summary, and their scalars in `metrics`."
    return {k: {f: ({m: v for m, v in x.items() if m not in CLAIM_KEYS} if f == 'metrics' else x)
                for f, x in case.items() if f not in ('claims', 'claims_summary')} for k, case in cases.items()}

def compare(before: dict, after: dict, tol: float = 0.0) -> int:
    numeric = ('metrics', 'claims_summary')
    # with a tolerance the claims are compared by their numbers; the digest also covers their float rounding
    fields = lambda k: [f for f in before[k] if not (tol and f == 'claims' and 'claims_summary' in after.get(k, {}))]
    bad = [(k, f) for k in before for f in fields(k)
           if not (_close(before[k][f], after.get(k, {}).get(f), tol) if f in numeric else after.get(k, {}).get(f) == before[k][f])]
    for k, f in bad: print(f"differs: {k} {f}: {before[k][f]} -> {after.get(k, {}).get(f)}")
    print(f"{len(before) - len({k for k, _ in bad})} of {len(before)} cases identical")
    return 1 if bad else 0


if __name__ == '__main__':
    if sys.argv[1:2] == ['--compare']:
        tol = float(sys.argv[sys.argv.index('--tol') + 1]) if '--tol' in sys.argv else 0.0
        cases = [json.load(open(p)) for p in sys.argv[2:4]]
        if '--no-claims' in sys.argv: cases = [without_claims(c) for c in cases]
        sys.exit(compare(*cases, tol=tol))
    json.dump(fingerprints(), open(sys.argv[1], 'w'), indent=1)
