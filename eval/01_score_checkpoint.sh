#!/usr/bin/env bash
# Step 1: one checkpoint -> a RESULTS directory: MCQ accuracy (bootstrap 95% CI), held-out
# perplexity and a seeded completion, the model loaded once (mcq/, ppl.json, completion.json, meta.json).
#
#   CONFIG=eval/demo.yaml bash eval/01_score_checkpoint.sh --model DIR --label NAME --role base|trained \
#       --out RESULTS [more `astrollama eval model` flags: they win]
#   Slurm: sbatch --gpus-per-node=1 slurm/eval.sh model --config $CONFIG --model DIR --label NAME ...
#
# The options come from the config's 'model' section (eval/README.md); the work is `astrollama eval
# model` (docs/eval-report.md).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/eval/astromlab1.yaml}
exec astrollama eval model --config "$CONFIG" "$@"
