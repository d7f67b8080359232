"""A stand-in for the ``nougat`` command of nougat-ocr 0.1.17, for offline tests.

The real CLI needs its own ~6 GB environment (torch + CUDA wheels, transformers 4.38.2) and the
CC-BY-NC weights from the network, neither of which the test machines have. This script keeps
the CLI's observable contract, as documented in nougat-ocr's README and predict.py:

* arguments: ``PDF... -o OUT [-c CHECKPOINT] [-m TAG] [--batchsize N] [--recompute]
  [--full-precision] [--markdown|--no-markdown] [--no-skipping] [--pages P]``;
* a ``-c`` directory that does not exist means a download attempt: offline, exit 1;
* output ``OUT/<pdf stem>.mmd``; an existing one is kept unless ``--recompute``;
* a PDF pypdf cannot parse (``PdfStreamError``) is logged and skipped: no ``.mmd``, exit 0;
* an encrypted PDF crashes the whole run (pypdf raises when pages are read): traceback, exit 1;
* a page that yields nothing becomes ``[MISSING_PAGE_EMPTY:n]``; pages are joined, runs of blank
  lines collapsed.

The "model" is the PDF text layer (pypdfium2), so tests can check which text landed where.
The contract was checked against the real nougat-ocr 0.1.17 (envs/ocr-nougat.txt) with a random
checkpoint: same output naming, an encrypted PDF in the batch makes it exit 1 with no output for
the others, ``-c`` with fewer than five files triggers a download (test_ocr.py::test_real_nougat_cli
runs the backend against the real CLI when ASTROLLAMA_NOUGAT_BIN is set).
``FAKE_NOUGAT_SECONDS_PER_PAGE`` adds GPU-like time per page (for timeout tests).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    p = argparse.ArgumentParser()
    p.add_argument("--batchsize", "-b", type=int, default=1)
    p.add_argument("--checkpoint", "-c", type=Path, default=None)
    p.add_argument("--model", "-m", default="0.1.0-small")
    p.add_argument("--out", "-o", type=Path)
    p.add_argument("--recompute", action="store_true")
    p.add_argument("--full-precision", action="store_true")
    p.add_argument("--no-markdown", dest="markdown", action="store_false")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--no-skipping", dest="skipping", action="store_false")
    p.add_argument("--pages", "-p")
    p.add_argument("pdf", nargs="+", type=Path)
    args = p.parse_args()
    if args.checkpoint is not None and not args.checkpoint.exists():
        print(
            f"Traceback (most recent call last):\nrequests.exceptions.ConnectionError: cannot download "
            f"{args.model} checkpoint to {args.checkpoint}",
            file=sys.stderr,
        )
        return 1
    import pypdf
    import pypdfium2 as pdfium

    args.out.mkdir(parents=True, exist_ok=True)
    delay = float(os.environ.get("FAKE_NOUGAT_SECONDS_PER_PAGE", "0"))
    for pdf in args.pdf:
        if not pdf.exists():
            continue
        out_path = args.out / pdf.with_suffix(".mmd").name
        if out_path.exists() and not args.recompute:
            logging.info("Skipping %s, already computed. Run with --recompute to convert again.", pdf.name)
            continue
        try:
            n_pages = len(pypdf.PdfReader(pdf).pages)  # raises for encrypted files: the run dies
        except pypdf.errors.PdfStreamError:
            logging.info("Could not load file %s.", pdf)
            continue
        doc = pdfium.PdfDocument(str(pdf))
        predictions = []
        for i in range(n_pages):
            time.sleep(delay)
            tp = doc[i].get_textpage()
            lines = [ln.strip() for ln in tp.get_text_range().splitlines()]
            text = "\n".join(ln for ln in lines if ln and not re.fullmatch(r"\d+", ln))
            predictions.append(f"\n\n[MISSING_PAGE_EMPTY:{i + 1}]\n\n" if not text else text + "\n\n")
        out = re.sub(r"\n{3,}", "\n\n", "".join(predictions).strip()).strip()
        out_path.write_text(out, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
