#!/usr/bin/env bash
# Stage 6 of 8: corpus variants -> cleaned, deduplicated, decontaminated, split LMFlow shards.
#
#   CONFIG=data_prep/demo.yaml bash data_prep/06_build.sh [more `astrollama data build` flags: they win]
#   Slurm: sbatch --cpus-per-task=32 slurm/build.sh --config $CONFIG   (one job, a worker per CPU)
#
# The options come from the config's 'build' section (data_prep/README.md); the work is `astrollama
# data build` (docs/data-corpus.md). Rerunning it after a kill continues where it stopped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data build --config "$CONFIG" "$@"
