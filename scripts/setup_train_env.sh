#!/usr/bin/env bash
# The LMFlow training environment of envs/train-cluster.txt, built from a local LMFlow checkout and
# cached, so that the tests can run the REAL examples/finetune.py on a CPU machine.
#
#   bash scripts/setup_train_env.sh [LMFLOW_CHECKOUT]     (default: $ASTROLLAMA_LMFLOW_SRC)
#
# Prints the environment's python on its last line (scripts/test.sh exports it as
# ASTROLLAMA_LMFLOW_PYTHON). The checkout must be LMFlow at the commit envs/train-cluster.txt pins;
# it is only read (a writable copy is installed). What gets built, once per requirement lines of
# envs/train-cluster.txt + the checkout's packaging files + the Python version:
#   $ASTROLLAMA_CACHE/train-env-<hash>/   a venv (default cache: $HOME/.cache/astrollama) with
#     every pin of envs/train-cluster.txt except its git line (DeepSpeed built from its sdist with
#     DS_BUILD_OPS=0: no compiled ops), torch resolved exactly as for requirements.txt (the pip
#     configuration of the machine decides CPU or CUDA wheels), and LMFlow installed editable from
#     the copy in <env>/src/lmflow (like the git line, so examples/finetune.py is on disk);
# then, on every call (seconds), this checkout installed into it editable without dependencies.
# Concurrent calls wait for each other (flock). A half-built environment is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=${1:-${ASTROLLAMA_LMFLOW_SRC:-}}
if [ -z "$SRC" ] || [ ! -f "$SRC/examples/finetune.py" ] || [ ! -d "$SRC/src/lmflow" ]; then
  echo "setup_train_env.sh: '${SRC}' is not an LMFlow checkout (no examples/finetune.py, src/lmflow)" >&2
  exit 2
fi
SRC=$(cd "$SRC" && pwd)
PY=${PYTHON:-python3}
CACHE=${ASTROLLAMA_CACHE:-$HOME/.cache/astrollama}
key=$({ grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' envs/train-cluster.txt   # requirements, not comments
        for f in SNAPSHOT.md pyproject.toml setup.py requirements.txt src/lmflow/version.py; do
          cat "$SRC/$f" 2>/dev/null || true
        done
        git -C "$SRC" rev-parse HEAD 2>/dev/null || true
        "$PY" --version; } | sha256sum | cut -c1-16)
ENV=$CACHE/train-env-$key
mkdir -p "$CACHE"
exec 9>"$ENV.lock"
flock 9

pip=("$ENV/bin/python" -m pip install --disable-pip-version-check -q)
if [ ! -f "$ENV/.astrollama-complete" ]; then
  t0=$SECONDS
  echo "[setup_train_env] building $ENV from envs/train-cluster.txt + $SRC (first run: several minutes)" >&2
  rm -rf "$ENV"
  "$PY" -m venv "$ENV"
  mkdir -p "$ENV/src"
  cp -R "$SRC" "$ENV/src/lmflow"
  chmod -R u+w "$ENV/src/lmflow"
  grep -v 'git+' envs/train-cluster.txt > "$ENV/train-cluster-nogit.txt"
  DS_BUILD_OPS=0 "${pip[@]}" -r "$ENV/train-cluster-nogit.txt" -e "$ENV/src/lmflow" >&2
  "$ENV/bin/python" -m pip freeze --disable-pip-version-check > "$ENV/pip-freeze.txt"
  echo "built in $((SECONDS - t0)) s on $(date -u +%FT%TZ)" > "$ENV/.astrollama-complete"
  echo "[setup_train_env] built in $((SECONDS - t0)) s" >&2
else
  echo "[setup_train_env] reusing $ENV ($(cat "$ENV/.astrollama-complete"))" >&2
fi

here=$(pwd)
installed=$("$ENV/bin/python" -c 'import astrollama, os; print(os.path.dirname(os.path.dirname(os.path.dirname(astrollama.__file__))))' 2>/dev/null || true)
if [ "$installed" != "$here" ]; then
  "${pip[@]}" --no-deps --no-build-isolation -e "$here" >&2
fi
echo "$ENV/bin/python"
