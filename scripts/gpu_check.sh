#!/usr/bin/env bash
# GPU check: local engine bf16/SDPA (tokens/s, MFU), DeepSpeed ZeRO-2/3, LMFlow, MCQ vs lm-eval, Nougat.
# One JSON of figures on stdout (and in $OUT/gpu_check.json). Details: docs/train-runtime.md, "GPU check".
#
#   bash scripts/gpu_check.sh --prepare-wheels .whl [--lmflow-dir DIR]  # here, with registries (<= 64 MiB)
#   bash scripts/gpu_check.sh --wheels .whl --out "$OUT"                 # on the GPU machine, no network
#   bash scripts/gpu_check.sh --cpu-smoke                                # toy sizes on CPU (CI)
#
# --wheels DIR: install DIR/*.whl (--no-index --no-deps) into a private folder put first on PYTHONPATH;
# LMFlow's examples/finetune.py is taken from DIR/lmflow/examples when present. Other flags go to
# `python -m astrollama.tools.gpucheck` (--only, --budget-s, --peak-tflops, --python, --work).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x .venv/bin/python ] && PY=.venv/bin/python; } || PY=python3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels)
      wheels=$(cd "$2" && pwd) site=${GPU_CHECK_SITE:-/tmp/gpu-check-site}
      rm -rf "$site"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl >&2
      export PYTHONPATH=$site:${PYTHONPATH:-}
      [ -f "$wheels/lmflow/examples/finetune.py" ] && args+=(--lmflow-script "$wheels/lmflow/examples/finetune.py")
      shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
exec "$PY" -m astrollama.tools.gpucheck "${args[@]}"
