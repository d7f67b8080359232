"""The OCR stage runner and its CLI (``astrollama data ocr``, ``nougat-random``, ``make-pdfs``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astrollama import killpoint
from astrollama.data.manifest import Manifest, namespaced, paper_path
from astrollama.data.ocr.backends import (
    BACKENDS,
    Backend,
    NougatCliBackend,
    OcrJob,
    PdfTextBackend,
    TransformersBackend,
)
from astrollama.data.ocr.pool import PdfWorkers
from astrollama.errors import InputError, is_environment_error

log = logging.getLogger(__name__)


STAGE = "ocr"


@dataclasses.dataclass
class OcrStats:
    papers: int = 0
    ok: int = 0
    failed: int = 0
    pages: int = 0
    tokens: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    page_status: dict[str, int] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        rate = self.pages / self.seconds if self.seconds else 0.0
        tok = (
            f", {self.tokens} tokens ({self.tokens / self.seconds:.1f} tokens/s)"
            if self.tokens and self.seconds
            else ""
        )
        return (
            f"ocr: {self.ok} ok, {self.failed} failed of {self.papers} papers; {self.pages} pages in "
            f"{self.seconds:.1f}s ({rate:.2f} pages/s{tok}); failures {self.reasons or '{}'}; "
            f"pages {self.page_status or '{}'}"
        )


def find_pdf(manifest: Manifest, paper_id: str, pdf_status: dict[str, Any], pdf_dir: Path | None) -> Path:
    """The PDF of a paper: the ``download_pdf`` output, else ``pdf_dir`` (flat or yymm layout)."""
    rec = pdf_status.get(paper_id)
    if rec is not None and rec.status == "ok" and "pdf" in rec.outputs:
        return manifest.resolve(rec.outputs["pdf"])
    base = pdf_dir or manifest.root / "pdf"
    flat = base / f"{namespaced(paper_id)}.pdf"
    return flat if flat.exists() else paper_path(base, paper_id, ".pdf")


def make_backend(name: str, args: argparse.Namespace) -> Backend:
    if name == "transformers":
        from astrollama.data.ocr.nougat import RepetitionConfig

        if not args.checkpoint:
            raise InputError("--checkpoint: required for the transformers backend (a Nougat checkpoint DIR)")
        if args.batch_size < 1:
            raise InputError(
                f"--batch-size: must be >= 1 for the transformers backend, got {args.batch_size}"
            )
        rep = RepetitionConfig(
            enabled=not args.no_skipping,
            window=args.repetition_window,
            short_window=args.repetition_short_window,
            threshold=args.repetition_threshold,
        )
        return TransformersBackend(
            args.checkpoint,
            batch_size=args.batch_size,
            dpi=args.dpi,
            device=args.device,
            dtype=args.dtype,
            max_new_tokens=args.max_new_tokens,
            repetition=rep,
        )
    if name == "nougat-cli":
        return NougatCliBackend(
            args.checkpoint,
            model=args.model,
            batch_size=args.batch_size,
            group=args.group,
            timeout=args.timeout,
            skipping=not args.no_skipping,
            full_precision=args.dtype == "float32",
            executable=args.nougat_bin,
        )
    if name == "pdf-text":
        return PdfTextBackend()
    raise ValueError(f"unknown OCR backend {name!r}; one of {', '.join(BACKENDS)}")


def run_ocr(
    root: str | os.PathLike[str],
    backend: Backend,
    *,
    shard_index: int | None = None,
    num_shards: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    workers: int = 1,
    timeout: float = 300.0,
    recycle: int = 200,
    pdf_dir: str | os.PathLike[str] | None = None,
    ids: Sequence[str] | None = None,
    progress: bool = True,
) -> OcrStats:
    """OCR this shard's pending papers of the manifest at ``root``; record every outcome."""
    from astrollama.data.runner import StageRunner

    manifest = Manifest(root)
    runner = StageRunner(
        manifest,
        STAGE,
        shard_index=shard_index,
        num_shards=num_shards,
        retry_failed=retry_failed,
        force=force,
        progress=False,
        outputs=[manifest.root / "ocr"],
    )
    todo = set(runner.select(ids))
    stats = OcrStats()
    if not todo:
        runner.finish()
        return stats
    if not backend.is_ocr:
        log.warning(
            "backend %s reads the PDF text layer: this is NOT OCR (no equations/tables from images)",
            backend.name,
        )
    status = manifest.status(STAGE)
    pdf_status = manifest.status("download_pdf")
    out_dir = manifest.root / "ocr"
    jobs, done = [], {}
    for pid in runner.assigned:
        jobs.append(
            OcrJob(
                pid,
                find_pdf(manifest, pid, pdf_status, Path(pdf_dir) if pdf_dir else None),
                paper_path(out_dir, pid, ".mmd"),
            )
        )
        if pid not in todo:
            rec = status.get(pid)
            done[len(jobs) - 1] = (
                int(rec.attrs.get("pages", 0)) if rec is not None and rec.status == "ok" else 0
            )
    stats.papers = len(todo)
    t0 = time.monotonic()
    bar = _progress(progress, len(todo))
    try:
        with PdfWorkers(workers, timeout, recycle) as pool:
            for res in backend.run(jobs, done, pool):
                pid = res.job.paper_id
                with runner.isolate(pid):
                    if res.failure is not None:
                        stats.failed += 1
                        stats.reasons[res.failure.reason] = stats.reasons.get(res.failure.reason, 0) + 1
                        runner.fail(
                            pid,
                            str(res.failure),
                            reason=res.failure.reason,
                            pages=res.pages,
                            page_status=res.page_status,
                            backend=backend.name,
                        )
                    else:
                        assert res.text is not None
                        killpoint.hit("ocr-before-write")
                        runner.write_ok(
                            pid,
                            {"mmd": (res.job.mmd, res.text)},
                            pages=res.pages,
                            page_status=res.page_status,
                            backend=backend.name,
                        )
                        killpoint.hit("ocr-after-record")
                        stats.ok += 1
                    for s in res.page_status:
                        stats.page_status[s] = stats.page_status.get(s, 0) + 1
                    stats.pages += res.pages
                    stats.tokens += res.tokens
                bar.update(1)
                bar.set_postfix(
                    pages=stats.pages,
                    failed=stats.failed,
                    pages_per_s=f"{stats.pages / max(time.monotonic() - t0, 1e-9):.2f}",
                )
    finally:  # a fault stops the shard: close the bar before the CLI prints its one line
        bar.close()
    stats.seconds = time.monotonic() - t0
    log.info(stats.line())
    runner.finish()
    return stats


