#!/usr/bin/env bash
# The README's second command: set up (core + test tools + a single-node Slurm) and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k recipe`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev --slurm
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export ASTROLLAMA_CACHE=${ASTROLLAMA_CACHE:-$HOME/.cache/astrollama}
.venv/bin/ruff check src tests data_prep eval
exec .venv/bin/python -m pytest "$@"
