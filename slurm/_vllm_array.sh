#!/usr/bin/env bash
# The shared body of the vLLM job arrays, slurm/summarize.sh and slurm/qa.sh (not submitted by
# itself). They source slurm/_data_stage.sh (ROOT, PY, TASK of TASKS), set STAGE (the `astrollama
# data` command), TP (tensor-parallel size, empty: the task's GPU count) and MAX_MODEL_LEN, then
# source this file with the remaining arguments.
# shellcheck disable=SC2154  # STAGE, ROOT, TP, MAX_MODEL_LEN, PY, TASK and TASKS come from the caller

GPUS=${SLURM_GPUS_ON_NODE:-0}
GPUS=${GPUS%%(*}  # "4(IDX:0-3)" on some Slurm versions
TP=${TP:-$(( GPUS > 0 ? GPUS : 1 ))}
BACKEND=(--backend vllm --tensor-parallel-size "$TP" --max-model-len "$MAX_MODEL_LEN")
for a in "$@"; do [ "$a" = "--backend" ] && BACKEND=(); done   # an explicit --backend wins

echo "[$STAGE.sh] $(hostname) job ${SLURM_JOB_ID:-local} array task $TASK/$TASKS, $GPUS GPU(s), TP=$TP: ${ROOT[*]} $*"
exec "$PY" -m astrollama data "$STAGE" "${ROOT[@]}" --shard-index "$TASK" --num-shards "$TASKS" \
  "${BACKEND[@]}" "$@"
