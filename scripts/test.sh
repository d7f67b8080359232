#!/usr/bin/env bash
# The README's second command: set up (core + test tools + a single-node Slurm) and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k recipe`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev --slurm
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export ASTROLLAMA_CACHE=${ASTROLLAMA_CACHE:-$HOME/.cache/astrollama}
# The real LMFlow: given a checkout ($ASTROLLAMA_LMFLOW_SRC), build (once, cached) the training
# environment of envs/train-cluster.txt with it; the LMFlow tests run in it. Where the build fails
# they fail under CI=true (and skip otherwise). A set $ASTROLLAMA_LMFLOW_PYTHON is used as it is.
if [ -z "${ASTROLLAMA_LMFLOW_PYTHON:-}" ] && [ -n "${ASTROLLAMA_LMFLOW_SRC:-}" ]; then
  if py=$(bash scripts/setup_train_env.sh "$ASTROLLAMA_LMFLOW_SRC" 2> >(grep -v '^WARNING: Location' >&2) | tail -n 1); then
    export ASTROLLAMA_LMFLOW_PYTHON=$py
  else
    echo "[test] the LMFlow training environment did not build (above): the LMFlow tests cannot run" >&2
  fi
fi
.venv/bin/ruff check src tests data_prep eval
.venv/bin/ruff format --check src tests data_prep eval   # the one formatter (pyproject [tool.ruff])
.venv/bin/shellcheck slurm/*.sh scripts/*.sh tests/*.sh data_prep/*.sh eval/*.sh
# In parallel (pytest-xdist): $ASTROLLAMA_TEST_WORKERS worker processes (default 3 on the 2-core CI
# machine: the Slurm tests, all in one worker, mostly wait for their jobs); --dist loadgroup keeps
# each xdist_group in one worker (tests/conftest.py: the Slurm tests, the demo data chain's users).
# `-n 0` after it runs serially, e.g. `bash scripts/test.sh -n 0 tests/test_io.py`.
# --durations: every run (CI included) ends with its 30 slowest steps, so where the time goes is on record
exec .venv/bin/python -m pytest -n "${ASTROLLAMA_TEST_WORKERS:-3}" --dist loadgroup --durations=30 "$@"
