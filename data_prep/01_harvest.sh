#!/usr/bin/env bash
# Stage 1 of 8: paper metadata (OAI-PMH, Kaggle snapshot, arXiv API or local files) into the manifest.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/01_harvest.sh [more `astrollama data harvest` flags: they win]
#   (one process: arxiv.org allows one request per 3 s; no Slurm array)
#
# The options come from the config's 'harvest' section (data_prep/README.md); the work is `astrollama
# data harvest` (docs/data-harvest.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-data_prep/astro-ph.yaml}
exec astrollama data harvest --config "$CONFIG" "$@"
