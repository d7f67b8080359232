#!/usr/bin/env bash
# Step 2: the base model and every checkpoint-N of a training run -> learning curves (MCQ accuracy
# and held-out perplexity per step: OUT/curves.csv, curves.png, points/<checkpoint>/).
#
#   CONFIG=eval/demo.yaml bash eval/02_sweep.sh --run-dir RUN_DIR [--base MODEL] [more `astrollama eval sweep` flags]
#   Slurm: sbatch --gpus-per-node=1 slurm/eval.sh RUN_DIR --config $CONFIG [--base MODEL]
#
# The options come from the config's 'sweep' section (eval/README.md); the work is `astrollama eval
# sweep` (docs/eval-report.md). Resumable: points already scored with the same settings are skipped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/eval/astromlab1.yaml}
exec astrollama eval sweep --config "$CONFIG" "$@"
