#!/usr/bin/env bash
# For a GPU node without network, with a time limit per command and a size limit per transfer
# (offline_gpu/README.md): one command = one stage of this script, run from the repository root there:
#
#   offline_gpu/gpu_stage.sh STAGE [BUDGET_S] [ARGS...]
#
# Every stage ends within BUDGET_S seconds (default 570: a call is cut off at 600), is safe to
# repeat (finished work is skipped: unpacked data and site by their markers, runs by their records)
# and starts from a bare machine if it must: it installs what travelled in .gpu/ (carry it) first.
# What comes back, under $OUT: log.txt (everything printed), summary.txt (the short version, also
# printed last) and results.tar.gz (records, tables, figures, benchmark JSON; unpack it here with
# `python offline_gpu/gpu_results.py unpack`).
#
# stages
#   setup                  unpack site + datasets from .gpu/ (checksummed), versions, nvidia-smi, imports
#   bench [B]              setup, then benchmarks/bench_train.py (engine vs authors' loop, CUDA graphs,
#                          torch.compile, 1/2/4 concurrent runs) -> bench.json
#   sweep DATASET PROFILE SEEDS [B] [gdml options]   setup, then the budgeted sweep, tables, figures
#   sweep-fashion [B]      = sweep fashion_mnist paper 3       (Table 2, Figure 4)
#   sweep-mnist [B]        = sweep mnist paper 3               (Table 1, Figure 3)
#   authors-fashion [B]    = sweep fashion_mnist authors 3 --methods gdml multisim (skipped if no such profile)
#   sweep-cifar [B]        = sweep cifar10 paper 3             (Table 3, Figure 5; needs every cifar10 part)
#   cifar-receive [B]      keep the cifar10 parts carried in this call for the next calls (machine warm)
#   all [B]                setup, bench (capped at GDML_GPU_BENCH_CAP s), then sweep-fashion in what is left
#
# Budget arithmetic (B after the stage name): BUDGET_S is passed as that word, e.g.
#   offline_gpu/gpu_stage.sh sweep-fashion 570
#
# knobs (environment): GDML_GPU_WORK ($TMPDIR/gdml: state that outlives a call while the machine is
# warm), GDML_GPU_PACKS (.gpu), GDML_GPU_RUNS_PER_GPU (4), GDML_GPU_FIRST_ESTIMATE (seconds a run is
# expected to take before any has finished; 0 launches the first wave regardless), GDML_GPU_EXTRA
# (options added to every sweep, e.g. "--device cpu --epochs 1" for a dry run on a CPU),
# GDML_GPU_BENCH_ARGS (options for bench_train.py), GDML_GPU_BENCH_CAP (seconds, 'all' stage),
# GDML_GPU_WORKERS (sweep workers where there is no GPU), GDML_PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
STAGE=${1:-}; shift || true
if [ "$STAGE" = sweep ]; then
  [ $# -ge 3 ] || { echo "usage: $0 sweep DATASET PROFILE SEEDS [BUDGET_S] [gdml options]" >&2; exit 2; }
  ds=$1 prof=$2 seeds=$3; shift 3
fi
case "${1:-}" in ''|*[!0-9]*) BUDGET=570 ;; *) BUDGET=$1; shift ;; esac
T0=$(date +%s)
W=${GDML_GPU_WORK:-${TMPDIR:-/tmp}/gdml}
PACKS=${GDML_GPU_PACKS:-$REPO/.gpu}
OUT=${OUT:-$W/out}
PY=${GDML_PYTHON:-python3}
RPG=${GDML_GPU_RUNS_PER_GPU:-4}
FIRST=${GDML_GPU_FIRST_ESTIMATE:-0}
EXTRA=${GDML_GPU_EXTRA:-}
BENCH_ARGS=${GDML_GPU_BENCH_ARGS:-}
BENCH_CAP=${GDML_GPU_BENCH_CAP:-240}
mkdir -p "$OUT" "$W/results" "$W/bench"
export GDML_DATA=$W/data GDML_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export PYTHONPATH=$REPO:$W/site${PYTHONPATH:+:$PYTHONPATH}
export GDML_RUN_NOTEBOOK=$REPO/nbs/experiments/run.ipynb
# Jupyter, IPython, matplotlib and Dask write their state under the work folder, not in $HOME or the tree
export JUPYTER_RUNTIME_DIR=$W/jupyter/runtime JUPYTER_DATA_DIR=$W/jupyter/data IPYTHONDIR=$W/ipython \
       MPLCONFIGDIR=$W/mpl DASK_TEMPORARY_DIRECTORY=$W/dask
exec > >(tee -a "$OUT/log.txt") 2>&1
SUMMARY=$OUT/summary.txt

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
note() { echo "$*" | tee -a "$SUMMARY"; }

