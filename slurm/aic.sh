#!/usr/bin/env bash
# AIC corpus variant (Abstract + Introduction + Conclusion of every paper), as a CPU job array.
#   sbatch --array=0-15 slurm/aic.sh --config data_prep/astro-ph.yaml     # options (and root) from the config
#
#   sbatch --array=0-15 slurm/aic.sh DATA_ROOT [astrollama data aic args]
#   bash slurm/aic.sh DATA_ROOT [astrollama data aic args]                  # this machine, one shard
#
# Array task t (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT) takes shard t:
# papers are assigned to shards by a hash of their id (astrollama.data.shards.shard_of), so keep the
# array size the same between a run and its rerun. Thin shell: parsing, the .mmd/LaTeX choice,
# manifest records and resume live in `astrollama data aic` (docs/data-corpus.md). Rerunning the
# same command continues where it stopped; add --retry-failed to retry failed papers.
#
# Knobs: ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV ([$REPO/.venv]),
# ASTROLLAMA_ENV_SETUP (shell code run first, e.g. "module load python/3.11").
#
#SBATCH --job-name=astrollama-aic
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=12:00:00
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%A_%a.out
set -euo pipefail

USAGE="sbatch --array=0-N slurm/aic.sh [DATA_ROOT | --config FILE] [astrollama data aic args]"
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_data_stage.sh
source "$REPO/slurm/_data_stage.sh"  # usage, ROOT (the data root), slurm/_env.sh, TASK of TASKS

echo "[aic.sh] $(hostname) job ${SLURM_JOB_ID:-local} array task $TASK/$TASKS: ${ROOT[*]} $*"
exec "$PY" -m astrollama data aic "${ROOT[@]}" --shard-index "$TASK" --num-shards "$TASKS" "$@"
