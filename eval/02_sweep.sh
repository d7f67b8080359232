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
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-eval/astromlab1.yaml}
exec astrollama eval sweep --config "$CONFIG" "$@"