stage_setup() {
  say "setup"
  if [ ! -f "$PACKS/manifest.json" ]; then
    note "setup: $PACKS/manifest.json missing: carry .gpu/manifest.json and the packs (see offline_gpu/README.md)"; return 2
  fi
  "$PY" offline_gpu/gpu_pack.py receive --src "$PACKS" --incoming "$W/incoming" || return 2
  "$PY" offline_gpu/gpu_pack.py unpack all --src "$PACKS" --incoming "$W/incoming" --root "$W/data" --site "$W/site"
  case $? in 0|3) ;; *) note "setup: unpacking failed (see log.txt)"; return 2 ;; esac
  # the commit this call's tree came from: .gpu/COMMIT (`make gpu-commit`, marks a dirty tree), else git
  (cat "$PACKS/COMMIT" 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown) > "$W/COMMIT"
  echo "$W/results" > "$W/RESULTS_ROOT"
  if [ ! -f "$W/setup.txt" ]; then
    { echo "commit: $(cat "$W/COMMIT")"; date -u +"date: %Y-%m-%d %H:%M:%S UTC"
      nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
      "$PY" - <<'EOF'
import importlib, platform, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| cuda', torch.version.cuda,
      '| gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none', '| cpus', __import__('os').cpu_count())
for m in ('gdml', 'torchvision', 'numpy', 'pandas', 'sklearn', 'faiss', 'pytorch_metric_learning', 'papermill',
          'ipykernel', 'distributed', 'matplotlib', 'seaborn'):
    mod = importlib.import_module(m)
    print(f"  {m} {getattr(mod, '__version__', '?')}  {mod.__file__}")
import gdml.cli, gdml.sweep, gdml.metrics, gdml.store, gdml.execute
print('  profiles:', ', '.join(gdml.protocol.PROFILES))
EOF
    } > "$W/setup.txt.tmp" 2>&1 && mv "$W/setup.txt.tmp" "$W/setup.txt" || { cat "$W/setup.txt.tmp"; note "setup: import check failed"; return 2; }
  fi
  cat "$W/setup.txt"
  note "commit: $(cat "$W/COMMIT")"
  grep -E "^python|NVIDIA|no nvidia" "$W/setup.txt" >> "$SUMMARY"
}

