"""Add the teacher's and the student's diagnostics to G-DML records made before runs recorded them.

    python tools/backfill_diagnostics.py results/cpu [--datasets cifar10 ...] [--cache DIR]

For each whole record of a G-DML run whose student regressed GEMINI's points (`student_target` zhat or class_mean)
and whose diagnostics lack the teacher, GEMINI is trained again exactly as the run trained it (`gdml.train.zhat_for`:
the same data, seed, settings and code; one torch thread) and `gdml.diagnostics` measures its Z-hat and the student's
fit on the record's own train embeddings. The two arms of a seed share one GEMINI (the cache). A check that the Z-hat is
the run's: the class-point control's student regressed Z-hat's class means, so its train embeddings' class means must
lie near the recomputed ones (their distance is printed beside the class means' spread). Only `diagnostics` changes in
`result.json` (with `diagnostics_backfilled`: source, commit, date); the folder is rebuilt beside the old one and
swapped in whole.
"""
import argparse, datetime, json, shutil, sys
from pathlib import Path

import numpy as np

from gdml.config import config_from_dict
from gdml.diagnostics import (teacher_diagnostics, student_diagnostics, embedding_diagnostics, diagnostics_summary,
                              class_mean_points)
from gdml.engine import pin_threads
from gdml.files import atomic_write, stage_folder, swap_folder
from gdml.provenance import git_commit, source_hash
from gdml.store import RESULT, load_record
from gdml.train import class_means, zhat_for


def wants_teacher(raw: dict) -> bool:
    c = raw['config']
    return (raw['method'] == 'gdml' and c.get('student_target', 'zhat') != 'corners'
            and not (raw.get('diagnostics') or {}).get('teacher'))


def backfill(d: Path, cache: Path) -> dict:
    "The diagnostics of one record (see the module's doc), written into it; returns them with the check's numbers."
    raw = json.loads((d/RESULT).read_text())
    rec = load_record(d, arrays=True)
    config = config_from_dict(raw['config'])
    z_hat, history = zhat_for(config, cache_dir=cache)
    y = rec['arrays']['train_labels']
    targets = class_means(z_hat, y) if config.student_target == 'class_mean' else z_hat
    train_emb, test_emb = rec['arrays']['train_embeddings'], rec['arrays']['test_embeddings']
    teacher = teacher_diagnostics(z_hat, y, history)
    student = student_diagnostics(train_emb, targets.numpy(), y)
    embedding = embedding_diagnostics(train_emb, test_emb)
    means = class_mean_points(z_hat, y)
    check = dict(class_mean_gap=float(np.linalg.norm(class_mean_points(train_emb, y) - means, axis=1).mean()),
                 class_mean_spread=float(np.linalg.norm(means - means.mean(0), axis=1).mean()))
    raw['diagnostics'] = dict(teacher=teacher, student=student, **embedding, summary=diagnostics_summary(teacher, student, embedding))
    raw['diagnostics_backfilled'] = dict(source_hash=source_hash(), git_commit=git_commit(), check=check,
                                         date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    new = stage_folder(d)
    try:
        for f in d.iterdir():
            if f.name != RESULT: shutil.copy2(f, new/f.name)
        atomic_write(new/RESULT, json.dumps(raw, indent=1))
        swap_folder(new, d)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True); raise
    return dict(path=str(d), **raw['diagnostics']['summary'], **check)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', type=Path)
    ap.add_argument('--datasets', nargs='*', default=None)
    ap.add_argument('--cache', type=Path, default=None, help='where the Z-hats are shared (default: RUNS/.zhat-cache)')
    args = ap.parse_args(argv)
    pin_threads(1)
    cache = args.cache or args.runs/'.zhat-cache'
    todo = []
    for p in sorted(args.runs.glob(f'**/{RESULT}')):
        raw = json.loads(p.read_text())
        if wants_teacher(raw) and (not args.datasets or raw['dataset'] in args.datasets): todo.append((raw['seed'], p.parent))
    for _, d in sorted(todo, key=lambda t: (t[0], str(t[1]))):   # seed-major: each seed's GEMINI serves both of its arms
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in backfill(d, cache).items()}), flush=True)
    print(f"{len(todo)} records backfilled", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
