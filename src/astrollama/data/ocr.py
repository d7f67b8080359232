"""OCR stage: PDFs -> Nougat markdown (``.mmd``), one file per paper, every failure recorded.

Backends (one interface, :class:`Backend`):

``transformers`` (default)
    Nougat via transformers' port (:mod:`astrollama.data.ocr_nougat`), with nougat-ocr's
    repetition early stop and missing-page markers re-created. Pages are rendered with pypdfium2
    in worker processes and batched across PDFs on the GPU.
``nougat-cli``
    The ``nougat`` command of ``nougat-ocr`` 0.1.17 in its own pinned environment
    (``envs/ocr-nougat.txt``), run as a subprocess per group of PDFs (exact reproduction of
    the published tool). Executable: ``--nougat-bin`` or ``$ASTROLLAMA_NOUGAT_BIN``.
``pdf-text``
    The PDF's embedded text layer (pypdfium2) turned into ``.mmd``-like markdown by
    :mod:`astrollama.data.ocr_pdftext`. NOT OCR and not Nougat quality (no equations, no tables):
    the CPU fallback for born-digital journal PDFs and the offline demo.

Common behaviour: a bad PDF never stops the shard. Missing, zero-byte, encrypted, corrupt and
zero-page PDFs, PDFs whose loading exceeds ``--timeout`` and documents that produce no text are
recorded as ``failed`` in the manifest (stage ``ocr``) with a reason prefix (``encrypted: ...``);
nothing is written for them. Outputs go to ``<root>/ocr/<yymm>/<namespaced id>.mmd`` (atomic);
the ``ok`` record carries ``pages`` and per-page statuses. A rerun skips finished papers; a rerun
after ``kill -9`` produces byte-identical files. A failure of the machine (disk full, I/O error,
a PDF worker killed) is never recorded: the shard stops with exit 1 and the rerun does the work.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from astrollama.data import killpoint
from astrollama.data.manifest import Manifest, namespaced, paper_path
from astrollama.data.ocr_pdftext import Line, layout_markdown, page_status, text_layer_pages  # noqa: F401 - public names
from astrollama.data.stages import PoolWatch
from astrollama.errors import InputError, is_environment_error

log = logging.getLogger(__name__)

STAGE = "ocr"
BACKENDS = ("transformers", "nougat-cli", "pdf-text")

#: Failure reasons (the prefix of the manifest ``error`` and the ``reason`` attr).
REASONS = (
    "missing-file", "empty-file", "unreadable", "encrypted", "corrupt", "no-pages", "timeout", "render-error",
    "no-text", "empty-output", "backend-error",
)


class OcrFailure(Exception):  # noqa: N818 - a recorded outcome, named like the other reasons
    """A document-level failure with a machine-readable ``reason`` (one of :data:`REASONS`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclasses.dataclass
class OcrJob:
    """One paper to convert: its id, its PDF and where its ``.mmd`` goes."""

    paper_id: str
    pdf: Path
    mmd: Path


@dataclasses.dataclass
class DocResult:
    """What a backend produced for one job: markdown, or a failure."""

    job: OcrJob
    text: str | None = None
    pages: int = 0
    page_status: list[str] = dataclasses.field(default_factory=list)
    failure: OcrFailure | None = None
    tokens: int = 0


# ============================================================================ PDF access


def open_pdf(path: str | os.PathLike[str]) -> Any:
    """Open a PDF with pypdfium2, classifying every way it can fail as an :class:`OcrFailure`."""
    import pypdfium2 as pdfium

    p = Path(path)
    if not p.exists():
        raise OcrFailure("missing-file", f"{p} does not exist")
    if p.is_file() and p.stat().st_size == 0:
        raise OcrFailure("empty-file", f"{p} has zero bytes")
    try:  # read through Python: OS errors get their own reason, a hung file system blocks here
        fh = open(p, "rb")  # noqa: SIM115 - handed over to PDFium (autoclose)
    except OSError as exc:
        if is_environment_error(exc):  # EIO, ENOMEM, ...: the machine, retried, never recorded
            raise
        raise OcrFailure("unreadable", f"{p}: {exc}") from None
    try:
        pdf = pdfium.PdfDocument(fh, autoclose=True)
    except pdfium.PdfiumError as exc:
        fh.close()
        raise _classify_load_error(p, exc) from None
    if len(pdf) == 0:
        pdf.close()
        raise OcrFailure("no-pages", f"{p} has zero pages")
    return pdf


def _classify_load_error(path: Path, exc: Exception) -> OcrFailure:
    """Ask pypdf what the file really is: PDFium says 'format error' for several cases, and for
    some files (zero pages) fails without setting an error, so its error code can be stale."""
    code = getattr(exc, "err_code", None)
    try:
        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            return OcrFailure("encrypted", f"{path} is encrypted")
        if len(reader.pages) == 0:
            return OcrFailure("no-pages", f"{path} has zero pages")
    except Exception:  # noqa: BLE001 - pypdf failing too confirms the file is broken
        if code in (4, 5):  # FPDF_ERR_PASSWORD, FPDF_ERR_SECURITY
            return OcrFailure("encrypted", f"{path} is encrypted (PDFium error {code})")
    return OcrFailure("corrupt", f"{path}: {exc}")


def count_pages(path: str | os.PathLike[str]) -> int:
    pdf = open_pdf(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def render_pages(path: str | os.PathLike[str], dpi: int) -> list[Any]:
    """Every page as an RGB PIL image at ``dpi``. Zero rendered pages is an error, never empty output.

    A page that fails to render raises ``render-error`` for the document (a partial document would
    silently lose text).
    """
    pdf = open_pdf(path)
    images = []
    try:
        for i in range(len(pdf)):
            try:
                page = pdf[i]
                images.append(page.render(scale=dpi / 72).to_pil().convert("RGB"))
                page.close()
            except Exception as exc:  # noqa: BLE001
                raise OcrFailure("render-error", f"{path}: page {i + 1}: {exc}") from None
    finally:
        pdf.close()
    if not images:
        raise OcrFailure("no-pages", f"{path}: pypdfium2 rendered no pages")
    return images


# ============================================================================ worker processes


def _guarded(fn: Callable[..., Any], path: str, *args: Any) -> tuple[str, Any]:
    """Run a PDF task; every exception becomes a (reason, message) failure, never a crash, except
    a failure of the machine (disk full, EIO, ...), sent back as ``env`` and re-raised by the parent."""
    killpoint.hit("ocr-worker")  # tests: a worker killed by the OOM killer / an admin
    try:
        return ("ok", fn(path, *args))
    except OcrFailure as f:
        return ("fail", (f.reason, f.message))
    except Exception as exc:  # noqa: BLE001 - one bad PDF must not stop the shard
        if is_environment_error(exc) and isinstance(exc, OSError):
            return ("env", (exc.errno, exc.strerror or str(exc), exc.filename or path))
        reason = "unreadable" if isinstance(exc, OSError) else "render-error"
        return ("fail", (reason, f"{path}: {type(exc).__name__}: {exc}"))


def _task_count(path: str) -> tuple[str, Any]:
    return _guarded(count_pages, path)


def _task_render(path: str, dpi: int) -> tuple[str, Any]:
    return _guarded(render_pages, path, dpi)


def _task_text(path: str) -> tuple[str, Any]:
    return _guarded(text_layer_pages, path)


class PdfWorkers:
    """Runs PDF tasks (count, render, text) in worker processes with a per-PDF timeout.

    * ``workers=0``: in this process (no timeout; for tests and debugging).
    * a task exceeding ``timeout`` seconds becomes ``OcrFailure('timeout')``; the pool is killed
      and restarted (a hung PDFium call cannot be interrupted any other way);
    * ``recycle``: a worker exits after that many PDFs (PDFium's memory grows over long runs);
    * a worker that dies otherwise (killed by the OOM killer or a signal) raises
      :class:`EnvironmentFault`: retryable, nothing is recorded for the PDFs in flight.
    """

    def __init__(self, workers: int = 1, timeout: float = 300.0, recycle: int = 200) -> None:
        if not timeout > 0 or timeout == float("inf"):
            raise InputError(f"--timeout: must be a number > 0 (seconds per PDF), got {timeout!r}")
        self.workers = workers
        self.timeout = timeout
        self.recycle = recycle
        self._pool: Any = None
        self._watch: Any = None  # a stages.PoolWatch over the pool
        self.timeouts = 0

    def _get_pool(self) -> Any:
        if self._pool is None:
            ctx = mp.get_context("spawn")  # never fork a process that holds CUDA/OpenMP state
            self._pool = ctx.Pool(self.workers, maxtasksperchild=self.recycle or None)
            self._watch = PoolWatch(self._pool, "PDF worker")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> PdfWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def imap(self, fn: Callable[..., tuple[str, Any]], argsets: Sequence[tuple[Any, ...]],
             lookahead: int | None = None) -> Iterator[Any]:
        """Results in order: the task's value, or an :class:`OcrFailure` instance (never raised).

        A failure of the machine (an environment ``OSError`` in a worker, a killed worker) raises."""
        if self.workers <= 0:
            for args in argsets:
                yield _unwrap(fn(*args))
            return
        ahead = max(1, lookahead or 2 * self.workers)
        queue: list[Any] = []
        nxt = 0
        while nxt < len(argsets) or queue:
            while nxt < len(argsets) and len(queue) < ahead:
                queue.append(self._get_pool().apply_async(fn, argsets[nxt]))
                nxt += 1
            head = queue.pop(0)
            try:
                yield _unwrap(self._watch.get(head, self.timeout))
            except mp.TimeoutError:
                done_index = nxt - len(queue) - 1
                self.timeouts += 1
                log.warning("%s: still running after %.0fs; killing the PDF workers", argsets[done_index][0],
                            self.timeout)
                self.close()
                queue = [self._get_pool().apply_async(fn, argsets[i]) for i in range(done_index + 1, nxt)]
                yield OcrFailure("timeout", f"{argsets[done_index][0]}: no result after {self.timeout:.0f}s")


def _unwrap(res: tuple[str, Any]) -> Any:
    kind, value = res
    if kind == "env":  # the machine failed in a worker: re-raise here, never a per-paper record
        raise OSError(*value)
    return OcrFailure(*value) if kind == "fail" else value


# ============================================================================ backends


class Backend:
    """Converts jobs to :class:`DocResult` in job order.

    ``done`` maps job index -> page count for jobs finished in an earlier run: backends that
    batch across documents use it to rebuild the same batches; they yield nothing for them.
    """

    name = "base"
    is_ocr = True

    def run(self, jobs: Sequence[OcrJob], done: dict[int, int], workers: PdfWorkers) -> Iterator[DocResult]:
        raise NotImplementedError


class TransformersBackend(Backend):
    """Nougat with transformers: rendering in workers, pages batched across PDFs (fixed plan)."""

    name = "transformers"

    def __init__(self, checkpoint: str | os.PathLike[str], *, batch_size: int = 8, dpi: int = 96,
                 device: str | None = None, dtype: str | None = None, max_new_tokens: int | None = None,
                 repetition: Any = None, postprocess: bool = True) -> None:
        from astrollama.data.ocr_nougat import DEFAULT_DPI, NougatTransformers, RepetitionConfig

        self.model = NougatTransformers(
            checkpoint, device=device, dtype=dtype, max_new_tokens=max_new_tokens,
            repetition=repetition or RepetitionConfig(), postprocess=postprocess,
        )
        self.batch_size = batch_size
        self.dpi = dpi or DEFAULT_DPI

    def run(self, jobs: Sequence[OcrJob], done: dict[int, int], workers: PdfWorkers) -> Iterator[DocResult]:
        from astrollama.data.ocr_nougat import plan_batches

        # 1. page counts of every job (done jobs: from their records) -> the fixed batch plan
        todo = [i for i in range(len(jobs)) if i not in done]
        counts = [done.get(i, 0) for i in range(len(jobs))]
        failures: dict[int, OcrFailure] = {}
        for i, res in zip(todo, workers.imap(_task_count, [(str(jobs[i].pdf),) for i in todo]), strict=True):
            if isinstance(res, OcrFailure):
                failures[i] = res
            else:
                counts[i] = res
        batches = plan_batches(counts, self.batch_size)
        last_use = {d: b for b, batch in enumerate(batches) for d, _ in batch}
        needed = [b for b, batch in enumerate(batches) if any(d not in done for d, _ in batch)]
        # 2. documents in order of first use (done ones sharing a batch with pending ones included:
        #    the batch must be the same as in the uninterrupted run)
        order = list(dict.fromkeys(d for b in needed for d, _ in batches[b]))
        rendered = zip(order, workers.imap(_task_render, [(str(jobs[d].pdf), self.dpi) for d in order],
                                           lookahead=max(2, workers.workers + 1)), strict=True)
        images: dict[int, list[Any]] = {}
        unavailable: set[int] = set()
        outputs: dict[int, list[Any]] = {d: [None] * counts[d] for d in todo if d not in failures}
        ptr = 0

        def finished() -> Iterator[DocResult]:
            nonlocal ptr
            while ptr < len(todo):
                d = todo[ptr]
                if d not in failures and any(o is None for o in outputs[d]):
                    return
                ptr += 1
                yield self._result(jobs[d], counts[d], failures.get(d), outputs.pop(d, None))

        yield from finished()
        for b in needed:
            for d, _ in batches[b]:
                if d in images or d in unavailable or d in failures:
                    continue
                doc, res = next(rendered)
                assert doc == d, (doc, d)
                if not isinstance(res, OcrFailure) and len(res) != counts[d]:
                    res = OcrFailure("render-error", f"{jobs[d].pdf}: {len(res)} pages rendered, {counts[d]} counted")
                if isinstance(res, OcrFailure):
                    if d in done:
                        unavailable.add(d)
                    else:
                        failures[d] = res
                        outputs.pop(d, None)
                else:
                    images[d] = res
            live = [(d, p) for d, p in batches[b] if d in images]
            outs = self.model.generate_safe([images[d][p] for d, p in live]) if live else []
            for (d, p), out in zip(live, outs, strict=True):
                if d in outputs:
                    outputs[d][p] = out
            for d, _ in batches[b]:
                if last_use[d] == b:
                    images.pop(d, None)
            yield from finished()
        yield from finished()

    def _result(self, job: OcrJob, n_pages: int, failure: OcrFailure | None, outs: list[Any] | None) -> DocResult:
        from astrollama.data.ocr_nougat import join_pages

        if failure is not None or outs is None:
            return DocResult(job, failure=failure or OcrFailure("render-error", f"{job.pdf}: no pages"))
        md = [self.model.page_markdown(out, n + 1) for n, out in enumerate(outs)]
        status = [m.status for m in md]
        if not any(s in ("ok", "post", "max-length") for s in status):
            errors = [o.error for o in outs if o.error]
            if len(errors) == len(outs):  # the model itself fails: say why
                return DocResult(job, pages=n_pages, page_status=status, failure=OcrFailure(
                    "backend-error", f"{job.pdf}: generation failed on every page: {errors[0]}"))
            return DocResult(job, pages=n_pages, page_status=status, failure=OcrFailure(
                "empty-output", f"{job.pdf}: no page produced text ({', '.join(status)})"))
        return DocResult(job, join_pages(md), n_pages, status, tokens=sum(o.n_tokens for o in outs))


class PdfTextBackend(Backend):
    """The PDF text layer as markdown (not OCR): headings from the layout, paragraphs from gaps."""

    name = "pdf-text"
    is_ocr = False

    def run(self, jobs: Sequence[OcrJob], done: dict[int, int], workers: PdfWorkers) -> Iterator[DocResult]:
        todo = [i for i in range(len(jobs)) if i not in done]
        for i, res in zip(todo, workers.imap(_task_text, [(str(jobs[i].pdf),) for i in todo]), strict=True):
            if isinstance(res, OcrFailure):
                yield DocResult(jobs[i], failure=res)
                continue
            text = layout_markdown(res)
            if not text.strip():
                yield DocResult(jobs[i], pages=len(res), page_status=["empty"] * len(res), failure=OcrFailure(
                    "no-text", f"{jobs[i].pdf}: no text layer (a scanned PDF needs a real OCR backend)"))
                continue
            yield DocResult(jobs[i], text, len(res), page_status(res))


class NougatCliBackend(Backend):
    """The ``nougat`` CLI of nougat-ocr, run in its own environment on groups of PDFs.

    Each PDF is linked into a private input directory as ``<namespaced id>.pdf`` (so nougat's
    ``<stem>.mmd`` names cannot collide), PDFs are checked first (encrypted/corrupt/zero pages are
    recorded without calling nougat), and a group whose process fails or times out is retried
    one PDF at a time to isolate the bad one. A missing or empty ``.mmd`` is ``empty-output``
    (nougat-ocr skips unreadable PDFs silently and exits 0).
    """

    name = "nougat-cli"

    def __init__(self, checkpoint: str | os.PathLike[str] | None, *, model: str = "0.1.0-small",
                 batch_size: int = 4, group: int = 16, timeout: float = 300.0, skipping: bool = True,
                 full_precision: bool = False, executable: str | None = None) -> None:
        self.executable = executable or os.environ.get("ASTROLLAMA_NOUGAT_BIN") or "nougat"
        if shutil.which(self.executable) is None:
            raise FileNotFoundError(f"nougat executable {self.executable!r} not found (install envs/ocr-nougat.txt "
                                    "in its own environment, or set ASTROLLAMA_NOUGAT_BIN)")
        self.checkpoint = checkpoint
        self.model = model
        self.batch_size = batch_size
        self.group = max(1, group)
        self.timeout = timeout
        self.skipping = skipping
        self.full_precision = full_precision

    def command(self, inputs: Sequence[Path], out: Path) -> list[str]:
        cmd = [self.executable, *map(str, inputs), "-o", str(out), "-m", self.model,
               "--batchsize", str(self.batch_size), "--recompute"]
        if self.checkpoint:
            cmd += ["-c", str(self.checkpoint)]
        if not self.skipping:
            cmd.append("--no-skipping")
        if self.full_precision:
            cmd.append("--full-precision")
        return cmd

    def _call(self, items: Sequence[tuple[int, OcrJob]], n_pages: dict[int, int]) -> dict[int, DocResult]:
        with tempfile.TemporaryDirectory(prefix="nougat-") as tmp:
            inp, out = Path(tmp, "in"), Path(tmp, "out")
            inp.mkdir()
            links = []
            for _, job in items:
                link = inp / f"{namespaced(job.paper_id)}.pdf"
                link.symlink_to(job.pdf.resolve())
                links.append(link)
            cmd = self.command(links, out)
            budget = self.timeout * len(items)
            log.info("running %s (%d PDFs, timeout %.0fs)", " ".join(cmd[:1] + cmd[len(items) + 1:]), len(items), budget)
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, check=False)
            except subprocess.TimeoutExpired:
                raise OcrFailure("timeout", f"nougat did not finish in {budget:.0f}s") from None
            if proc.returncode != 0:
                tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
                raise OcrFailure("backend-error", f"nougat exited {proc.returncode}: {tail}")
            results = {}
            for (i, job), link in zip(items, links, strict=True):
                mmd = out / f"{link.stem}.mmd"
                text = mmd.read_text(encoding="utf-8") if mmd.is_file() else ""
                status = _cli_page_status(text, n_pages[i])
                if not text.strip():
                    results[i] = DocResult(job, failure=OcrFailure(
                        "empty-output", f"{job.pdf}: nougat wrote {'an empty' if mmd.is_file() else 'no'} .mmd"))
                elif "ok" not in status:
                    results[i] = DocResult(job, pages=n_pages[i], page_status=status, failure=OcrFailure(
                        "empty-output", f"{job.pdf}: only missing-page markers ({', '.join(status)})"))
                else:
                    results[i] = DocResult(job, text.rstrip("\n") + "\n", n_pages[i], status)
            return results

    def run(self, jobs: Sequence[OcrJob], done: dict[int, int], workers: PdfWorkers) -> Iterator[DocResult]:
        todo = [i for i in range(len(jobs)) if i not in done]
        good: list[int] = []
        n_pages: dict[int, int] = {}
        failed: dict[int, DocResult] = {}
        for i, res in zip(todo, workers.imap(_task_count, [(str(jobs[i].pdf),) for i in todo]), strict=True):
            if isinstance(res, OcrFailure):
                failed[i] = DocResult(jobs[i], failure=res)
            else:
                good.append(i)
                n_pages[i] = res
        groups = [good[k:k + self.group] for k in range(0, len(good), self.group)]
        results: dict[int, DocResult] = dict(failed)
        pos = 0
        for grp in groups:
            items = [(i, jobs[i]) for i in grp]
            try:
                results.update(self._call(items, n_pages))
            except OcrFailure as f:
                if len(items) == 1:
                    results[grp[0]] = DocResult(jobs[grp[0]], failure=f)
                else:
                    log.warning("nougat failed on a group of %d PDFs (%s); retrying one by one", len(items), f)
                    for item in items:
                        try:
                            results.update(self._call([item], n_pages))
                        except OcrFailure as f1:
                            results[item[0]] = DocResult(item[1], failure=f1)
            while pos < len(todo) and todo[pos] in results:
                yield results.pop(todo[pos])
                pos += 1
        while pos < len(todo):
            yield results.pop(todo[pos])
            pos += 1


def _cli_page_status(text: str, n_pages: int) -> list[str]:
    """Per-page status from nougat-ocr's markers (pages without a marker count as ok)."""
    status = ["ok"] * n_pages
    for kind, page in re.findall(r"\[MISSING_PAGE_(FAIL|EMPTY):(\d+)\]", text):
        if 1 <= int(page) <= n_pages:
            status[int(page) - 1] = "fail" if kind == "FAIL" else "empty"
    return status


# ============================================================================ the stage


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
        tok = f", {self.tokens} tokens ({self.tokens / self.seconds:.1f} tokens/s)" if self.tokens and self.seconds else ""
        return (f"ocr: {self.ok} ok, {self.failed} failed of {self.papers} papers; {self.pages} pages in "
                f"{self.seconds:.1f}s ({rate:.2f} pages/s{tok}); failures {self.reasons or '{}'}; "
                f"pages {self.page_status or '{}'}")


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
        from astrollama.data.ocr_nougat import RepetitionConfig

        if not args.checkpoint:
            raise InputError("--checkpoint: required for the transformers backend (a Nougat checkpoint DIR)")
        if args.batch_size < 1:
            raise InputError(f"--batch-size: must be >= 1 for the transformers backend, got {args.batch_size}")
        rep = RepetitionConfig(enabled=not args.no_skipping, window=args.repetition_window,
                               short_window=args.repetition_short_window, threshold=args.repetition_threshold)
        return TransformersBackend(args.checkpoint, batch_size=args.batch_size, dpi=args.dpi, device=args.device,
                                   dtype=args.dtype, max_new_tokens=args.max_new_tokens, repetition=rep)
    if name == "nougat-cli":
        return NougatCliBackend(args.checkpoint, model=args.model, batch_size=args.batch_size, group=args.group,
                                timeout=args.timeout, skipping=not args.no_skipping,
                                full_precision=args.dtype == "float32", executable=args.nougat_bin)
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
    from astrollama.data.stages import StageRunner

    manifest = Manifest(root)
    runner = StageRunner(manifest, STAGE, shard_index=shard_index, num_shards=num_shards,
                         retry_failed=retry_failed, force=force, progress=False)
    todo = set(runner.select(ids))
    stats = OcrStats()
    if not todo:
        runner.finish()
        return stats
    if not backend.is_ocr:
        log.warning("backend %s reads the PDF text layer: this is NOT OCR (no equations/tables from images)",
                    backend.name)
    status = manifest.status(STAGE)
    pdf_status = manifest.status("download_pdf")
    out_dir = manifest.root / "ocr"
    jobs, done = [], {}
    for pid in runner.assigned:
        jobs.append(OcrJob(pid, find_pdf(manifest, pid, pdf_status, Path(pdf_dir) if pdf_dir else None),
                           paper_path(out_dir, pid, ".mmd")))
        if pid not in todo:
            rec = status.get(pid)
            done[len(jobs) - 1] = int(rec.attrs.get("pages", 0)) if rec is not None and rec.status == "ok" else 0
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
                        runner.fail(pid, str(res.failure), reason=res.failure.reason, pages=res.pages,
                                    page_status=res.page_status, backend=backend.name)
                    else:
                        assert res.text is not None
                        killpoint.hit("ocr-before-write")
                        runner.write_ok(pid, {"mmd": (res.job.mmd, res.text)}, pages=res.pages,
                                        page_status=res.page_status, backend=backend.name)
                        killpoint.hit("ocr-after-record")
                        stats.ok += 1
                    for s in res.page_status:
                        stats.page_status[s] = stats.page_status.get(s, 0) + 1
                    stats.pages += res.pages
                    stats.tokens += res.tokens
                bar.update(1)
                bar.set_postfix(pages=stats.pages, failed=stats.failed,
                                pages_per_s=f"{stats.pages / max(time.monotonic() - t0, 1e-9):.2f}")
    finally:  # a fault stops the shard: close the bar before the CLI prints its one line
        bar.close()
    stats.seconds = time.monotonic() - t0
    log.info(stats.line())
    runner.finish()
    return stats


def _progress(enabled: bool, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="ocr", unit="paper", disable=not enabled, mininterval=2.0)


# ============================================================================ CLI


def _parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise argparse.ArgumentTypeError(f"--shard must be i/n with 0 <= i < n, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def register(sub: argparse._SubParsersAction) -> None:
    """``astrollama data ocr`` and ``astrollama data make-pdfs``."""
    from astrollama.cli import number
    from astrollama.data.ocr_nougat import DEFAULT_DPI, SHORT_WINDOW, THRESHOLD, WINDOW
    from astrollama.data.stages import add_shard_args

    p = sub.add_parser("ocr", help="PDFs -> Nougat .mmd (transformers | nougat-cli | pdf-text)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="data root (holds manifest/; outputs go to ROOT/ocr/)")
    p.add_argument("--backend", choices=BACKENDS, default="transformers")
    p.add_argument("--checkpoint", help="Nougat checkpoint dir (transformers: facebook/nougat-small layout; "
                                        "nougat-cli: nougat-ocr checkpoint dir, passed as -c)")
    p.add_argument("--model", default="0.1.0-small", help="nougat-cli model tag (-m)")
    p.add_argument("--shard", type=_parse_shard, help="i/n (same as --shard-index i --num-shards n)")
    add_shard_args(p)
    p.add_argument("--batch-size", type=number(int, min=0), default=8, help="pages per generate() call (GPU batch)")
    p.add_argument("--group", type=number(int, min=1), default=16, help="nougat-cli: PDFs per nougat process")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--dpi", type=number(int, min=1, max=1200), default=DEFAULT_DPI, help="page rendering resolution")
    p.add_argument("--max-new-tokens", type=number(int, min=1), default=None, help="default: the decoder's limit (4095)")
    p.add_argument("--no-skipping", action="store_true", help="disable the repetition early stop/markers")
    p.add_argument("--repetition-window", type=number(int, min=2), default=WINDOW)
    p.add_argument("--repetition-short-window", type=number(int, min=2), default=SHORT_WINDOW)
    p.add_argument("--repetition-threshold", type=number(gt=0), default=THRESHOLD)
    p.add_argument("--workers", type=number(int, min=0), default=1, help="PDF rendering processes (0: in-process, no timeout)")
    p.add_argument("--timeout", type=number(gt=0), default=300.0, help="seconds per PDF (loading/rendering; nougat-cli: "
                                                               "per PDF of a group)")
    p.add_argument("--recycle", type=number(int, min=0), default=200, help="restart a rendering worker after this many PDFs")
    p.add_argument("--pdf-dir", help="where PDFs are when download_pdf has no record (default ROOT/pdf)")
    p.add_argument("--nougat-bin", default=None, help="nougat executable (default $ASTROLLAMA_NOUGAT_BIN or nougat)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli_ocr)

    r = sub.add_parser("nougat-random", help="save a randomly initialised Nougat checkpoint (tests, throughput)")
    r.add_argument("--preset", choices=["tiny", "small", "base"], default="small",
                   help="small/base: nougat-ocr's architecture (what the real weights cost); tiny: for tests")
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=_cli_random)

    g = sub.add_parser("make-pdfs", help="render paper JSON files into small PDFs (raw inputs, fixtures)")
    g.add_argument("--papers", required=True, help="directory of paper JSON files")
    dest = g.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="output directory (<namespaced id>.pdf)")
    dest.add_argument("--root", help="data root: PDFs in ROOT/pdf/<yymm>/, papers registered in the manifest")
    g.set_defaults(func=_cli_make_pdfs)


def _cli_ocr(args: argparse.Namespace) -> int:
    if args.shard is not None:
        args.shard_index, args.num_shards = args.shard
    papers = Manifest(args.root).papers_path
    if not papers.is_file():
        raise InputError(f"{papers}: not found: no manifest in this data root (harvest, or `make-pdfs --root`, first)")
    try:
        backend = make_backend(args.backend, args)
    except (ValueError, OSError) as exc:  # a bad --checkpoint / --nougat-bin / option for this backend
        if isinstance(exc, InputError) or is_environment_error(exc):
            raise
        raise InputError(f"--backend {args.backend}: {' '.join(str(exc).split())}") from exc
    stats = run_ocr(args.root, backend, shard_index=args.shard_index, num_shards=args.num_shards,
                    retry_failed=args.retry_failed, force=args.force, workers=args.workers,
                    timeout=args.timeout, recycle=args.recycle, pdf_dir=args.pdf_dir,
                    progress=not args.no_progress)
    print(stats.line())
    return 0


def _cli_random(args: argparse.Namespace) -> int:
    from astrollama.data.ocr_nougat import random_nougat

    print(random_nougat(args.out, args.preset, seed=args.seed))
    return 0


def _cli_make_pdfs(args: argparse.Namespace) -> int:
    from astrollama.data.pdfgen import PaperError, make_pdfs

    try:
        paths = make_pdfs(args.papers, args.out, root=args.root)
    except ValueError as exc:
        if isinstance(exc, PaperError):
            raise
        raise InputError(f"{args.papers}: {' '.join(str(exc).split())}") from exc
    print(f"{len(paths)} PDFs in {args.out or Path(args.root) / 'pdf'}")
    return 0

