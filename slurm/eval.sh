#!/bin/bash
# Score the base model and every checkpoint-N of a training run: MCQ accuracy (bootstrap 95% CI)
# and held-out perplexity; learning curves as CSV + PNG. Logic: astrollama.evaluation.sweep.
#
#   sbatch slurm/eval.sh RUN_DIR --base BASE_MODEL_DIR --heldout HELDOUT_DIR \
#       [--questions FILE] [--key KEY_FILE] [any other `astrollama eval sweep` option]
#
# Output: RUN_DIR/eval/sweep/{curves.csv,curves.png,points/<checkpoint>/...} (or --out DIR).
# Resumable: points already scored with the same settings are skipped, so the job can be
# requeued or re-submitted while training is still writing checkpoints.
#SBATCH --job-name=astrollama-eval
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=08:00:00
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail

RUN_DIR=${1:?usage: sbatch slurm/eval.sh RUN_DIR --base MODEL --heldout DIR [--questions FILE] [--key FILE] ...}
shift
PYTHON=${PYTHON:-python}                                  # the env with requirements.txt installed
QUESTIONS=${QUESTIONS:-eval/data/astro_mcq_sample.jsonl}  # the public AstroMLab parquet + --key for real runs
DTYPE=${DTYPE:-bfloat16}                                  # paper-scale scoring dtype on A100/H100
BATCH_SIZE=${BATCH_SIZE:-16}

cd "${SLURM_SUBMIT_DIR:-$(pwd)}"
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
DEVICE=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; fi
if [ "$DEVICE" = cpu ]; then DTYPE=float32; fi              # bf16 matmuls on CPU are slow and move scores

echo "[eval.sh] $(date -u +%FT%TZ) run=$RUN_DIR device=$DEVICE dtype=$DTYPE host=$(hostname) job=${SLURM_JOB_ID:-none}"
srun --ntasks=1 "$PYTHON" -m astrollama eval sweep --run-dir "$RUN_DIR" --questions "$QUESTIONS" \
    --dtype "$DTYPE" --batch-size "$BATCH_SIZE" --device "$DEVICE" "$@"