def _progress(enabled: bool, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="ocr", unit="paper", disable=not enabled, mininterval=2.0)


def _parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise argparse.ArgumentTypeError(f"--shard must be i/n with 0 <= i < n, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def register(sub: argparse._SubParsersAction) -> None:
    """``astrollama data ocr`` and ``astrollama data make-pdfs``."""
    from astrollama.cli_args import number, seed_arg
    from astrollama.data.ocr.nougat import DEFAULT_DPI, SHORT_WINDOW, THRESHOLD, WINDOW
    from astrollama.data.runner import add_shard_args

    p = sub.add_parser(
        "ocr",
        help="PDFs -> Nougat .mmd (transformers | nougat-cli | pdf-text)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="data root (holds manifest/; outputs go to ROOT/ocr/)")
    p.add_argument("--backend", choices=BACKENDS, default="transformers")
    p.add_argument(
        "--checkpoint",
        help="Nougat checkpoint dir (transformers: facebook/nougat-small layout; "
        "nougat-cli: nougat-ocr checkpoint dir, passed as -c)",
    )
    p.add_argument("--model", default="0.1.0-small", help="nougat-cli model tag (-m)")
    p.add_argument("--shard", type=_parse_shard, help="i/n (same as --shard-index i --num-shards n)")
    add_shard_args(p)
    p.add_argument(
        "--batch-size", type=number(int, min=0), default=8, help="pages per generate() call (GPU batch)"
    )
    p.add_argument("--group", type=number(int, min=1), default=16, help="nougat-cli: PDFs per nougat process")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="default bfloat16 on CUDA, float32 on CPU",
    )
    p.add_argument(
        "--dpi", type=number(int, min=1, max=1200), default=DEFAULT_DPI, help="page rendering resolution"
    )
    p.add_argument(
        "--max-new-tokens", type=number(int, min=1), default=None, help="default: the decoder's limit (4095)"
    )
    p.add_argument("--no-skipping", action="store_true", help="disable the repetition early stop/markers")
    p.add_argument("--repetition-window", type=number(int, min=2), default=WINDOW)
    p.add_argument("--repetition-short-window", type=number(int, min=2), default=SHORT_WINDOW)
    p.add_argument("--repetition-threshold", type=number(gt=0), default=THRESHOLD)
    p.add_argument(
        "--workers",
        type=number(int, min=0),
        default=1,
        help="PDF rendering processes (0: in-process, no timeout)",
    )
    p.add_argument(
        "--timeout",
        type=number(gt=0),
        default=300.0,
        help="seconds per PDF (loading/rendering; nougat-cli: per PDF of a group)",
    )
    p.add_argument(
        "--recycle",
        type=number(int, min=0),
        default=200,
        help="restart a rendering worker after this many PDFs",
    )
    p.add_argument("--pdf-dir", help="where PDFs are when download_pdf has no record (default ROOT/pdf)")
    p.add_argument(
        "--nougat-bin", default=None, help="nougat executable (default $ASTROLLAMA_NOUGAT_BIN or nougat)"
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli_ocr)

    r = sub.add_parser(
        "nougat-random", help="save a randomly initialised Nougat checkpoint (tests, throughput)"
    )
    r.add_argument(
        "--preset",
        choices=["tiny", "small", "base"],
        default="small",
        help="small/base: nougat-ocr's architecture (what the real weights cost); tiny: for tests",
    )
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=seed_arg(), default=0)
    r.set_defaults(func=_cli_random)

    g = sub.add_parser("make-pdfs", help="render paper JSON files into small PDFs (raw inputs, fixtures)")
    g.add_argument("--papers", required=True, help="directory of paper JSON files")
    dest = g.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="output directory (<namespaced id>.pdf)")
    dest.add_argument("--root", help="data root: PDFs in ROOT/pdf/<yymm>/, papers registered in the manifest")
    g.set_defaults(func=cli_make_pdfs)


