#!/usr/bin/env bash
# The README's first command: set up this checkout on a fresh machine (.venv with the CPU-safe core),
# then run the toy pipeline: the toy reproduction target reproduce/demo.yaml, in order on this machine
# (data_prep/demo.yaml's stages, CPT, SFT and merge through slurm/cpt.sh and slurm/merge.sh, then the
# evaluation and report), and print held-out perplexity before and after.
# A few minutes on 2 CPU cores; no GPU, no network beyond the package registries used by setup.
# Extra arguments go to `astrollama demo` (e.g. --resume, trainer.max_steps=10).
set -euo pipefail
export ASTROLLAMA_CALLER_CWD=$PWD  # a relative --workdir is the caller's (astrollama.paths)
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export ASTROLLAMA_CACHE=${ASTROLLAMA_CACHE:-$HOME/.cache/astrollama}
exec .venv/bin/astrollama demo "$@"
