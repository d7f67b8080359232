#!/usr/bin/env bash
# Stage 6 of 8: corpus variants -> cleaned, deduplicated, decontaminated, split LMFlow shards.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/06_build.sh [more `astrollama data build` flags: they win]
#   Slurm: sbatch --cpus-per-task=32 slurm/build.sh --config $CONFIG   (one job, a worker per CPU)
#
# The options come from the config's 'build' section (data_prep/README.md); the work is `astrollama
# data build` (docs/data-corpus.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-data_prep/astro-ph.yaml}
exec astrollama data build --config "$CONFIG" "$@"
