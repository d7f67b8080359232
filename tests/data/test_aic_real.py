"""Opt-in: the data chain on real papers, against the LaTeX route's quality targets (below).

Set ``ASTROLLAMA_REAL_PAPERS`` to a directory of papers laid out as ``<name>/src/`` (the e-print's
tex tree) and optionally ``<name>/paper.pdf``; the papers stay outside the repository (their text
is not ours). The test registers them in a fresh manifest, runs ``data aic --source latex``, the
pdf-text OCR of the PDFs, ``data quality`` and the ``aic`` build, and asserts for every paper:
Abstract and Introduction found, at most 20 raw LaTeX macros per 100k characters outside math,
no control characters; and at most 5 dangling citation leftovers in the whole set.
``ASTROLLAMA_REAL_PAPERS_REPORT=FILE`` writes the per-paper table (docs/data-corpus.md has ours).

    ASTROLLAMA_REAL_PAPERS=/path/to/papers python -m pytest tests/data/test_aic_real.py -s
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from astrollama.cli import main
from astrollama.data.build import build_variant
from astrollama.data.build_config import BuildConfig
from astrollama.data.build_inputs import manifest_docs
from astrollama.data.manifest import Manifest
from astrollama.data.quality import format_table, run_quality

REAL = os.environ.get("ASTROLLAMA_REAL_PAPERS")
pytestmark = pytest.mark.skipif(not REAL, reason="set ASTROLLAMA_REAL_PAPERS to a directory of real papers")


def _paper_id(name: str) -> str:
    return "real/" + re.sub(r"[^0-9A-Za-z.-]+", "-", name).strip("-.")


def test_latex_chain_meets_the_targets_on_real_papers(tmp_path: Path, tiny_model: Path) -> None:
    papers = sorted(p for p in Path(REAL).iterdir() if (p / "src").is_dir())  # type: ignore[arg-type]
    assert papers, f"{REAL}: no <name>/src/ directories"
    root = tmp_path / "data"
    m = Manifest(root)
    m.upsert_papers([{"id": _paper_id(p.name), "title": p.name, "abstract": ""} for p in papers])
    for p in papers:
        pid = _paper_id(p.name)
        src = root / "src" / pid
        shutil.copytree(p / "src", src, symlinks=True)
        m.record("download_src", pid, "ok", outputs={"src": src})
        if (p / "paper.pdf").is_file():
            pdf = root / "pdf" / f"{pid}.pdf"
            pdf.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p / "paper.pdf", pdf)
            m.record("download_pdf", pid, "ok", outputs={"pdf": pdf})
    assert main(["data", "aic", "--root", str(root), "--source", "latex"]) == 0
    if any((p / "paper.pdf").is_file() for p in papers):  # the pdf-text route, for the OCR/LaTeX ratio
        main(["data", "ocr", "--root", str(root), "--backend", "pdf-text"])

    report = run_quality(root, progress=False)
    table = format_table(report)
    print("\n" + table)
    if os.environ.get("ASTROLLAMA_REAL_PAPERS_REPORT"):
        Path(os.environ["ASTROLLAMA_REAL_PAPERS_REPORT"]).write_text(table + "\n")

    aic = Manifest(root).status("aic")
    failed = {pid: r.error for pid, r in aic.items() if r.status != "ok"}
    assert not failed, failed
    latex = [r for r in report["papers"] if r["route"] == "latex"]
    assert len(latex) == len(papers) and not [r for r in latex if "error" in r]
    for r in latex:
        assert "abstract" not in r["missing"] and "introduction" not in r["missing"], r
        assert r["macros_per_100k"] <= 20, r
        assert r["control"] == 0, r
    total = report["total"]["latex"]
    assert total["dangling"] <= 5 and total["macros_per_100k"] <= 20, total

    stats = build_variant(
        "aic",
        manifest_docs(Manifest(root), "aic"),
        tmp_path / "corpus",
        tokenizer_dir=tiny_model,
        config=BuildConfig(validation_fraction=0.0),
        progress=False,
    )
    assert stats["quality"]["control"] == 0 and stats["quality"]["macros_per_100k"] <= 20, stats["quality"]
