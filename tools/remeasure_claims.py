"""Re-measure the claims and NMI of committed run records from their saved networks, without training again.

    python tools/remeasure_claims.py results/cpu [--methods gdml triplet ...] [--check-only] [--limit N]

For every whole record under the folder that has its `model.pt` (`gdml.store.MODEL`) and was made by other code
than the current (a record of the current code measured everything so already), the network is rebuilt as the run
left it (its weights, in the memory layout it trained in) and the claims are measured again by the current code,
`gdml.train.measure_run_claims`: each image embedded on its own, the query subsets chosen by content, and FPR@95 as the
OOD literature defines it. The paper's metrics are measured again on the record's own embeddings (`gdml.metrics.evaluate`):
only NMI may change, its k-means now drawing its starts from the test embeddings in a fixed order. Before a record is
rewritten, checks show that the embeddings and the rebuilt network are the run's:

- Recall@1, F1, R-Precision and MAP@R from the record's embeddings equal the recorded ones exactly;
- the recorded OOD AUROC comes back when measured the old way (the old query subsets, the old extraction), to
  `AUROC_TOL` (a pair or two of in/out images ordered the other way; the value found is kept in `claims_remeasured`).

The record's `claims`, its claim scalars and NMI in `metrics` and a `diagnostics` entry (the embeddings' flatness; the
teacher's and the student's need GEMINI's Z-hat, see `tools/backfill_diagnostics.py`) are replaced in `result.json`;
the record keeps its name, arrays, weights, notebook and `source_hash` (its training), and says what was re-measured,
by which source and commit, with the values before, in `claims_remeasured`. The folder is rebuilt beside the old one and
swapped in whole.
"""
import argparse, datetime, json, os, shutil, sys
from pathlib import Path

import numpy as np
import torch

from gdml.config import config_from_dict
from gdml.data import load_dataset
from gdml.images import match_images
from gdml.diagnostics import embedding_diagnostics, diagnostics_summary
from gdml.distill import make_student
from gdml.engine import embed, pin_threads
from gdml.files import atomic_write, stage_folder, swap_folder
from gdml.metrics import evaluate
from gdml.claim_metrics import ood_auroc
from gdml.provenance import git_commit, source_hash
from gdml.slices import OOD_PARTNERS, class_disjoint_split
from gdml.store import MODEL, RESULT, load_record
from gdml.train import CLAIM_COLUMNS, measure_run_claims

REASON = ("claims embedded each image on its own (eval-mode BatchNorm), query subsets chosen by content, "
          "FPR@95 as the OOD literature defines it; NMI with k-means on the test embeddings in a fixed order")
# One of the 500 x 500 in/out pairs ordered the other way moves the AUROC by 4e-4 points: distances that round
# differently in the rebuilt network moved one pair (a Fashion-MNIST Margin record: 87.2704 for 87.2700) and five (an
# MNIST Triplet record: 65.254 for 65.256). A wrong network or subset moves it by whole points.
AUROC_TOL = 0.05
SAME = ('recall_at_1', 'f1', 'r_precision', 'map_at_r', 'recall_macro')   # what the re-measure must reproduce


def rebuilt_network(d: Path, config, in_channels: int) -> torch.nn.Module:
    "The run's network from its saved weights, in the layout it trained in (channels-last on the CPU: its rounding)."
    bundle = torch.load(d/MODEL, map_location='cpu', weights_only=True)
    model = make_student(config.arch, in_channels=in_channels, embedding_dim=config.embedding_dim, width=config.arch_width)
    model.load_state_dict(bundle['state_dict'])
    if config.channels_last: model = model.to(memory_format=torch.channels_last)
    return model.train()


def old_subset(y, n: int, seed: int) -> np.ndarray:
    "The query subset the record was measured on (the rule before subsets were chosen by content)."
    from sklearn.model_selection import train_test_split
    y = np.asarray(y)
    if len(y) <= n: return np.arange(len(y))
    _, counts = np.unique(y, return_counts=True)
    strata = y if counts.min() >= 2 and n >= len(counts) else None
    return np.sort(train_test_split(np.arange(len(y)), test_size=int(n), stratify=strata, random_state=seed)[1])