restore_results() {
  # records (and the bench's JSON, for the sweep's first estimate) that came back in earlier calls
  # and travelled again in .gpu/returned/: resume from them
  local t
  for t in "$PACKS"/returned/*.tar.gz; do
    [ -f "$t" ] || continue
    tar -xzf "$t" -C "$W" --skip-old-files results 2>/dev/null || say "could not restore $t"
    if [ ! -f "$W/bench/bench.json" ] && tar -tzf "$t" extra/bench/bench.json >/dev/null 2>&1; then
      tar -xzOf "$t" extra/bench/bench.json > "$W/bench/bench.json"
    fi
  done
}

pack_results() {
  say "packing results"
  cp "$W/COMMIT" "$W/RESULTS_ROOT" "$W/setup.txt" "$W/bench/" 2>/dev/null
  "$PY" offline_gpu/gpu_results.py pack --results "$W/results" --extra "$W/bench" --out "$OUT/results.tar.gz" \
    | tee -a "$SUMMARY"
}

stage_bench() {
  local cap=${1:-$BUDGET}
  say "bench (at most $cap s)"
  local args=${BENCH_ARGS:---processes 1,2,4}
  # shellcheck disable=SC2086
  timeout -k 10 "$cap" "$PY" benchmarks/bench_train.py --json "$W/bench/bench.json" $args
  local rc=$?
  [ $rc -eq 0 ] || note "bench: exit status $rc (124: cut off at $cap s)"
  [ -f "$W/bench/bench.json" ] && "$PY" - "$W/bench/bench.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
b = json.load(open(sys.argv[1]))
print(f"bench {b['device']} {b['arch']} n={b['n_images']}: engine student {b['student_images_per_s']:.0f} img/s "
      f"({b['student_share_of_peak']:.1%} of {b['measured_peak_tflops']:.3g} TFLOP/s, {b['student_seconds_per_50_epochs_60k']:.0f} s "
      f"per 50 epochs), baseline {b['baseline_images_per_s']:.0f}, authors' loop {b['reference_images_per_s']:.0f} "
      f"-> {b['speedup_student_vs_reference']:.1f}x")
for k, v in b.get('variants', {}).items():
    print(f"  {k:20s} " + (f"{v['images_per_s']:.0f} img/s, {v['share_of_peak']:.1%} of peak, {v['seconds_per_50_epochs_60k']:.0f} s/50 ep, "
                           f"first epoch {v['first_epoch_s']:.0f} s, loss diff {v.get('loss_rel_diff_vs_eager')}" if 'images_per_s' in v else str(v)))
for c in b.get('concurrency', []): print(f"  {c}")
EOF
  return 0
}

stage_sweep() {
  local ds=$1 prof=$2 seeds=$3; shift 3
  restore_results
  local hard=$(( $(left) - 60 ))          # tables, figures and packing after the sweep
  local launch=$(( hard - 15 ))
  if [ "$launch" -le 0 ]; then note "sweep $ds/$prof: no time left ($(left) s)"; return 0; fi
  say "sweep $ds profile $prof, $seeds seeds: launch until $launch s, kill at $hard s from now"
  # shellcheck disable=SC2086
  timeout -k 15 $(( hard + 30 )) "$PY" offline_gpu/gpu_sweep.py --datasets "$ds" --profile "$prof" --seeds "$seeds" \
    --out "$W/results/$prof" --runs-per-gpu "$RPG" ${GDML_GPU_WORKERS:+--workers $GDML_GPU_WORKERS} \
    --deadline "$launch" --hard-deadline "$hard" --first-estimate "$FIRST" --bench-json "$W/bench/bench.json" "$@" $EXTRA
  say "tables and figures"
  ds=$(basename "$ds")                    # records name an image-folder dataset by its folder's name
  # one process for the listing, the table and the figure (each Python start costs seconds)
  timeout 120 "$PY" - "$W/results/$prof" "$ds" "$prof" "$W/bench/tables-$ds-$prof.md" <<'EOF' | tee -a "$SUMMARY"
import contextlib, io, json, sys
from pathlib import Path
from gdml.cli import main
from gdml.store import load_records
out, ds, prof, table_copy = sys.argv[1:]
recs = [r for r in load_records(out, prof) if r['dataset'] == ds]
print(f"{ds}/{prof}: {len(recs)} records: " + ', '.join(sorted(f"{r['method']}/{r['seed']}" for r in recs)))
st = Path(out)/'gpu_sweep_status.json'
if st.exists():
    for r in json.loads(st.read_text())['rows']:
        if r['status'] != 'skipped': print(f"  {r['method']}/seed {r['seed']}: {r['status']} {r.get('wall_s', '')} {r.get('error') or ''}")
if recs:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = main(['tables', '--runs', out, '--profile', prof, '--datasets', ds])
    Path(table_copy).write_text(buf.getvalue())
    print(buf.getvalue().split('missing runs')[0].split('written:')[0].strip())
    with contextlib.redirect_stdout(io.StringIO()): rc |= main(['figures', '--runs', out, '--profile', prof, '--datasets', ds])
    print(f"tables and figures: status {rc}, under {out}/tables and {out}/figures")
EOF
}

stage_authors() {
  if ! "$PY" -c "import sys; from gdml.protocol import PROFILES; sys.exit('authors' not in PROFILES)" 2>/dev/null; then
    note "authors-fashion: skipped: gdml has no 'authors' profile in this commit (gdml run --help lists the profiles)"
    return 0
  fi
  stage_sweep fashion_mnist authors 3 --methods gdml multisim
}

: > "$SUMMARY"
say "stage '$STAGE', budget $BUDGET s, work folder $W"
rc=0
case "$STAGE" in
  setup)           stage_setup; rc=$? ;;
  bench)           stage_setup && stage_bench $(( $(left) - 30 )); rc=$?; pack_results ;;
  sweep)           stage_setup && stage_sweep "$ds" "$prof" "$seeds" "$@"; rc=$?; pack_results ;;
  sweep-fashion)   stage_setup && stage_sweep fashion_mnist paper 3 "$@"; rc=$?; pack_results ;;
  sweep-mnist)     stage_setup && stage_sweep mnist paper 3 "$@"; rc=$?; pack_results ;;
  sweep-cifar)     stage_setup && stage_sweep cifar10 paper 3 "$@"; rc=$?; pack_results ;;
  authors-fashion) stage_setup && stage_authors; rc=$?; pack_results ;;
  cifar-receive)   "$PY" offline_gpu/gpu_pack.py receive --src "$PACKS" --incoming "$W/incoming" | tee -a "$SUMMARY"; rc=$? ;;
  all)             stage_setup && { c=$(( $(left) - 300 )); [ $c -gt "$BENCH_CAP" ] && c=$BENCH_CAP
                                    if [ -f "$W/bench/bench.json" ]; then say "bench: done in an earlier call on this machine"
                                    elif [ $c -gt 60 ]; then stage_bench $c; fi
                                    stage_sweep fashion_mnist paper 3 "$@"; }
                   rc=$?; pack_results ;;
  *) echo "usage: $0 {setup|bench|sweep DATASET PROFILE SEEDS|sweep-fashion|sweep-mnist|authors-fashion|cifar-receive|sweep-cifar|all} [BUDGET_S]" >&2
     exit 2 ;;
esac
say "stage '$STAGE' done (status $rc), $(left) s of $BUDGET left"
echo "------------------------------------------------ summary"
cat "$SUMMARY"
exec 1>&- 2>&-; wait   # let tee finish log.txt before the call returns
exit $rc
