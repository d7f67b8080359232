#!/usr/bin/env bash
# Set up this checkout on a fresh machine: a virtual environment in .venv with the CPU-safe core
# (requirements.txt) and the package itself. Idempotent: re-running installs nothing new.
#   bash scripts/setup.sh          core + mergekit (the demo)
#   bash scripts/setup.sh --dev    core + test tools (pytest, ruff, lm-eval as a peer)
#   bash scripts/setup.sh --slurm  also apt-install a single-node Slurm (slurm-wlm + munge; root)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0; slurm=0
for a in "$@"; do
  case "$a" in
    --dev) dev=1 ;;
    --slurm) slurm=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

reqs=(requirements.txt requirements-merge.txt)   # the demo and the tests merge (mergekit)
[ "$dev" = 1 ] && reqs+=(requirements-dev.txt)
want=$(cat "${reqs[@]}" requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
stamp=.venv/.astrollama-$(IFS=_; echo "${reqs[*]}" | tr '/.' '__')
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing ${reqs[*]} into .venv (first run: a few minutes)"
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  # Two pip calls, not three: the --no-deps packages and the package itself share one. The bytecode
  # pip would compile file by file is compiled after it, on every core (compileall -j 0): the same
  # .pyc files, in half the time on two cores. Compiled at install on purpose: without them every
  # process of the demo compiles what it imports again where PYTHONDONTWRITEBYTECODE is set (README,
  # "Timing the demo"). Like pip, it skips quietly the few files written for a newer Python.
  pip=(.venv/bin/python -m pip install --disable-pip-version-check -q --no-compile)
  "${pip[@]}" "${args[@]}"
  "${pip[@]}" --no-deps --no-build-isolation -r requirements-nodeps.txt -e .
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  .venv/bin/python -m compileall -q -j 0 "$site" >/dev/null 2>&1 || true
  echo "$want" > "$stamp"
else
  echo "[setup] .venv is up to date"
fi

if [ "$slurm" = 1 ]; then
  if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      echo "[setup] installing slurm-wlm and munge (apt)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -qq slurm-wlm munge >/dev/null
    else
      echo "[setup] not root: cannot apt-install slurm-wlm/munge; Slurm tests will be skipped" >&2
    fi
  fi
fi
