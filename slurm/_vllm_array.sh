#!/usr/bin/env bash
# The shared body of the vLLM job arrays, slurm/summarize.sh and slurm/qa.sh (not submitted by
# itself). They set STAGE (the `astrollama data` command), ROOT (an array: `--root DATA`, or empty
# when a --config names the root), TP (tensor-parallel size, empty: the task's GPU count) and
# MAX_MODEL_LEN, source slurm/_env.sh, then this file with the remaining arguments.
# shellcheck disable=SC2154  # STAGE, ROOT, TP, MAX_MODEL_LEN and PY come from the caller

TASK=$(( ${SLURM_ARRAY_TASK_ID:-0} - ${SLURM_ARRAY_TASK_MIN:-0} ))
TASKS=${SLURM_ARRAY_TASK_COUNT:-1}
GPUS=${SLURM_GPUS_ON_NODE:-0}
GPUS=${GPUS%%(*}  # "4(IDX:0-3)" on some Slurm versions
TP=${TP:-$(( GPUS > 0 ? GPUS : 1 ))}
BACKEND=(--backend vllm --tensor-parallel-size "$TP" --max-model-len "$MAX_MODEL_LEN")
for a in "$@"; do [ "$a" = "--backend" ] && BACKEND=(); done   # an explicit --backend wins

echo "[$STAGE.sh] $(hostname) job ${SLURM_JOB_ID:-local} array task $TASK/$TASKS, $GPUS GPU(s), TP=$TP: ${ROOT[*]} $*"
exec "$PY" -m astrollama data "$STAGE" "${ROOT[@]}" --shard-index "$TASK" --num-shards "$TASKS" \
  "${BACKEND[@]}" "$@"
