#!/usr/bin/env bash
# Stage 3 of 8: PDFs -> Nougat markdown (.mmd): Nougat on GPUs, or the PDF text layer.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/03_ocr.sh [more `astrollama data ocr` flags: they win]
#   Slurm array: sbatch --array=0-15 slurm/ocr.sh --config $CONFIG   (one process per GPU)
#
# The options come from the config's 'ocr' section (data_prep/README.md); the work is `astrollama
# data ocr` (docs/data-ocr.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data ocr --config "$CONFIG" "$@"
