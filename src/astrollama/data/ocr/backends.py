"""OCR backends behind one interface, :class:`Backend`: ``transformers`` (Nougat port),
``nougat-cli`` (nougat-ocr in its own environment) and ``pdf-text`` (the PDF text layer).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from astrollama.data.manifest import namespaced
from astrollama.data.ocr.pdf import OcrFailure
from astrollama.data.ocr.pdftext import layout_markdown, page_status
from astrollama.data.ocr.pool import PdfWorkers, _task_count, _task_render, _task_text

log = logging.getLogger(__name__)


BACKENDS = ("transformers", "nougat-cli", "pdf-text")


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

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        batch_size: int = 8,
        dpi: int = 96,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        repetition: Any = None,
        postprocess: bool = True,
    ) -> None:
        from astrollama.data.ocr.nougat import DEFAULT_DPI, NougatTransformers, RepetitionConfig

        self.model = NougatTransformers(
            checkpoint,
            device=device,
            dtype=dtype,
            max_new_tokens=max_new_tokens,
            repetition=repetition or RepetitionConfig(),
            postprocess=postprocess,
        )
        self.batch_size = batch_size
        self.dpi = dpi or DEFAULT_DPI

    def run(self, jobs: Sequence[OcrJob], done: dict[int, int], workers: PdfWorkers) -> Iterator[DocResult]:
        from astrollama.data.ocr.nougat import plan_batches

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
        rendered = zip(
            order,
            workers.imap(
                _task_render,
                [(str(jobs[d].pdf), self.dpi) for d in order],
                lookahead=max(2, workers.workers + 1),
            ),
            strict=True,
        )
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
                    res = OcrFailure(
                        "render-error", f"{jobs[d].pdf}: {len(res)} pages rendered, {counts[d]} counted"
                    )
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

    def _result(
        self, job: OcrJob, n_pages: int, failure: OcrFailure | None, outs: list[Any] | None
    ) -> DocResult:
        from astrollama.data.ocr.nougat import join_pages

        if failure is not None or outs is None:
            return DocResult(job, failure=failure or OcrFailure("render-error", f"{job.pdf}: no pages"))
        md = [self.model.page_markdown(out, n + 1) for n, out in enumerate(outs)]
        status = [m.status for m in md]
        if not any(s in ("ok", "post", "max-length") for s in status):
            errors = [o.error for o in outs if o.error]
            if len(errors) == len(outs):  # the model itself fails: say why
                return DocResult(
                    job,
                    pages=n_pages,
                    page_status=status,
                    failure=OcrFailure(
                        "backend-error", f"{job.pdf}: generation failed on every page: {errors[0]}"
                    ),
                )
            return DocResult(
                job,
                pages=n_pages,
                page_status=status,
                failure=OcrFailure("empty-output", f"{job.pdf}: no page produced text ({', '.join(status)})"),
            )
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
                yield DocResult(
                    jobs[i],
                    pages=len(res),
                    page_status=["empty"] * len(res),
                    failure=OcrFailure(
                        "no-text", f"{jobs[i].pdf}: no text layer (a scanned PDF needs a real OCR backend)"
                    ),
                )
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

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None,
        *,
        model: str = "0.1.0-small",
        batch_size: int = 4,
        group: int = 16,
        timeout: float = 300.0,
        skipping: bool = True,
        full_precision: bool = False,
        executable: str | None = None,
    ) -> None:
        self.executable = executable or os.environ.get("ASTROLLAMA_NOUGAT_BIN") or "nougat"
        if shutil.which(self.executable) is None:
            raise FileNotFoundError(
                f"nougat executable {self.executable!r} not found (install envs/ocr-nougat.txt "
                "in its own environment, or set ASTROLLAMA_NOUGAT_BIN)"
            )
        self.checkpoint = checkpoint
        self.model = model
        self.batch_size = batch_size
        self.group = max(1, group)
        self.timeout = timeout
        self.skipping = skipping
        self.full_precision = full_precision

    def command(self, inputs: Sequence[Path], out: Path) -> list[str]:
        cmd = [
            self.executable,
            *map(str, inputs),
            "-o",
            str(out),
            "-m",
            self.model,
            "--batchsize",
            str(self.batch_size),
            "--recompute",
        ]
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
            log.info(
                "running %s (%d PDFs, timeout %.0fs)",
                " ".join(cmd[:1] + cmd[len(items) + 1 :]),
                len(items),
                budget,
            )
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
                    results[i] = DocResult(
                        job,
                        failure=OcrFailure(
                            "empty-output",
                            f"{job.pdf}: nougat wrote {'an empty' if mmd.is_file() else 'no'} .mmd",
                        ),
                    )
                elif "ok" not in status:
                    results[i] = DocResult(
                        job,
                        pages=n_pages[i],
                        page_status=status,
                        failure=OcrFailure(
                            "empty-output", f"{job.pdf}: only missing-page markers ({', '.join(status)})"
                        ),
                    )
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
        groups = [good[k : k + self.group] for k in range(0, len(good), self.group)]
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
                    log.warning(
                        "nougat failed on a group of %d PDFs (%s); retrying one by one", len(items), f
                    )
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
