#!/usr/bin/env bash
# Stage 3 of 8: PDFs -> Nougat markdown (.mmd): Nougat on GPUs, or the PDF text layer.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/03_ocr.sh [more `astrollama data ocr` flags: they win]
#   Slurm array: sbatch --array=0-15 slurm/ocr.sh --config $CONFIG   (one process per GPU)
#
# The options come from the config's 'ocr' section (data_prep/README.md); the work is `astrollama
# data ocr` (docs/data-ocr.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-data_prep/astro-ph.yaml}
exec astrollama data ocr --config "$CONFIG" "$@"
