#!/usr/bin/env bash
# ONE sbatch script for every pipeline stage that is not training: any `astrollama ...` command as
# a job or a job-array task. `astrollama data run --slurm` and `astrollama reproduce` submit it,
# one job (array) per stage, chained with --dependency=afterok; you rarely type it yourself:
#
#   sbatch --array=0-15 slurm/stage.sh data run data_prep/astro-ph.yaml --stage aic
#   sbatch --cpus-per-task=16 --mem=64G slurm/stage.sh data run data_prep/astro-ph.yaml --stage build
#   bash slurm/stage.sh data run data_prep/demo.yaml --stage aic          # this machine
#
# Array task t (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT) takes shard t
# of the stage's papers (astrollama.data.shards.shard_from_env). Every stage resumes where it
# stopped, so a requeued task (--requeue, `scontrol requeue`) redoes nothing that finished.
# Resources come from the submitter (astrollama.data.pipeline.RESOURCES, the config's `slurm:`).
#
# Knobs: ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV ([$REPO/.venv]),
# ASTROLLAMA_ENV_SETUP (shell code run first, e.g. "module load python/3.11"); slurm/_env.sh.
#
#SBATCH --job-name=astrollama-stage
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: sbatch [--array=0-N] slurm/stage.sh ASTROLLAMA-COMMAND [args]   e.g. data run data_prep/demo.yaml --stage aic" >&2
  exit 2
fi

REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_env.sh
source "$REPO/slurm/_env.sh"

echo "[stage.sh] $(hostname) job ${SLURM_JOB_ID:-local} task ${SLURM_ARRAY_TASK_ID:-none} restart ${SLURM_RESTART_COUNT:-0}: astrollama $*"
exec "$PY" -m astrollama "$@"
