# shellcheck shell=bash
# Sourced by every slurm/*.sh once it has set REPO (the repository root) and, where the stage has
# its own environment, STAGE_VENV (cpt.sh: $REPO/.venv-train, summarize.sh: $REPO/.venv-vllm).
# Enters the repository, runs the cluster's own setup, then activates ONE environment, the first
# that applies:
#   1. $ASTROLLAMA_VENV (it must be a virtual environment);
#   2. the environment $ASTROLLAMA_ENV_SETUP activated (shell code run first, e.g.
#      "module load cuda/12.4; source ~/envs/lmflow/bin/activate" or "conda activate lmflow");
#   3. $STAGE_VENV, if it exists;
#   4. $REPO/.venv, if it exists;
#   5. none: the calling environment.
# Sets PY, the Python every script runs ("$PY" -m astrollama ...).
# Relative paths on the command line are the caller's (under sbatch: the submit directory):
# astrollama resolves them against ASTROLLAMA_CALLER_CWD (astrollama.paths); paths inside configs
# and recipes stay repository-relative.
export ASTROLLAMA_CALLER_CWD=$PWD
cd "$REPO" || exit 1
_before="${VIRTUAL_ENV:-}|${CONDA_PREFIX:-}|$(command -v python3 || true)"
if [ -n "${ASTROLLAMA_ENV_SETUP:-}" ]; then
  eval "$ASTROLLAMA_ENV_SETUP" || { echo "$(basename "$0"): ASTROLLAMA_ENV_SETUP failed" >&2; exit 1; }
fi
if [ -n "${ASTROLLAMA_VENV:-}" ]; then
  if [ ! -f "$ASTROLLAMA_VENV/bin/activate" ]; then
    echo "$(basename "$0"): ASTROLLAMA_VENV=$ASTROLLAMA_VENV is not a virtual environment (no bin/activate)" >&2
    exit 1
  fi
  VENV=$ASTROLLAMA_VENV
elif [ "${VIRTUAL_ENV:-}|${CONDA_PREFIX:-}|$(command -v python3 || true)" != "$_before" ]; then
  VENV=  # ASTROLLAMA_ENV_SETUP activated one: keep it
elif [ -n "${STAGE_VENV:-}" ] && [ -f "$STAGE_VENV/bin/activate" ]; then
  VENV=$STAGE_VENV
elif [ -f "$REPO/.venv/bin/activate" ]; then
  VENV=$REPO/.venv
else
  VENV=
fi
# shellcheck disable=SC1091
if [ -n "$VENV" ]; then source "$VENV/bin/activate"; fi
PY=$(command -v python3 || command -v python) || { echo "$(basename "$0"): no python3 on PATH" >&2; exit 1; }
echo "[$(basename "$0")] python: $PY"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
