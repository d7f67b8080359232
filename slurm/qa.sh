#!/usr/bin/env bash
# Astro question/answer conversations (the `qa` stage) with vLLM, as a job array: one vLLM engine
# per array task, tensor parallel over the task's GPUs.
#
#   sbatch --array=0-31 --gpus-per-node=1 slurm/qa.sh DATA_ROOT --model /models/Qwen2-7B-Instruct --mcq Q.parquet
#   QA_TP=4 sbatch --array=0-7 --gpus-per-node=4 slurm/qa.sh DATA_ROOT --model /models/Llama-3.1-70B-Instruct
#   bash slurm/qa.sh DATA_ROOT --backend transformers --model smollm2-135m \
#        --max-new-tokens 160 --limit 2                                           # this machine, CPU
#   sbatch --array=0-31 --gpus-per-node=1 slurm/qa.sh --config data_prep/astro-ph.yaml   # options from the config
#
# Array task t (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT) takes shard t:
# papers are assigned to shards by a hash of their id (astrollama.data.shards.shard_of), so keep the
# array size the same between a run and its rerun. Thin shell: prompts, parsing, filters, manifest
# records and resume live in `astrollama data qa` (docs/data-sft.md). Rerunning the same command
# after a kill continues where it stopped; finished shards exit at once. Gather the conversations
# afterwards with `astrollama data sft-convert --input qa=DATA_ROOT --out DIR`.
#
# Knobs: QA_TP (tensor-parallel size [the task's GPU count]), QA_MAX_MODEL_LEN ([8192]),
# ASTROLLAMA_REPO (repository root [submit dir]), ASTROLLAMA_VENV (the vLLM environment of
# envs/vllm.txt [$REPO/.venv-vllm, else $REPO/.venv]), ASTROLLAMA_ENV_SETUP (shell code run first,
# e.g. "module load cuda/12.8"). Extra arguments go to `astrollama data qa`.
#
#SBATCH --job-name=astrollama-qa
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%A_%a.out
set -euo pipefail

USAGE="sbatch --array=0-N slurm/qa.sh [DATA_ROOT | --config FILE] --model MODEL [astrollama data qa args]"
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
STAGE_VENV=$REPO/.venv-vllm   # the envs/vllm.txt environment
# shellcheck source=slurm/_data_stage.sh
source "$REPO/slurm/_data_stage.sh"  # usage, ROOT (the data root), slurm/_env.sh, TASK of TASKS

STAGE=qa TP=${QA_TP:-} MAX_MODEL_LEN=${QA_MAX_MODEL_LEN:-8192}
# shellcheck source=slurm/_vllm_array.sh
source "$REPO/slurm/_vllm_array.sh"
