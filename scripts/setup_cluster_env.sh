#!/usr/bin/env bash
# The training environment on a CUDA cluster: envs/train-cluster.txt (LMFlow + DeepSpeed) with the
# CUDA build of the pinned torch, flash-attn built against it, and this package, in .venv-train
# (the environment slurm/cpt.sh activates; slurm/_env.sh's rule). Run it once, on a GPU node or a
# login node with the same CUDA driver, from anywhere in the repository:
#
#   bash scripts/setup_cluster_env.sh [--cuda cu128] [--python python3.11] [--venv DIR] [--dry-run]
#
#   --cuda TAG     PyTorch wheel index tag matching the cluster's CUDA (cu128: CUDA 12.8) [cu128]
#   --python PY    the interpreter the environment is made from [python3.11]
#   --venv DIR     where the environment goes [.venv-train]
#   --dry-run      print the commands, run nothing (works anywhere: no CUDA, no network)
#
# Cluster-only: it needs CUDA and network access to PyPI, download.pytorch.org and GitHub (LMFlow
# is installed from its git commit). A CPU machine builds the same environment without CUDA torch
# and flash-attn with scripts/setup_train_env.sh (what the tests use). After it: `bash
# scripts/gpu_check.sh` on a GPU node checks the environment end to end (docs/train-runtime.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA=cu128
PY=python3.11
VENV=.venv-train
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) CUDA=${2:?--cuda needs a value}; shift 2 ;;
    --python) PY=${2:?--python needs a value}; shift 2 ;;
    --venv) VENV=${2:?--venv needs a value}; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup_cluster_env.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$CUDA" in
  cu[0-9][0-9]*) ;;
  *) echo "setup_cluster_env.sh: --cuda must be a PyTorch CUDA tag such as cu128, got '$CUDA'" >&2; exit 2 ;;
esac

REQ=envs/train-cluster.txt
# the pins come from envs/train-cluster.txt, so this script and the file cannot disagree
TORCH=$(sed -n 's/^torch==\([^[:space:]]*\).*/\1/p' "$REQ")
FLASH=$(sed -n 's/.*pip install flash-attn==\([^[:space:]]*\).*/\1/p' "$REQ" | head -n 1)
if [ -z "$TORCH" ] || [ -z "$FLASH" ]; then
  echo "setup_cluster_env.sh: $REQ: no 'torch==' pin or no 'pip install flash-attn==' line" >&2
  exit 2
fi

commands=(
  "$PY -m venv $VENV"
  "$VENV/bin/python -m pip install --upgrade pip"
  "$VENV/bin/python -m pip install torch==$TORCH --index-url https://download.pytorch.org/whl/$CUDA"
  "$VENV/bin/python -m pip install -r $REQ"
  "$VENV/bin/python -m pip install flash-attn==$FLASH --no-build-isolation"
  "$VENV/bin/python -m pip install -e ."
  "$VENV/bin/python -c 'import torch, flash_attn, deepspeed, lmflow; assert torch.cuda.is_available(), \"no CUDA device visible\"; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, \"flash-attn\", flash_attn.__version__)'"
)
if [ "$DRY" = 1 ]; then
  printf '%s\n' "${commands[@]}"
  exit 0
fi
if [ -e "$VENV" ]; then
  echo "setup_cluster_env.sh: $VENV exists; remove it or pass --venv DIR" >&2
  exit 2
fi
command -v "$PY" >/dev/null || { echo "setup_cluster_env.sh: $PY not found (pass --python)" >&2; exit 2; }
for c in "${commands[@]}"; do
  echo "[setup_cluster_env] $c"
  bash -c "$c"
done
echo "[setup_cluster_env] done: slurm/cpt.sh will train in $VENV"
