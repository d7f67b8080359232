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
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-eval/astromlab1.yaml}
exec astrollama eval report --config "$CONFIG" "$@"
