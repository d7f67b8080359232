#!/usr/bin/env bash
# Merge checkpoints from a merge recipe (mergekit: linear or DARE-TIES), as ONE job on one node.
#
#   sbatch [--cpus-per-task=16 --mem=64G --time=2:00:00 ...] slurm/merge.sh RECIPE [key=value ...]
#   bash slurm/merge.sh RECIPE [key=value ...]        # same thing on this machine, without Slurm
#
# Submit from the repository root. Thin shell: validation, the checks of the inputs (same
# architecture and vocabulary), the mergekit config, provenance and the atomic write of the merged
# model live in `astrollama merge` (docs/train-merge.md). A merge runs on CPU (mergekit streams the
# tensors: memory ~ a few tensors, not whole models). The job is requeueable: a preempted or
# requeued attempt leaves only a temporary directory beside output_dir, which the next attempt of the
# same job removes before merging again from scratch; once output_dir holds the finished merge of the
# same recipe and input files, a requeued or resubmitted job ends at once (exit 0), and a different
# merge there is refused (exit 2).
#
# Knobs: ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV ([$REPO/.venv]),
# ASTROLLAMA_ENV_SETUP (shell code run first, e.g. "module load python/3.11").
#
#SBATCH --job-name=astrollama-merge
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=4:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: sbatch slurm/merge.sh RECIPE [key=value ...]  |  bash slurm/merge.sh RECIPE [key=value ...]" >&2
  exit 2
fi

REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_env.sh
source "$REPO/slurm/_env.sh"

echo "[merge.sh] $(hostname) job ${SLURM_JOB_ID:-local}, ${SLURM_CPUS_PER_TASK:-all} CPU(s): $*"
exec "$PY" -m astrollama merge "$@"
