#!/usr/bin/env bash
# Step 4: RESULTS directories (+ the embeddings of step 3) -> the report: reproduced beside published
# numbers with intervals (OUT/report.md, report.json, table.csv, report.png).
#
#   CONFIG=eval/demo.yaml bash eval/04_report.sh --results RESULTS... [--embed DIR] --out DIR
#   Slurm: sbatch slurm/eval.sh report --config $CONFIG --results RESULTS... --out DIR
#
# The options come from the config's 'report' section (eval/README.md); the work is `astrollama eval
# report` (docs/eval-report.md).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/eval/astromlab1.yaml}
exec astrollama eval report --config "$CONFIG" "$@"
