"""The teacher beside its student: GEMINI's Z-hat and the student's test embedding, for the flattest and the roundest teacher.

    python tools/teacher_student_figure.py results/cpu --dataset cifar10 [--cache DIR]

Of the dataset's G-DML records (the `cpu` profile's student regressing Z-hat, all classes seen) with the teacher's
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
from gdml.protocol import profile_values
from gdml.figures import plot_teacher_student, save_figure, teacher_student_pair
from gdml.reporting import file_stem
from gdml.store import load_record, load_records


def gdml_records(runs: Path, dataset: str) -> list[dict]:
    "The dataset's G-DML records whose student regressed Z-hat itself, on all classes, with the `cpu` profile's student."
    width = profile_values('cpu', dataset)['arch_width']   # not the scale step's wider student
    return [r for r in load_records(runs, profile='cpu') if r['dataset'] == dataset and r['method'] == 'gdml'
            and r['config'].get('student_target') == 'zhat' and not r['config'].get('seen_classes')
            and r['config'].get('arch_width') == width]


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
    for r in teacher_student_pair(gdml_records(args.runs, args.dataset)):
        z_hat, _ = zhat_for(config_from_dict(r['config']), cache_dir=args.cache or args.runs/'.zhat-cache')
        rows.append((load_record(r['path'], arrays=True), z_hat.numpy()))
        print(json.dumps(dict(seed=r['seed'], recall_at_1=r['metrics']['recall_at_1'], **r['diagnostics']['summary'])), flush=True)
    paths = save_figure(plot_teacher_student(rows), args.runs/'figures'/f"teacher_student_{file_stem(args.dataset)}")
    print('\n'.join(str(p) for p in paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
