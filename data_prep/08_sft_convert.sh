#!/usr/bin/env bash
# Stage 8: general SFT sets (LIMA, OpenOrca, UltraChat) + astro Q&A -> one LMFlow conversation mix.
#
#   CONFIG=data_prep/astro-ph.yaml bash data_prep/08_sft_convert.sh [more `astrollama data sft-convert` flags: they win]
#   One CPU process (it reads, samples, decontaminates and shards; minutes for the published mix).
#
# The options come from the config's 'sft-convert' section (data_prep/README.md); the work is `astrollama
# data sft-convert` (docs/data-sft.md).
# Rerunning it after a kill continues where it stopped (qa) or writes the same output again.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# relative paths on the command line (and in CONFIG) are the caller's: astrollama resolves them
# against this directory (astrollama.paths); the config's own paths stay repository-relative
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO"
CONFIG=${CONFIG:-$REPO/data_prep/astro-ph.yaml}
exec astrollama data sft-convert --config "$CONFIG" "$@"
