#!/usr/bin/env bash
# Stage 4 of 8: the AIC variant: Abstract + Introduction + Conclusion from .mmd or LaTeX.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/04_aic.sh [more `astrollama data aic` flags: they win]
#   Slurm array: sbatch --array=0-15 slurm/aic.sh --config $CONFIG   (CPU)
#
# The options come from the config's 'aic' section (data_prep/README.md); the work is `astrollama
# data aic` (docs/data-corpus.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data aic --config "$CONFIG" "$@"
