#!/usr/bin/env bash
# Stage 7: AIC or summaries -> filtered astro question/answer conversations (an instruct LLM).
#
#   CONFIG=data_prep/astro-ph.yaml bash data_prep/07_qa.sh [more `astrollama data qa` flags: they win]
#   Slurm array: sbatch --array=0-31 --gpus-per-node=1 slurm/qa.sh --config $CONFIG   (one vLLM engine per task)
#
# The options come from the config's 'qa' section (data_prep/README.md); the work is `astrollama
# data qa` (docs/data-sft.md).
# Rerunning it after a kill continues where it stopped (qa) or writes the same output again.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data qa --config "$CONFIG" "$@"
