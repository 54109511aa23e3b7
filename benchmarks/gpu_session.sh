#!/usr/bin/env bash
# The retrieval stage's GPU work in one call of the `device` tool (a GPU lent for ~15 minutes):
# notebook 06 in full mode (its GPU budget) and Beauty benchmark runs, side by side on one GPU.
#
#   bash benchmarks/gpu_session.sh prepare        # here: wheels, data copy, ID tables, then it
#                                                 # prints the device call to make
#   bash benchmarks/gpu_session.sh run            # on the device machine: results go to $OUT
#   bash benchmarks/gpu_session.sh collect DIR N  # here: DIR = the call's files_at, N = run name
#                                                 # (e.g. h100-run3); puts the results in place
#
# The device machine has torch, pandas and matplotlib but no Jupyter: `prepare` downloads the
# notebook runner's wheels for its Python (3.12) into .whl/, and `run` installs them into
# /tmp/site. It has no copy of ../shared either: `prepare` copies the P5 files to .device_data/.
# The ID tables (artifacts/retrieval/*.safetensors) travel too, so no embedding is computed there.
#
# Smoke test of the plumbing on a CPU (minutes; a fast-mode notebook and a 150-user benchmark),
# in a Python without Jupyter, as the device's: WHEEL_PY=3.11 bash benchmarks/gpu_session.sh
# prepare, then GPU_SESSION_SMOKE=1 PY=/path/to/bare/python OUT=/tmp/out bash ... run.
set -euo pipefail
cd "$(dirname "$0")/.."

NOTEBOOK=notebooks/06_generative_retrieval.ipynb
WHEELS=(nbconvert nbclient nbformat ipykernel nbstripout)
# Packages the device image has already (see the device tool's KINDS.md): not carried.
IN_IMAGE='^(attrs|jinja2|markupsafe|packaging|psutil|pygments|python_dateutil|typing_extensions|six|pyyaml)-'
# Seconds from the script's start by which every job is stopped: one device command runs 600 s at
# most, and the files must still come back. The notebook's own budget is GPU_BUDGET in
# rqvae_lib/retrieval/experiment.py (5 + 2 minutes of training, then evaluation); the benchmark
# runs are shorter, so the notebook's last phase has the GPU to itself.
DEADLINE=${DEADLINE:-585}
# Beauty benchmark runs beside the notebook, each its own process: batch:peak-lr:warm-up-steps.
# 256 is the recipe of the H100 runs so far; 1024 with the square-root-scaled lr caught up with it
# per epoch by epoch 6 on a CPU (RESULTS.md), and may run more epochs per minute on a GPU.
BENCH_RUNS=${BENCH_RUNS:-"256:1e-3:1000 1024:2e-3:250"}
PY=${PY:-python3}  # the device image's Python (3.12)
BENCH_BUDGET_S=${BENCH_BUDGET_S:-360}

prepare() {
  local py=${WHEEL_PY:-3.12}
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
  grep -qx '/.device_data/' .git/info/exclude || echo '/.device_data/' >> .git/info/exclude
  rm -rf .whl && mkdir .whl
  # shellcheck disable=SC2046
  .venv/bin/python -m pip download -q --only-binary=:all: --python-version "$py" \
    --implementation cp $(printf -- '--platform manylinux_2_%s_x86_64 ' 17 24 26 27 28) \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
  find .whl -name '*.whl' -printf '%f\n' | { grep -iE "$IN_IMAGE" || true; } | sed 's|^|.whl/|' \
    | xargs -r rm
  echo "wheels for Python $py: $(ls .whl | wc -l) files, $(du -sh .whl | cut -f1)"
  local shared=${RQVAE_SHARED_DATA:-../shared/data}
  rm -rf .device_data && mkdir .device_data && cp -r --no-preserve=mode "$shared"/amazon-* .device_data/
  echo "data: $(du -sh .device_data | cut -f1) from $shared"
  .venv/bin/python benchmarks/retrieval.py --datasets beauty --prepare-ids
  cat <<EOF

Now, with the device tool (one call; budget ~15 minutes in all, the start included):
  run(command="bash benchmarks/gpu_session.sh run", carry=[".whl", ".device_data",
      "artifacts/retrieval"], timeout_s=600)
then: bash benchmarks/gpu_session.sh collect <files_at> <run name, e.g. h100-run3>
EOF
}

