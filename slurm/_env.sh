# Sourced by every slurm/*.sh once it has set REPO (the repository root): enter the repository,
# run the cluster's own setup, activate the stage's virtual environment. Knobs:
#   ASTROLLAMA_ENV_SETUP  shell code run first, e.g. "module load cuda/12.4" [none]
#   ASTROLLAMA_VENV       virtual environment to activate [the script's STAGE_VENV if it exists,
#                         else $REPO/.venv if it exists, else none: the calling environment]
cd "$REPO" || exit 1
if [ -n "${ASTROLLAMA_ENV_SETUP:-}" ]; then
  eval "$ASTROLLAMA_ENV_SETUP" || { echo "$(basename "$0"): ASTROLLAMA_ENV_SETUP failed" >&2; exit 1; }
fi
VENV=${ASTROLLAMA_VENV:-${STAGE_VENV:-$REPO/.venv}}
if [ -z "${ASTROLLAMA_VENV:-}" ] && [ ! -d "$VENV" ]; then VENV=$REPO/.venv; fi
# shellcheck disable=SC1091
if [ -f "$VENV/bin/activate" ]; then source "$VENV/bin/activate"; fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
