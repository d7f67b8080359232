#!/usr/bin/env bash
# BUILD stage: corpus variants -> LMFlow text_only shards (cleaning, dedup, decontamination,
# tokens, split), as ONE job on one node with a worker process per CPU.
#   sbatch --cpus-per-task=32 slurm/build.sh --config data_prep/astro-ph.yaml   # options from the config
#
#   sbatch --cpus-per-task=32 slurm/build.sh DATA_ROOT --out work/corpora --tokenizer /models/Meta-Llama-3-8B \
#       --mcq Astrobench_MCQ_v1_Public.parquet [astrollama data build args]
#   bash slurm/build.sh DATA_ROOT --out work/corpora --tokenizer DIR ...     # this machine
#
# Workers: --workers N if given, else the job's CPUs (SLURM_CPUS_PER_TASK), else every CPU of this
# machine. Thin shell: every step, threshold and output lives in `astrollama data build`
# (docs/data-corpus.md). A variant is written under a temporary name and renamed when complete; a
# rerun after a kill rebuilds it, and skips variants already built with the same inputs.
#
# Knobs: ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV ([$REPO/.venv]),
# ASTROLLAMA_ENV_SETUP (shell code run first, e.g. "module load python/3.11").
#
#SBATCH --job-name=astrollama-build
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=12:00:00
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail

USAGE="sbatch slurm/build.sh [DATA_ROOT | --config FILE] --out DIR --tokenizer DIR [astrollama data build args]"
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_data_stage.sh
source "$REPO/slurm/_data_stage.sh"  # usage, ROOT (the data root), slurm/_env.sh, TASK of TASKS

WORKERS=()   # a --workers among the arguments comes later and wins
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then WORKERS=(--workers "$SLURM_CPUS_PER_TASK"); fi

echo "[build.sh] $(hostname) job ${SLURM_JOB_ID:-local}, ${SLURM_CPUS_PER_TASK:-all} CPU(s): ${ROOT[*]} $*"
exec "$PY" -m astrollama data build "${ROOT[@]}" "${WORKERS[@]}" "$@"