run() {
  : "${OUT:?OUT must name the folder for the results (the device tool sets it)}"
  OUT=$(realpath "$OUT")
  local nb_env bench_args pyver
  pyver=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  if ! ls .whl/*"$pyver"*.whl > /dev/null 2>&1; then
    echo "the wheels in .whl/ are not for $pyver: run 'bash benchmarks/gpu_session.sh prepare' here" >&2
    return 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONHASHSEED=0 HF_HUB_OFFLINE=1
  export RQVAE_SHARED_DATA=$PWD/.device_data RQVAE_DATA_ROOT=/tmp/rqvae-data
  nb_env=(RQVAE_FAST=0)
  bench_args=(--datasets beauty --jobs main --budget-s "$BENCH_BUDGET_S" --val-every 4 --no-amp
              --fast-kernels --threads 4)
  if [ -n "${GPU_SESSION_SMOKE:-}" ]; then
    nb_env=(RQVAE_FAST=1)
    bench_args=(--datasets beauty --jobs main --preset tiny --max-users 150 --budget-s 5
                --max-epochs 2 --threads 1)
  fi
  # Preflight, seconds: the GPU, the data and a kernel, before any long job starts.
  timeout 120 "$PY" - <<'PYEOF'
import os, sys, torch, nbformat
from nbclient import NotebookClient
if not os.environ.get("GPU_SESSION_SMOKE"):
    assert torch.cuda.is_available(), "no CUDA device: run this on the device machine"
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, flush=True)
from rqvae_lib.retrieval.experiment import load_retrieval_data, semantic_id_table
print("data:", len(load_retrieval_data("beauty").sequences.test), "test users;",
      "ids:", tuple(semantic_id_table("beauty", "rqvae")[0].shape), flush=True)
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch; print(torch.cuda.is_available())")])
NotebookClient(nb, kernel_name="python3", timeout=60).execute()
cuda_in_kernel = nb.cells[0].outputs[0]["text"].strip()
print("kernel sees CUDA:", cuda_in_kernel, flush=True)
assert cuda_in_kernel == "True" or os.environ.get("GPU_SESSION_SMOKE"), "the kernel has no GPU"
PYEOF
  echo "preflight done after $SECONDS s"
  local left=$((DEADLINE - SECONDS))
  # The notebook runs as a copy in $OUT (its figures too), so the tree's copy stays as it was.
  cp "$NOTEBOOK" "$OUT/"
  env "${nb_env[@]}" RQVAE_FIGURES="$OUT" timeout "$left" "$PY" -m rqvae_lib.tutorial \
    "$OUT/$(basename "$NOTEBOOK")" > "$OUT/notebook.log" 2>&1 &
  local nb_pid=$!
  local runs=() pids=() run batch lr warmup rc=0
  for run in $BENCH_RUNS; do
    IFS=: read -r batch lr warmup <<< "$run"
    timeout "$left" "$PY" benchmarks/retrieval.py "${bench_args[@]}" --batch-size "$batch" \
      --lr "$lr" --warmup-steps "$warmup" --out "$OUT/bench-bs$batch" > "$OUT/bench-bs$batch.log" 2>&1 &
    runs+=("bs$batch") pids+=($!)
  done
  wait "$nb_pid" || rc=$?
  echo "notebook: exit $rc"
  tail -n 5 "$OUT/notebook.log"
  for i in "${!pids[@]}"; do
    local brc=0
    wait "${pids[$i]}" || brc=$?
    echo "benchmark ${runs[$i]}: exit $brc"
    tail -n 6 "$OUT/bench-${runs[$i]}.log"
    [ "$brc" = 0 ] || rc=$brc
  done
  echo "$SECONDS s in all"
  local files
  files=$(find "$OUT" -type f | wc -l)
  [ "$files" -le 8 ] || echo "warning: $files files in \$OUT, but only 8 come back" >&2
  return "$rc"
}

collect() {
  local dir=${1:?the device call\'s files_at} name=${2:?a run name, e.g. h100-run3}
  local put="cp --no-preserve=mode" nb bench
  nb="$dir/$(basename "$NOTEBOOK")"
  for bench in "$dir"/bench-bs*/; do  # each benchmark run that wrote its record
    bench=$(basename "$bench")
    if [ -f "$dir/$bench/retrieval.json" ]; then
      $put "$dir/$bench/retrieval.json" "benchmarks/results/retrieval-$name-${bench#bench-}.json"
      $put "$dir/$bench.log" "benchmarks/results/retrieval-$name-${bench#bench-}.log"
      echo "benchmarks/results/retrieval-$name-${bench#bench-}.{json,log}"
    else
      echo "skipped $bench: no record (see $dir/$bench.log)"
    fi
  done
  # The notebook only from a run that finished, and never with this machine's paths in it.
  if ! tail -n 1 "$dir/notebook.log" 2>/dev/null | grep -q "^all notebooks took"; then
    echo "skipped the notebook and its figures: it did not finish (see $dir/notebook.log)"
  elif grep -qE '/(opt|root|tmp|home|work)/' "$nb"; then
    echo "skipped the notebook: its outputs name machine paths ($(grep -oE '/(opt|root|tmp|home|work)/[^" ]*' "$nb" | head -n 1))"
  else
    $put "$nb" "$NOTEBOOK"
    $put "$dir"/06_*.png figures/
    echo "$NOTEBOOK and figures/06_*.png"
  fi
  echo "next: add the runs to benchmarks/RESULTS.md and the README table, and re-read 06's prose"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  collect) shift; collect "$@" ;;
  *) echo "usage: bash benchmarks/gpu_session.sh prepare | run | collect DIR NAME" >&2; exit 2 ;;
esac
