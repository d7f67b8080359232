#!/usr/bin/env bash
# Time the demo the way a new user meets it, stage by stage:
#   bash scripts/bench_demo.sh            a fresh clone of this checkout's HEAD in a new temp dir
#   bash scripts/bench_demo.sh DIR        ... cloned into DIR (must not exist)
#   bash scripts/bench_demo.sh --here     this checkout as it is (its .venv and work/demo data)
# Prints the wall seconds of setup (scripts/setup.sh: .venv from pip's wheel cache), then of every
# `astrollama demo` stage (the data stages, CPT, SFT, merge, evaluation with each model's part,
# report), and the total as `bash scripts/demo.sh` would take it. The model cache
# ($ASTROLLAMA_CACHE, default ~/.cache/astrollama) is used as it is; point it at an empty directory
# to include the one-time SmolLM2 conversion. Extra arguments after the options go to the demo.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
here=0
dir=""
if [ "${1:-}" = "--here" ]; then
  here=1
  shift
elif [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ "${1#*=}" = "$1" ]; then
  dir=$1
  shift
fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
if [ "$here" = 1 ]; then
  cd "$src"
else
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/astrollama-bench-demo.XXXXXX)/astrollama-recipes
  if [ -e "$dir" ]; then
    echo "bench_demo.sh: $dir exists; give a new directory" >&2
    exit 2
  fi
  git clone -q "$src" "$dir"
  cd "$dir"
  echo "[bench] fresh clone of $(git rev-parse --short HEAD) in $dir"
fi
t_clone=$(now)
bash scripts/setup.sh
t_setup=$(now)
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export ASTROLLAMA_CACHE=${ASTROLLAMA_CACHE:-$HOME/.cache/astrollama}
log=$(mktemp /tmp/astrollama-bench-demo-log.XXXXXX)
set +e
.venv/bin/astrollama demo --timings "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
t_end=$(now)
echo
echo "[bench] $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "[bench] setup (scripts/setup.sh)            $(secs "$t_clone" "$t_setup") s"
sed -n '/^\[demo timings\]/,$p' "$log" | sed 's/^/[bench] /'
echo "[bench] total, setup + demo (scripts/demo.sh) $(secs "$t_clone" "$t_end") s   (clone $(secs "$t0" "$t_clone") s not counted)"
grep -E '^held-out perplexity:' "$log" | sed 's/^/[bench] /' || true
rm -f "$log"
if [ "$rc" != 0 ]; then
  echo "[bench] the demo FAILED (exit $rc)" >&2
fi
exit "$rc"
