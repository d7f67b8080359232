#!/usr/bin/env bash
# Stage 2 of 8: PDFs and LaTeX sources (arxiv.org or a bulk mirror; the demo renders its PDFs).
#
#   CONFIG=data_prep/demo.yaml bash data_prep/02_download.sh [more `astrollama data download` flags: they win]
#   Slurm array: sbatch --array=0-15 slurm/download.sh --config $CONFIG
#
# The options come from the config's 'download' section (data_prep/README.md); the work is `astrollama
# data download` (docs/data-harvest.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-data_prep/astro-ph.yaml}
exec astrollama data download --config "$CONFIG" "$@"
