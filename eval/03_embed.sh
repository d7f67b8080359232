#!/usr/bin/env bash
# Step 3: embedding-similarity distributions of two or more models on the held-out documents
# (OUT/similarity.json, similarity.png), for the report.
#
#   CONFIG=eval/demo.yaml bash eval/03_embed.sh --model BASE --label NAME --model TRAINED --label NAME \
#       --out DIR [more `astrollama eval embed` flags: they win]
#   Slurm: sbatch --gpus-per-node=1 slurm/eval.sh embed --config $CONFIG --model BASE --model TRAINED --out DIR
#
# The options come from the config's 'embed' section (eval/README.md); the work is `astrollama eval
# embed` (docs/eval-report.md).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/eval/astromlab1.yaml}
exec astrollama eval embed --config "$CONFIG" "$@"
