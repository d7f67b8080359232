"""The OCR stage's PDF worker pool: counting, rendering and text-layer tasks in processes, with a
per-PDF timeout and a killed-worker check.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from astrollama import killpoint
from astrollama.data.ocr.pdf import OcrFailure, count_pages, render_pages
from astrollama.data.ocr.pdftext import text_layer_pages
from astrollama.data.runner import PoolWatch
from astrollama.errors import InputError, is_environment_error

log = logging.getLogger(__name__)


def _guarded(fn: Callable[..., Any], path: str, *args: Any) -> tuple[str, Any]:
    """Run a PDF task; every exception becomes a (reason, message) failure, never a crash, except
    a failure of the machine (disk full, EIO, ...), sent back as ``env`` and re-raised by the parent."""
    killpoint.hit("ocr-worker", path)  # tests: a worker killed (OOM killer, an admin) or hung
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

    def imap(
        self,
        fn: Callable[..., tuple[str, Any]],
        argsets: Sequence[tuple[Any, ...]],
        lookahead: int | None = None,
    ) -> Iterator[Any]:
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
                log.warning(
                    "%s: still running after %.0fs; killing the PDF workers",
                    argsets[done_index][0],
                    self.timeout,
                )
                self.close()
                queue = [self._get_pool().apply_async(fn, argsets[i]) for i in range(done_index + 1, nxt)]
                yield OcrFailure("timeout", f"{argsets[done_index][0]}: no result after {self.timeout:.0f}s")


def _unwrap(res: tuple[str, Any]) -> Any:
    kind, value = res
    if kind == "env":  # the machine failed in a worker: re-raise here, never a per-paper record
        raise OSError(*value)
    return OcrFailure(*value) if kind == "fail" else value
