#!/usr/bin/env bash
# The retrieval stage's GPU measurements in one command, on a machine with a CUDA GPU and this
# repository installed (`make venv`, or `pip install -e '.[dev]'`):
#
#   bash benchmarks/gpu_session.sh OUT_DIR [options of benchmarks/retrieval.py]
#
# 1. The Beauty ID tables in artifacts/retrieval/, built if missing (benchmarks/retrieval.py
#    --prepare-ids; that needs the item embeddings and notebook 03's model, trained if missing).
# 2. Notebook 06 in full mode. On CUDA it trains under the GPU budget declared in
#    rqvae_lib.retrieval.experiment.GPU_BUDGET. It runs as a copy in OUT_DIR, so the notebook in
#    notebooks/ stays as it is: OUT_DIR/06_generative_retrieval.ipynb (executed, with its
#    outputs), OUT_DIR/notebook.log and OUT_DIR/figures/06_*.png.
# 3. The Beauty benchmark under the same budget, every job one after the other:
#    benchmarks/retrieval.py --budget gpu --datasets beauty, followed by the options given after
#    OUT_DIR (for example `--jobs main`, or `--batch-size 1024 --learning-rate 2e-3
#    --warmup-steps 250`). The record is OUT_DIR/benchmark/retrieval.json, the log
#    OUT_DIR/benchmark.log.
#
# The notebook and the benchmark run one after the other, so neither shares the GPU with the
# other, and a failure of one does not stop the other. To add a run to the published results,
# copy OUT_DIR/benchmark/retrieval.json and OUT_DIR/benchmark.log to
# benchmarks/results/retrieval-<gpu>-run<N>.json and .log: notebook 06 reads every such record.
#
# PYTHON names the Python to use (default: .venv/bin/python when it exists, else python3). The
# RQVAE_* variables of README.md apply (RQVAE_DATA_ROOT, RQVAE_ARTIFACTS, RQVAE_SHARED_DATA).
set -euo pipefail

usage="usage: bash benchmarks/gpu_session.sh OUT_DIR [options of benchmarks/retrieval.py]"
case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  "" | -*)
    echo "$usage" >&2
    echo "OUT_DIR (first) is a new or empty folder for the records, logs, notebook and figures." >&2
    exit 2
    ;;
esac
OUT=$1
shift
if [ -e "$OUT" ] && [ ! -d "$OUT" ]; then
  echo "OUT_DIR $OUT is a file, not a folder" >&2
  exit 2
fi
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "OUT_DIR $OUT already holds files: name a new or empty folder, so runs do not mix" >&2
  exit 2
fi
OUT=$(realpath -m "$OUT")  # before the cd below, so a relative OUT_DIR means the caller's
cd "$(dirname "$0")/.."
REPO=$PWD

if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -x .venv/bin/python ]; then
  PY=$REPO/.venv/bin/python
else
  PY=python3
fi
if ! command -v "$PY" > /dev/null; then
  echo "no Python at '$PY': install the repository (make venv) or set PYTHON" >&2
  exit 1
fi

# Seconds: what the run needs, and a CUDA GPU that torch can use.
"$PY" - << 'PYEOF'
import importlib.util
import sys

missing = [m for m in ("torch", "nbconvert", "ipykernel") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(
        f"{sys.executable} lacks {', '.join(missing)}: install the repository with its [dev] "
        "extra (make venv, or pip install -e '.[dev]'), or name another Python with PYTHON=..."
    )
import torch

if not torch.cuda.is_available():
    sys.exit(
        f"no CUDA GPU is visible to torch {torch.__version__} ({sys.executable}). This script "
        "measures the GPU budget: run it on a machine with a CUDA GPU and a CUDA build of torch. "
        "On a CPU, `make tutorial` runs notebook 06 under its CPU budget."
    )
print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {sys.executable}")
PYEOF

export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export PYTHONHASHSEED=${PYTHONHASHSEED:-0} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

# The notebook runs in a Jupyter kernel ("python3"): it must see the GPU too.
"$PY" - << 'PYEOF'
import sys

import nbformat
from nbclient import NotebookClient

cell = nbformat.v4.new_code_cell("import torch; print(torch.cuda.is_available())")
nb = nbformat.v4.new_notebook(cells=[cell])
NotebookClient(nb, kernel_name="python3", timeout=120).execute()
if nb.cells[0].outputs[0].get("text", "").strip() != "True":
    sys.exit(
        "the notebooks' Jupyter kernel (python3) sees no CUDA GPU: install ipykernel into the "
        "environment that has the CUDA build of torch"
    )
PYEOF

mkdir -p "$OUT/figures"
NOTEBOOK=notebooks/06_generative_retrieval.ipynb
status=0

echo "ID tables -> $OUT/prepare-ids.log"
if ! "$PY" benchmarks/retrieval.py --budget gpu --datasets beauty "$@" --prepare-ids \
  --out "$OUT/benchmark" > "$OUT/prepare-ids.log" 2>&1; then
  tail -n 20 "$OUT/prepare-ids.log" >&2
  echo "building the ID tables failed (log above); nothing else ran" >&2
  exit 1
fi

echo "notebook 06, full mode -> $OUT/$(basename "$NOTEBOOK"), $OUT/notebook.log"
cp "$NOTEBOOK" "$OUT/"
start=$SECONDS
RQVAE_FAST=0 RQVAE_FIGURES="$OUT/figures" "$PY" -m rqvae_lib.course.tutorial \
  "$OUT/$(basename "$NOTEBOOK")" > "$OUT/notebook.log" 2>&1 || status=$?
echo "  exit $status after $((SECONDS - start)) s"
tail -n 3 "$OUT/notebook.log"

echo "Beauty benchmark -> $OUT/benchmark/retrieval.json, $OUT/benchmark.log"
start=$SECONDS
bench=0
"$PY" benchmarks/retrieval.py --budget gpu --datasets beauty --out "$OUT/benchmark" "$@" \
  > "$OUT/benchmark.log" 2>&1 || bench=$?
echo "  exit $bench after $((SECONDS - start)) s"
tail -n 12 "$OUT/benchmark.log"

echo "$SECONDS s in all; results in $OUT"
[ "$status" = 0 ] || exit "$status"
exit "$bench"