def old_auroc(config, model, ds, train_emb, test_emb) -> float | None:
    "The OOD AUROC as the record measured it: the old subsets, the run's own extraction (eval-mode records only)."
    partner = OOD_PARTNERS.get(config.dataset)
    if partner is None or config.extraction != 'eval': return None
    other = load_dataset(partner, download=False)
    x_ood = match_images(other.x_test[old_subset(other.y_test.numpy(), config.claim_queries, config.seed)], tuple(ds.x_train.shape[1:]))
    ood = embed(model, x_ood, mean=ds.mean, std=ds.std, raw_pixels=config.raw_pixels, batch_size=config.extraction_batch, device='cpu')
    keep = old_subset(ds.y_test.numpy(), config.claim_queries, config.seed)
    return ood_auroc(train_emb, test_emb[keep], ood.numpy())['auroc']


def remeasure(d: Path, check_only: bool = False) -> dict:
    "Re-measure one record's claims (see the module's doc); returns what changed."
    raw = json.loads((d/RESULT).read_text())
    rec = load_record(d, arrays=True)   # checked whole first
    config = config_from_dict(raw['config'])
    ds = load_dataset(config.dataset, download=False)
    unseen = None
    if config.seen_classes: ds, unseen = class_disjoint_split(ds, [int(c) for c in config.seen_classes.split(',')])
    model = rebuilt_network(d, config, ds.in_channels)
    a = rec['arrays']
    train_emb, test_emb = a['train_embeddings'].astype(np.float64), a['test_embeddings'].astype(np.float64)
    paper = evaluate(train_emb, a['train_labels'], test_emb, a['test_labels'], seed=config.seed)
    moved = [k for k in SAME if k in raw['metrics'] and paper[k] != raw['metrics'][k]]
    if moved: raise SystemExit(f"{d}: its embeddings give other {', '.join(moved)} than it records; not rewritten")
    auroc = old_auroc(config, model, ds, train_emb, test_emb)
    if auroc is not None and abs(auroc - raw['metrics'].get('ood_auroc', auroc)) > AUROC_TOL:
        raise SystemExit(f"{d}: the rebuilt network gives OOD AUROC {auroc} where the record says {raw['metrics']['ood_auroc']}; not rewritten")
    own = config.extraction == 'eval'
    claims = measure_run_claims(config, model, ds, unseen, torch.device('cpu'), train_emb if own else None, test_emb if own else None)
    before = {k: raw['metrics'][k] for k in (*CLAIM_COLUMNS, 'nmi') if k in raw['metrics']}
    after = dict(claims['summary'], nmi=paper['nmi'])
    if check_only: return dict(path=str(d), old_auroc_reproduced=auroc, before=before, after=after)
    raw['metrics'] = {**{k: v for k, v in raw['metrics'].items() if k not in CLAIM_COLUMNS}, **after}
    raw['claims'] = claims
    embedding = embedding_diagnostics(train_emb, test_emb)
    raw.setdefault('diagnostics', dict(teacher=None, student=None, **embedding, summary=diagnostics_summary(None, None, embedding)))
    raw['claims_remeasured'] = dict(reason=REASON, source_hash=source_hash(), git_commit=git_commit(), torch_threads=torch.get_num_threads(),
                                    date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), before=before,
                                    ood_auroc_reproduced=auroc)
    new = stage_folder(d)
    try:
        for f in d.iterdir():
            if f.name != RESULT: shutil.copy2(f, new/f.name)
        atomic_write(new/RESULT, json.dumps(raw, indent=1))
        swap_folder(new, d)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True); raise
    return dict(path=str(d), old_auroc_reproduced=auroc, before=before, after=after)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', type=Path)
    ap.add_argument('--check-only', action='store_true', help='measure and print, rewrite nothing')
    ap.add_argument('--methods', nargs='*', default=None, help="only the records of these methods (default: all)")
    ap.add_argument('--limit', type=int, default=None)
    args = ap.parse_args(argv)
    pin_threads(1)
    def stale(p):   # a record of the current code, or one re-measured already, is done
        raw = json.loads(p.read_text())
        return (raw.get('source_hash') != source_hash() and 'claims_remeasured' not in raw
                and (args.methods is None or raw['method'] in args.methods))
    todo = sorted(p.parent for p in args.runs.glob(f'**/{RESULT}') if (p.parent/MODEL).exists() and stale(p))
    for d in todo[:args.limit]:
        out = remeasure(d, args.check_only)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items() if k != 'before'}), flush=True)
    print(f"{len(todo[:args.limit])} records {'checked' if args.check_only else 're-measured'}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
