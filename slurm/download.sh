#!/usr/bin/env bash
# Download PDFs and LaTeX sources for every paper in a data root's manifest, as a job array.
#   sbatch --array=0-15 slurm/download.sh --config data_prep/astro-ph.yaml     # options from the config
#
#   sbatch --array=0-15 slurm/download.sh DATA_ROOT --mirror /bulk/arxiv [download args]
#   sbatch --array=0-0  slurm/download.sh DATA_ROOT                      # from arxiv.org: ONE task
#   bash slurm/download.sh DATA_ROOT [download args]                     # this machine, one shard
#
# Thin shell: sharding, resume, rate limit and failure records live in `astrollama data download`
# (docs/data-harvest.md). Each array task takes shard SLURM_ARRAY_TASK_ID - MIN of
# SLURM_ARRAY_TASK_COUNT (use a contiguous --array=A-B; %MAX to cap concurrency is fine).
# Rerunning the same command after a kill, timeout or failure continues where it stopped;
# finished shards exit at once. Add --retry-failed to retry papers recorded as failed.
#
# arxiv.org allows one request per 3 s: each task waits 3 s x (number of tasks) between requests,
# so the array as a whole stays within the limit; a bulk mirror (--mirror) is the way to go fast.
#
# Knobs: ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV ([$REPO/.venv]),
# ASTROLLAMA_ENV_SETUP (shell code run first, e.g. "module load python/3.11").
#
#SBATCH --job-name=astrollama-download
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=24:00:00
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%A_%a.out
set -euo pipefail

USAGE="sbatch --array=0-N slurm/download.sh [DATA_ROOT | --config FILE] [astrollama data download args]"
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_data_stage.sh
source "$REPO/slurm/_data_stage.sh"  # usage, ROOT (the data root), slurm/_env.sh, TASK of TASKS

echo "[download.sh] $(hostname) job ${SLURM_JOB_ID:-local} task ${SLURM_ARRAY_TASK_ID:-0}/${SLURM_ARRAY_TASK_COUNT:-1}: ${ROOT[*]} $*"
exec "$PY" -m astrollama data download "${ROOT[@]}" "$@"
