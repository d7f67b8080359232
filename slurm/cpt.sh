#!/usr/bin/env bash
# Training from a recipe, on N Slurm nodes or on this machine: continual pre-training (text_only
# corpus) and supervised fine-tuning (a recipe with data.conversation_template, conversation data)
# alike; nothing here depends on which (docs/train-recipes.md, "Supervised fine-tuning").
#
#   sbatch [--nodes=N --gpus-per-node=8 --time=24:00:00 ...] slurm/cpt.sh RECIPE [key=value ...]
#   bash slurm/cpt.sh RECIPE [key=value ...]        # same thing on this machine, without Slurm
#
# GPUs: the job asks for 8 GPUs per node (#SBATCH --gpus-per-node=8 below); a flag on the sbatch
# command line wins: `sbatch --gpus-per-node=4 ...` for a recipe with launch.gpus_per_node: 4, and
# `sbatch --gpus-per-node=0 ...` for a CPU recipe (trainer.use_cpu: true, e.g. the demo) on a
# cluster without GPUs. `astrollama train launch RECIPE --dry-run` prints the request that matches
# the recipe (--nodes, --gpus-per-node, --time, --mem: astrollama.train.resources.slurm_request).
# A GPU recipe on a node that sees fewer GPUs than launch.gpus_per_node is refused in one line
# (exit 2) before anything starts, instead of training on CPU.
#
# Submit from the repository root. This file is a thin shell: ALL logic (recipe parsing, batch
# arithmetic, resume point, provenance, the torchrun command) lives in `astrollama train run`,
# which every node runs once (one srun task per node). Each node reads its own SLURM_* variables
# in Python, so nothing here has to be escaped to expand on the right host.
#
# Preemption and time limits: Slurm sends USR1 to this shell 300 s before the time limit
# (--signal=B:USR1@300; raise it for big models: `sbatch --signal=B:USR1@900 ...`). The trap below
# forwards it to the training step; the workers finish the current optimizer step, save
# checkpoint-<step> and exit 75 ("requeue me"); this script then runs `scontrol requeue`, and the
# next start resumes from the newest COMPLETE checkpoint (half-written ones are ignored). A job that
# is cancelled, requeued by hand or preempted (SIGTERM) saves the same way if it can within KillWait;
# resubmitting the same command resumes too. Docs: docs/train-runtime.md.
#
#SBATCH --job-name=astrollama-cpt
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: sbatch slurm/cpt.sh RECIPE [key=value ...]  |  bash slurm/cpt.sh RECIPE [key=value ...]" >&2
  exit 2
fi

# --- knobs (environment variables; defaults in brackets) --------------------------------------
# ASTROLLAMA_REPO       repository root [the sbatch submit directory, else this file's parent]
# ASTROLLAMA_ENV_SETUP  shell code run first, e.g. "module load cuda/12.4" [none]
# ASTROLLAMA_VENV       the environment to train in. Without it: the one ASTROLLAMA_ENV_SETUP
#                       activated, else $REPO/.venv-train (envs/train-cluster.txt: LMFlow),
#                       else $REPO/.venv, else the calling one (slurm/_env.sh)
# ASTROLLAMA_REQUEUE    1: requeue the job after a pre-timeout checkpoint (exit 75) [1]
REPO=${ASTROLLAMA_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
[ -f "$REPO/pyproject.toml" ] || REPO=$(cd "$(dirname "$0")/.." && pwd)
STAGE_VENV=$REPO/.venv-train   # the envs/train-cluster.txt environment (LMFlow + DeepSpeed)
# shellcheck source=slurm/_env.sh
source "$REPO/slurm/_env.sh"
REQUEUE=${ASTROLLAMA_REQUEUE:-1}

# --- one task per node ---------------------------------------------------------------------------
if [ -n "${SLURM_JOB_ID:-}" ] && [ -z "${SLURM_STEP_ID:-}" ]; then
  echo "[cpt.sh] job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NUM_NODES:-1} node(s): $*"
  # the task gets every CPU of its node (srun does not inherit the batch step's CPU count; with
  # task/cgroup binding torchrun and all its workers would otherwise share one core)
  launcher=(srun --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 --kill-on-bad-exit=1
            --cpus-per-task="${SLURM_CPUS_ON_NODE:-1}")
else
  echo "[cpt.sh] local run on $(hostname): $*"
  launcher=()
fi

got_usr1=0
# shellcheck disable=SC2329  # invoked by the traps below
forward() {  # $1: signal name. Forward to the training step; srun relays it to every task.
  if [ "$1" = USR1 ]; then got_usr1=1; fi
  echo "[cpt.sh] got SIG$1: forwarding to the training step (checkpoint, then stop)"
  kill -s "$1" "$child" 2>/dev/null || true
}
child=
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap ':' INT   # Ctrl-C reaches the runner directly (same process group); it handles it
"${launcher[@]}" "$PY" -m astrollama train run "$@" &
child=$!

while :; do
  rc=0; wait "$child" || rc=$?
  # a trapped signal interrupts `wait` (status > 128) while the step still runs: wait again
  if [ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
  break
done

if [ "$rc" = 75 ]; then
  if [ -n "${SLURM_JOB_ID:-}" ] && [ "$got_usr1" = 1 ] && [ "$REQUEUE" = 1 ]; then
    echo "[cpt.sh] checkpoint saved before the time limit: requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID" || echo "[cpt.sh] scontrol requeue failed: resubmit to resume" >&2
  else
    echo "[cpt.sh] stopped with a checkpoint (exit 75): run the same command again to resume"
  fi
fi
exit "$rc"
