"""The teacher beside its student: GEMINI's Z-hat and the student's test embedding, for the flattest and the roundest teacher.

    python tools/teacher_student_figure.py results/cpu --dataset cifar10 [--cache DIR]

Of the dataset's G-DML records as the tables show them (`gdml.figures.tables_gdml_records`) with the teacher's
diagnostics, `gdml.figures.teacher_student_pair` picks the flattest and the roundest teacher. The records do not keep
Z-hat (the train set's size), so `gdml.train.zhat_for` gets it back: from the cache when the run or
`tools/backfill_diagnostics.py` left it there, else by training the run's GEMINI again (the same data, seed and code;
about 20 CPU-minutes on CIFAR-10, one thread). Writes `RUNS/figures/teacher_student_<dataset>.png` and `.pdf` and
prints the two records' diagnostics.
"""
import argparse, json, sys
from pathlib import Path

from gdml.config import config_from_dict
from gdml.engine import pin_threads
from gdml.figures import plot_teacher_student, save_figure, tables_gdml_records, teacher_student_pair
from gdml.reporting import file_stem
from gdml.store import load_record, load_records


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', type=Path)
    ap.add_argument('--dataset', required=True)
    ap.add_argument('--cache', type=Path, default=None, help='where the Z-hats are kept (default: RUNS/.zhat-cache)')
    args = ap.parse_args(argv)
    pin_threads(1)
    import matplotlib; matplotlib.use('Agg')
    from gdml.train import zhat_for
    rows = []
    for r in teacher_student_pair(tables_gdml_records(load_records(args.runs, profile='cpu'), args.dataset)):
        z_hat, _ = zhat_for(config_from_dict(r['config']), cache_dir=args.cache or args.runs/'.zhat-cache')
        rows.append((load_record(r['path'], arrays=True), z_hat.numpy()))
        print(json.dumps(dict(seed=r['seed'], recall_at_1=r['metrics']['recall_at_1'], **r['diagnostics']['summary'])), flush=True)
    paths = save_figure(plot_teacher_student(rows), args.runs/'figures'/f"teacher_student_{file_stem(args.dataset)}")
    print('\n'.join(str(p) for p in paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
