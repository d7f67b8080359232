#!/usr/bin/env bash
# GPU check of the transformers Nougat path without hub access: a RANDOM checkpoint with
# nougat-small's architecture (247M parameters, 896x672 input), the bundled demo papers as PDFs.
#
#   bash scripts/ocr_gpu_check.sh                 # on a CUDA machine, from the repository root
#   BATCH=16 TOKENS=1024 bash scripts/ocr_gpu_check.sh
#
# 1. pytest tests/data/test_ocr_gpu.py (CUDA vs CPU on the tiny model; repetition stop on CUDA);
# 2. `astrollama data ocr` on the GPU, bf16, --no-skipping, every page decoded to TOKENS tokens
#    (random weights never emit EOS): prints pages/s and tokens/s. Real pages average fewer tokens
#    than TOKENS; scale with tokens/s (docs/data-ocr.md, "Throughput").
# Missing packages on a bare CUDA image (pypdfium2, fpdf2, pypdf, nltk, levenshtein): install them
# first, e.g. from wheels carried in .whl/ (PIP_TARGET below).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
W=${OCR_CHECK_DIR:-/tmp/ocr-gpu-check}
rm -rf "$W"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/data/test_ocr_gpu.py
python3 -m astrollama data make-pdfs --papers data/demo/papers --root "$W/root"
python3 -m astrollama data nougat-random --preset small --out "$W/nougat-small"
python3 -m astrollama data ocr --root "$W/root" --backend transformers --checkpoint "$W/nougat-small" \
  --device cuda --dtype bfloat16 --batch-size "${BATCH:-16}" --max-new-tokens "${TOKENS:-1024}" \
  --no-skipping --workers 4 --no-progress
nvidia-smi --query-gpu=name,memory.used --format=csv
