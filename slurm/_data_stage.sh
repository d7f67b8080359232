# shellcheck shell=bash
# The shared opening of the data-stage scripts (download.sh, ocr.sh, aic.sh, summarize.sh, qa.sh,
# build.sh); not submitted by itself. A script sets REPO (the repository root: under sbatch the
# script runs as a copy in Slurm's spool directory, so REPO comes from $ASTROLLAMA_REPO, else
# $SLURM_SUBMIT_DIR, else the script's own folder), USAGE (its usage line) and, where the stage has
# its own environment, STAGE_VENV; then it sources this file WITHOUT arguments, so that this file
# reads (and shifts) the script's own arguments:
#   * no argument: "usage: $USAGE" on stderr, exit 2;
#   * a first argument that is not an option is the data root: ROOT=(--root DATA_ROOT), shifted
#     off; otherwise ROOT=() (a --config names the root: `root:` in data_prep/<name>.yaml);
#   * slurm/_env.sh: the one environment rule, PY, the caller's directory for relative paths;
#   * TASK and TASKS: this array task's index (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) and the
#     number of tasks (SLURM_ARRAY_TASK_COUNT); 0 and 1 outside an array.
# shellcheck disable=SC2034  # ROOT, TASK and TASKS are the sourcing script's
if [ $# -lt 1 ]; then
  echo "usage: $USAGE" >&2
  exit 2
fi
ROOT=()
if [ "${1#-}" = "$1" ]; then ROOT=(--root "$1"); shift; fi

# shellcheck source=slurm/_env.sh
source "$REPO/slurm/_env.sh"

TASK=$(( ${SLURM_ARRAY_TASK_ID:-0} - ${SLURM_ARRAY_TASK_MIN:-0} ))
TASKS=${SLURM_ARRAY_TASK_COUNT:-1}
