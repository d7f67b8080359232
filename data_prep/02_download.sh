#!/usr/bin/env bash
# Stage 2 of 8: PDFs and LaTeX sources (arxiv.org or a bulk mirror; the demo renders its PDFs).
#
#   CONFIG=data_prep/demo.yaml bash data_prep/02_download.sh [more `astrollama data download` flags: they win]
#   Slurm array: sbatch --array=0-15 slurm/download.sh --config $CONFIG
#
# The options come from the config's 'download' section (data_prep/README.md); the work is `astrollama
# data download` (docs/data-harvest.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data download --config "$CONFIG" "$@"
