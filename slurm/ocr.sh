#!/usr/bin/env bash
# Nougat OCR of every downloaded PDF of a data root, as a job array: one process per GPU.
#
#   sbatch --array=0-15 slurm/ocr.sh DATA_ROOT --checkpoint /models/nougat-small      # transformers port
#   ASTROLLAMA_NOUGAT_BIN=/envs/ocr-nougat/bin/nougat \
#     sbatch --array=0-15 slurm/ocr.sh DATA_ROOT --backend nougat-cli --checkpoint /models/nougat-0.1.0-small
#   bash slurm/ocr.sh DATA_ROOT --backend pdf-text                                  # this machine, no GPU
#   sbatch --array=0-15 slurm/ocr.sh --config data_prep/astro-ph.yaml               # options from the config
#
# Array task t (t = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, of T = SLURM_ARRAY_TASK_COUNT) on a
# node with G GPUs starts G srun tasks; local task l (SLURM_LOCALID) sees one GPU and takes shard
# t*G + l of T*G. Without GPUs (or outside Slurm) one process takes shard t of T. Keep G the same
# for every run of a data root: the shard count T*G must not change between a run and its rerun.
#
# Thin shell: batching, markers, failure records and resume live in `astrollama data ocr`
# (docs/data-ocr.md). Rerunning the same command after a kill, timeout or node failure continues
# where it stopped; finished shards exit at once. Add --retry-failed to retry failed papers.
#
# Knobs: ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV ([$REPO/.venv]: the
# project environment, with a CUDA torch on GPU nodes), ASTROLLAMA_NOUGAT_BIN (nougat-cli backend:
# the `nougat` of the separate envs/ocr-nougat.txt environment), ASTROLLAMA_ENV_SETUP (shell code
# run first, e.g. "module load cuda/12.4"), OCR_GPUS (override G).
#
#SBATCH --job-name=astrollama-ocr
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --mem=160G
#SBATCH --time=48:00:00
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%A_%a.out
set -euo pipefail

USAGE="sbatch --array=0-N slurm/ocr.sh [DATA_ROOT | --config FILE] [astrollama data ocr args]"
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_data_stage.sh
source "$REPO/slurm/_data_stage.sh"  # usage, ROOT (the data root), slurm/_env.sh, TASK of TASKS
GPUS=${OCR_GPUS:-${SLURM_GPUS_ON_NODE:-0}}
GPUS=${GPUS%%(*}  # "4(IDX:0-3)" on some Slurm versions

echo "[ocr.sh] $(hostname) job ${SLURM_JOB_ID:-local} array task $TASK/$TASKS, $GPUS GPU(s): ${ROOT[*]} $*"
if [ -n "${SLURM_JOB_ID:-}" ] && [ "$GPUS" -gt 0 ]; then
  # one srun task per GPU; \$SLURM_LOCALID expands inside each task, not here
  exec srun --ntasks="$GPUS" --ntasks-per-node="$GPUS" --gpus-per-task=1 --kill-on-bad-exit=0 \
    bash -c "exec \"$PY\" -m astrollama data ocr --device cuda \
      --shard \$(( $TASK * $GPUS + SLURM_LOCALID ))/$(( TASKS * GPUS )) --no-progress \"\$@\"" ocr "${ROOT[@]}" "$@"
fi
exec "$PY" -m astrollama data ocr "${ROOT[@]}" --shard "$TASK/$TASKS" "$@"
