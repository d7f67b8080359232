#!/usr/bin/env bash
# Stage 5 of 8: the summary variant: 1,000-4,000-token summaries by an instruct LLM.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/05_summarize.sh [more `astrollama data summarize` flags: they win]
#   Slurm array: sbatch --array=0-31 --gpus-per-node=1 slurm/summarize.sh --config $CONFIG   (vLLM)
#
# The options come from the config's 'summarize' section (data_prep/README.md); the work is `astrollama
# data summarize` (docs/data-corpus.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data summarize --config "$CONFIG" "$@"
