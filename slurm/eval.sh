#!/usr/bin/env bash
# Score the base model and every checkpoint-N of a training run: MCQ accuracy (bootstrap 95% CI)
# and held-out perplexity, plus learning curves (CSV + PNG).
#
#   sbatch [--gpus-per-node=1 --time=08:00:00 ...] slurm/eval.sh RUN_DIR --base BASE_MODEL \
#       --heldout HELDOUT_DIR [--questions FILE] [--key KEY_FILE] [other `astrollama eval sweep` options]
#   sbatch slurm/eval.sh RUN_DIR --config eval/astromlab1.yaml [--base BASE_MODEL]   # options from a config
#   bash slurm/eval.sh RUN_DIR ...        # same thing on this machine, without Slurm
#
# Any other eval command of the eval/0*.sh steps runs the same way, named first:
#   sbatch --gpus-per-node=1 slurm/eval.sh model --config eval/astromlab1.yaml --model DIR --label L \
#       --role base --out RESULTS                             # also: models, embed, report, mcq, ppl, complete
#
# Submit from the repository root. This file is a thin shell: all logic is in
# `astrollama eval sweep` (src/astrollama/evaluation/sweep.py). Output: RUN_DIR/eval/sweep/
# {curves.csv, curves.png, points/<checkpoint>/...} (or --out DIR). Resumable: points already
# scored with the same settings are skipped, so the job can be requeued, or resubmitted while
# training is still writing checkpoints. Docs: docs/eval-report.md.
#
#SBATCH --job-name=astrollama-eval
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: sbatch slurm/eval.sh RUN_DIR --base MODEL --heldout DIR [--questions FILE] [--key FILE] ..." >&2
  echo "       sbatch slurm/eval.sh RUN_DIR|model|models|embed|report|mcq|ppl|complete --config eval/<name>.yaml ..." >&2
  exit 2
fi
case $1 in
  model|models|sweep|embed|report|mcq|ppl|complete) COMMAND=$1; ARGS=() ;;
  *) COMMAND=sweep; ARGS=(--run-dir "$1") ;;
esac
shift
ARGS+=("$@")

# --- knobs (environment variables; defaults in brackets) --------------------------------------
# ASTROLLAMA_REPO       repository root [the sbatch submit directory, else this file's parent]
# ASTROLLAMA_VENV       virtual environment to activate [$ASTROLLAMA_REPO/.venv if it exists]
# ASTROLLAMA_ENV_SETUP  shell code run first, e.g. "module load cuda/12.4" [none]
# The sweep without --config (with a --config, or another command, the config and the arguments
# decide and none of these is passed):
# QUESTIONS             MCQ file [eval/data/astro_mcq_sample.jsonl]; the public benchmark is the
#                       AstroMLab parquet (no key: predictions + submission.csv, no accuracy)
# DTYPE                 scoring dtype on GPU [bfloat16]; always float32 on CPU
# BATCH_SIZE            [16]
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=slurm/_env.sh
source "$REPO/slurm/_env.sh"
QUESTIONS=${QUESTIONS:-$REPO/eval/data/astro_mcq_sample.jsonl}
BATCH_SIZE=${BATCH_SIZE:-16}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1} TOKENIZERS_PARALLELISM=false

DEVICE=cpu DTYPE_USED=float32
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  DEVICE=cuda DTYPE_USED=${DTYPE:-bfloat16}
fi

DEFAULTS=(--questions "$QUESTIONS" --dtype "$DTYPE_USED" --batch-size "$BATCH_SIZE" --device "$DEVICE")
SETTINGS="device=$DEVICE dtype=$DTYPE_USED"
for a in "${ARGS[@]}"; do
  case $a in --config|--config=*) DEFAULTS=() ;; esac
done
if [ "$COMMAND" != sweep ]; then DEFAULTS=(); fi
if [ ${#DEFAULTS[@]} -eq 0 ]; then SETTINGS="options from the config and arguments"; fi
echo "[eval.sh] $(date -u +%FT%TZ) job ${SLURM_JOB_ID:-local} eval $COMMAND ${ARGS[*]} $SETTINGS host=$(hostname)"
cmd=("$PY" -m astrollama eval "$COMMAND" "${DEFAULTS[@]}" "${ARGS[@]}")
if [ -n "${SLURM_JOB_ID:-}" ]; then
  exec srun --ntasks=1 "${cmd[@]}"
fi
exec "${cmd[@]}"