def _cli_ocr(args: argparse.Namespace) -> int:
    if args.shard is not None:
        args.shard_index, args.num_shards = args.shard
    papers = Manifest(args.root).papers_path
    if not papers.is_file():
        raise InputError(
            f"{papers}: not found: no manifest in this data root (harvest, or `make-pdfs --root`, first)"
        )
    try:
        backend = make_backend(args.backend, args)
    except (ValueError, OSError) as exc:  # a bad --checkpoint / --nougat-bin / option for this backend
        if isinstance(exc, InputError) or is_environment_error(exc):
            raise
        raise InputError(f"--backend {args.backend}: {' '.join(str(exc).split())}") from exc
    stats = run_ocr(
        args.root,
        backend,
        shard_index=args.shard_index,
        num_shards=args.num_shards,
        retry_failed=args.retry_failed,
        force=args.force,
        workers=args.workers,
        timeout=args.timeout,
        recycle=args.recycle,
        pdf_dir=args.pdf_dir,
        progress=not args.no_progress,
    )
    print(stats.line())
    return 0


def _cli_random(args: argparse.Namespace) -> int:
    from astrollama.data.ocr.nougat import random_nougat
    from astrollama.io import owned_dir

    def earlier(d: Path) -> bool:  # a checkpoint of an earlier version (before the owner marker)
        return (d / "config.json").is_file() and (d / "preprocessor_config.json").is_file()

    with owned_dir(args.out, "data nougat-random", legacy=(earlier,)) as tmp:
        random_nougat(tmp, args.preset, seed=args.seed)
    print(args.out)
    return 0


def cli_make_pdfs(args: argparse.Namespace) -> int:
    from astrollama.data.pdfgen import PaperError, make_pdfs

    try:
        paths = make_pdfs(args.papers, args.out, root=args.root)
    except ValueError as exc:
        if isinstance(exc, PaperError):
            raise
        raise InputError(f"{args.papers}: {' '.join(str(exc).split())}") from exc
    print(f"{len(paths)} PDFs in {args.out or Path(args.root) / 'pdf'}")
    return 0
