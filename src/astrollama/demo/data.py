"""The offline data chain of the demo: bundled paper texts -> PDFs -> OCR -> AIC -> summaries ->
LMFlow corpora (``abstracts``, ``aic``, ``summary``), on 2 CPU cores in a few minutes.

    from astrollama.demo.data import prepare
    paths = prepare("work/demo")   # {"train_dir": .../aic/train, "heldout_dir": .../abstracts/validation, ...}

What is real and what is cut down (the logs say it too):

* PDFs are generated from ``data/demo/papers/*.json`` (:mod:`astrollama.data.pdfgen`);
* OCR uses the ``pdf-text`` backend (the PDF text layer, NOT Nougat: Nougat weights are not
  reachable offline); the ``.mmd`` it writes has the same heading structure;
* summaries use SmolLM2-135M-Instruct on CPU with a tiny length target (``summary_tokens``,
  default 40) and only the first ``summary_papers`` papers (default 2): generation is the slow
  step on CPU. The other papers stay ``pending`` for the summary stage in the manifest;
* the build runs every rule of the real one (cleaning, dedup, decontamination against
  ``eval/data/astro_mcq_sample.jsonl`` when present, split, shards, stats) with SmolLM2's
  tokenizer, the demo recipe's tokenizer.

Every step is the resumable stage the cluster uses: rerunning ``prepare`` on the same workdir
redoes nothing and returns the same paths.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astrollama.demo import REPO

PAPERS_DIR = REPO / "data" / "demo" / "papers"
MCQ_SAMPLE = REPO / "eval" / "data" / "astro_mcq_sample.jsonl"

logger = logging.getLogger(__name__)


def _paper_row(paper: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "title", "abstract", "authors", "categories", "published")
    return {**{k: paper[k] for k in keys if k in paper}, "source": "demo"}


def prepare(
    workdir: str | Path,
    *,
    log: Callable[[str], None] | None = None,
    papers_dir: str | Path | None = None,
    summary_papers: int = 2,
    summary_tokens: int = 40,
    mcq_path: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the demo data chain in ``workdir``; return the corpus paths (see module docstring).

    Layout: ``<workdir>/prep`` (manifest, pdf/, ocr/, aic/, summary/) and ``<workdir>/corpus``
    (``<variant>/train``, ``<variant>/validation``, stats). Returns ``train_dir`` (aic/train),
    ``heldout_dir`` (abstracts/validation: the same held-out papers as every variant),
    ``variants`` ({variant: {train, validation, stats, stats_md}}; the summary variant is
    train-only: a few CPU summaries cannot fill a held-out split), ``root``, ``corpus``.
    """
    from astrollama.data import pdfgen
    from astrollama.data.aic import run_aic
    from astrollama.data.build import BuildConfig, run_build
    from astrollama.data.manifest import Manifest
    from astrollama.data.ocr import PdfTextBackend, run_ocr
    from astrollama.data.summarize import SummaryConfig, TransformersBackend, run_summary
    from astrollama.models import smollm2_checkpoint

    say = log or logger.info
    if mcq_path:  # inputs are checked before any work starts (the chain takes minutes)
        from astrollama.data.decontam import load_benchmark_questions

        load_benchmark_questions(mcq_path)
    work = Path(workdir)
    root, corpus = work / "prep", work / "corpus"
    src = Path(papers_dir) if papers_dir else PAPERS_DIR
    t_all = time.monotonic()

    def step(name: str, t0: float) -> None:
        say(f"demo data: {name} done in {time.monotonic() - t0:.1f}s")

    t0 = time.monotonic()
    files = pdfgen.iter_paper_files(src)
    papers = [pdfgen.load_paper(f) for f in files]
    pdfgen.make_pdfs(files, root / "pdf")
    m = Manifest(root)
    m.upsert_papers([_paper_row(p) for p in papers])
    step(f"{len(papers)} paper texts -> PDFs ({root / 'pdf'}) + manifest rows", t0)

    t0 = time.monotonic()
    say("demo data: OCR with the pdf-text backend (the PDF text layer; real Nougat needs its weights)")
    run_ocr(root, PdfTextBackend(), workers=0, progress=progress)
    step(f"OCR: {m.summary().get('ocr', {})}", t0)

    t0 = time.monotonic()
    run_aic(root, progress=progress)
    missing = {pid: r.attrs.get("missing") for pid, r in m.status("aic").items() if r.attrs.get("missing")}
    step(f"AIC: {m.summary().get('aic', {})}; papers with a missing section: {missing or 'none'}", t0)

    t0 = time.monotonic()
    model = smollm2_checkpoint()
    cfg = SummaryConfig(
        min_tokens=max(1, summary_tokens // 2),
        target_total=summary_tokens,
        max_tokens=summary_tokens * 3,
        batch_papers=1,
    )
    if summary_papers > 0:
        say(
            f"demo data: summaries with SmolLM2-135M-Instruct on CPU, {summary_papers} of {len(papers)} papers, "
            f"target {summary_tokens} tokens (cluster runs use 1,000-4,000 tokens and vLLM)"
        )
        backend = TransformersBackend(model, repetition_penalty=1.1, model_id="SmolLM2-135M-Instruct")
        run_summary(root, backend, config=cfg, limit=summary_papers, progress=progress)
    step(f"summaries: {m.summary().get('summary', {})}", t0)

    t0 = time.monotonic()
    mcq = Path(mcq_path) if mcq_path else (MCQ_SAMPLE if MCQ_SAMPLE.is_file() else None)
    variants = ["abstracts", "aic"] + (["summary"] if summary_papers > 0 else [])
    # the toy summariser's lengths mean nothing: keep its flagged summaries rather than drop them
    bcfg = BuildConfig(summary_length_policy="keep", max_shard_docs=16)
    stats = run_build(
        root,
        variants[:2],
        corpus,
        tokenizer_dir=model,
        mcq_path=mcq,
        config=bcfg,
        workers=workers,
        progress=progress,
    )
    if (
        summary_papers > 0
    ):  # a few CPU summaries cannot fill a held-out split (never published empty): train-only
        stats |= run_build(
            root,
            ["summary"],
            corpus,
            tokenizer_dir=model,
            mcq_path=mcq,
            config=dataclasses.replace(bcfg, validation_fraction=0.0),
            workers=workers,
            progress=progress,
        )
    for v, s in stats.items():
        say(
            f"demo data: {v}: {s['train']['papers']} train / {s['validation']['papers']} validation papers, "
            f"{s['train']['tokens']} + {s['validation']['tokens']} tokens, dropped {s['drops'] or 'none'}"
        )
    step(f"build -> {corpus}", t0)
    say(f"demo data: chain finished in {time.monotonic() - t_all:.1f}s")
    out = {
        "root": root,
        "corpus": corpus,
        "train_dir": corpus / "aic" / "train",
        "heldout_dir": corpus / "abstracts" / "validation",
        "variants": {
            v: {
                "train": corpus / v / "train",
                "stats": corpus / v / "stats.json",
                "stats_md": corpus / v / "stats.md",
                **({"validation": corpus / v / "validation"} if v != "summary" else {}),
            }
            for v in variants
        },
    }
    return out


def register(sub: Any) -> None:
    """``astrollama data demo-prep``."""
    from astrollama.cli import number

    p = sub.add_parser(
        "demo-prep",
        help="the offline demo data chain: paper texts -> PDFs -> OCR -> AIC -> summaries -> LMFlow corpora",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", default="work/demo")
    p.add_argument(
        "--summary-papers",
        type=number(int, min=0),
        default=2,
        help="papers summarised on CPU (0: skip summaries)",
    )
    p.add_argument(
        "--summary-tokens", type=number(int, min=1), default=40, help="summary length target (tokens)"
    )
    p.add_argument(
        "--mcq",
        default=None,
        help="benchmark questions for decontamination (default eval/data/astro_mcq_sample.jsonl)",
    )
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    from astrollama.demo import OWNER, _legacy_workdir
    from astrollama.io import claim_dir

    # the demo's work directory (astrollama.io ownership): someone else's is refused before any work
    claim_dir(a.workdir, OWNER, legacy=(_legacy_workdir,), what="--workdir", create=True)
    res = prepare(
        a.workdir,
        summary_papers=a.summary_papers,
        summary_tokens=a.summary_tokens,
        mcq_path=a.mcq,
        progress=True,
    )
    print(json.dumps({k: str(v) for k, v in res.items() if k != "variants"}, indent=1))
    return 0
