#!/usr/bin/env bash
# Stage 1 of 8: paper metadata (OAI-PMH, Kaggle snapshot, arXiv API or local files) into the manifest.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/01_harvest.sh [more `astrollama data harvest` flags: they win]
#   (one process: arxiv.org allows one request per 3 s; no Slurm array)
#
# The options come from the config's 'harvest' section (data_prep/README.md); the work is `astrollama
# data harvest` (docs/data-harvest.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data harvest --config "$CONFIG" "$@"
