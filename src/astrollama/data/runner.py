"""The per-paper stage runner: one shard of a job array (:mod:`astrollama.data.shards`), per-item failure isolation, completion markers, stats.

Every data stage (download, OCR, AIC, summaries, ...) processes papers the same way::

    runner = StageRunner(manifest, "download_pdf")        # shard from SLURM_ARRAY_TASK_* by default
    stats = runner.run(fetch_one, ids)                     # fetch_one(paper_id) -> outputs | Outcome

or, for batched work (GPU batches)::

    for pid in runner.select(ids): ...                     # this shard's pending papers
    runner.ok(pid, outputs={"mmd": path}, pages=12)        # or runner.fail(pid, "timeout")
    runner.finish()

Guarantees (the same for every stage):

* ``shards.shard_of`` assigns each id to exactly one shard by a hash of the id (not by position), so the
  assignment is stable when the paper list grows or is reordered;
* a paper counts as done once it has an ``ok`` or ``failed`` record; a rerun processes only the
  rest, so after ``kill -9`` the rerun finishes the shard with output identical to an
  uninterrupted run (outputs are written atomically BEFORE the ``ok`` record, so a kill between
  the two only means the paper is redone and its file rewritten with the same content);
* an exception on one paper becomes a ``failed`` record with its reason; the shard goes on;
* except a failure of the machine (:func:`astrollama.errors.is_environment_error`: disk full,
  I/O error, quota, out of memory, a killed worker): nothing is recorded for that paper, the
  shard stops, no completion marker is written, and the exception reaches the CLI (exit 1, one
  line naming the path); the rerun after the fault is fixed does the paper;
* a completion marker ``manifest/done/<stage>/<shard>.json`` (with the shard's stats) is written
  when every assigned paper is terminal; a rerun with the same assignment is then a no-op;
* a data root without a manifest is an input error (nothing is written); so is a manifest or a
  stage output directory that cannot be written (found before any paper, not recorded per paper);
* worker pools are waited on through :class:`PoolWatch`, so a killed worker is a retryable
  fault, not a hang or a per-paper timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from astrollama.data.manifest import Manifest, ManifestError, StatusRecord, check_paper_id
from astrollama.data.shards import shard_from_env, shard_name, shard_of
from astrollama.errors import EnvironmentFault, InputError, is_environment_error
from astrollama.io import atomic_path, atomic_write_json, check_writable

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- outcomes


class SkipItem(Exception):  # noqa: N818 - it is a signal, not an error
    """Raise inside an item to record it as ``skipped`` (not terminal: retried next run)."""


class StageAbort(RuntimeError):  # noqa: N818 - it is a signal, not an error
    """Raise inside an item to stop the whole shard (e.g. the server blocks us); nothing is recorded
    for that paper and the exception propagates out of ``StageRunner.run``."""


@dataclasses.dataclass
class Outcome:
    """What processing one paper produced; returned by a ``StageRunner.run`` function."""

    status: str = "ok"
    outputs: dict[str, str | os.PathLike[str]] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


def describe_error(exc: BaseException) -> str:
    """A one-line failure reason for the manifest: ``'ValueError: not a PDF'``."""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    """A failure of the machine, not of the paper: never a terminal ``failed`` record."""
    return is_environment_error(exc) or isinstance(exc, MemoryError)


class PoolWatch:
    """Waits on ``multiprocessing.Pool`` results while watching the pool's worker processes.

    Pool replaces a worker that dies but loses its task: ``result.get()`` would wait forever (or
    until a timeout that then blames the input). Here a worker that exits by a signal (the OOM
    killer, ``kill -9``) or with an error status raises :class:`EnvironmentFault` within 0.2 s:
    retryable, nothing recorded. Workers recycled by ``maxtasksperchild`` exit 0 and are fine.
    """

    def __init__(self, pool: Any, what: str = "worker") -> None:
        self.pool, self.what = pool, what
        self.seen: dict[int, Any] = {}
        self.check()

    def check(self) -> None:
        for proc in list(getattr(self.pool, "_pool", [])):  # the live workers (Pool's own list)
            self.seen.setdefault(proc.pid, proc)
        dead = next((p for p in self.seen.values() if p.exitcode not in (None, 0)), None)
        if dead is not None:
            code = dead.exitcode
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise EnvironmentFault(
                f"{self.what} process {dead.pid} {how} (out of memory? killed?); "
                "nothing recorded for its work in flight, rerun to retry it"
            )

    def get(self, result: Any, timeout: float | None = None) -> Any:
        """``result.get(timeout)`` (``multiprocessing.TimeoutError`` after ``timeout``), watching."""
        import multiprocessing as mp

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic()))
            try:
                return result.get(wait)
            except mp.TimeoutError:
                self.check()
                if deadline is not None and time.monotonic() >= deadline:
                    raise


def write_outputs(files: Mapping[str, tuple[str | os.PathLike[str], bytes | str]]) -> dict[str, Path]:
    """Write each ``name -> (path, content)`` atomically; returns ``name -> path``.

    Call this BEFORE recording ``ok``: a kill between the two only repeats the work.
    """
    out: dict[str, Path] = {}
    for name, (path, content) in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        out[name] = Path(path)
    return out


# ----------------------------------------------------------------------------- runner


@dataclasses.dataclass
class ShardStats:
    """Counts for one run of one shard of one stage (also stored in the completion marker)."""

    stage: str
    shard: str
    assigned: int = 0
    already_done: int = 0
    processed: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    complete: bool = False

    def line(self) -> str:
        rate = self.processed / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.stage}[{self.shard}]: assigned={self.assigned} already_done={self.already_done} "
            f"processed={self.processed} ok={self.ok} failed={self.failed} skipped={self.skipped} "
            f"in {self.seconds:.1f}s ({rate:.2f} papers/s){' complete' if self.complete else ''}"
        )


class StageRunner:
    """Runs one shard of one stage over papers, recording every outcome in the manifest."""

    def __init__(
        self,
        manifest: Manifest,
        stage: str,
        *,
        shard_index: int | None = None,
        num_shards: int | None = None,
        retry_failed: bool = False,
        force: bool = False,
        progress: bool = True,
        outputs: Sequence[str | os.PathLike[str]] = (),
    ):
        env_index, env_count = shard_from_env()
        self.outputs = [Path(o) for o in outputs]  # where the stage writes: checked before any paper
        self.shard_index = env_index if shard_index is None else shard_index
        self.num_shards = env_count if num_shards is None else num_shards
        self.shard = shard_name(self.shard_index, self.num_shards)
        self.manifest = manifest
        self.stage = stage
        self.retry_failed = retry_failed
        self.force = force
        self.progress = progress
        self.stats = ShardStats(stage=stage, shard=self.shard)
        self.assigned: list[str] = []
        self._t0 = time.monotonic()

    @property
    def marker_path(self) -> Path:
        return self.manifest.dir / "done" / self.stage / f"{self.shard}.json"

    @staticmethod
    def _digest(ids: Sequence[str]) -> str:
        return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()

    def select(self, ids: Iterable[str] | None = None) -> list[str]:
        """This shard's papers still to do (``ids`` default: every paper in the manifest).

        Returns ``[]`` when the completion marker matches the current assignment (unless
        ``force``); with ``force`` or ``retry_failed`` the marker is ignored.
        """
        self._t0 = time.monotonic()
        if not self.manifest.papers_path.is_file():
            raise ManifestError(
                f"{self.manifest.papers_path}: not found: no manifest in this data root "
                "(run `astrollama data harvest` or `make-pdfs --root` first)"
            )
        # an unwritable output is found now, not as a per-paper failure recorded for every paper
        for where in (self.manifest.status_dir, *self.outputs):
            check_writable(where, "--root")
        source = self.manifest.ids() if ids is None else [check_paper_id(i, "--ids") for i in ids]
        self.assigned = shard_of(source, self.shard_index, self.num_shards)
        self.stats = ShardStats(stage=self.stage, shard=self.shard, assigned=len(self.assigned))
        marker = self._read_marker()
        if (
            marker is not None
            and not self.force
            and not self.retry_failed
            and marker.get("assigned_sha256") == self._digest(self.assigned)
        ):
            log.info("%s[%s]: complete (marker %s); nothing to do", self.stage, self.shard, self.marker_path)
            self.stats.already_done = len(self.assigned)
            self.stats.complete = True
            return []
        if self.force:
            todo = list(self.assigned)
        else:
            todo = self.manifest.pending(self.stage, self.assigned, retry_failed=self.retry_failed)
        self.stats.already_done = len(self.assigned) - len(todo)
        log.info(
            "%s[%s]: %d assigned, %d already done, %d to do",
            self.stage,
            self.shard,
            len(self.assigned),
            self.stats.already_done,
            len(todo),
        )
        return todo

    def _read_marker(self) -> dict[str, Any] | None:
        import os

        from astrollama.errors import is_environment_error
        from astrollama.untrusted import read_json

        if not os.path.lexists(self.marker_path):
            return None
        try:  # regular, bounded JSON object (astrollama.untrusted)
            return read_json(self.marker_path, "results")
        except (InputError, OSError) as exc:
            if isinstance(exc, OSError) and is_environment_error(exc):
                raise
            log.warning("%s: unreadable completion marker (%s); ignoring it", self.marker_path, exc)
            return None

    # ---- recording
    def _count(self, status: str) -> None:
        self.stats.processed += 1
        setattr(self.stats, status, getattr(self.stats, status) + 1)

    def ok(
        self, paper_id: str, outputs: Mapping[str, str | os.PathLike[str]] | None = None, **attrs: Any
    ) -> StatusRecord:
        """Record success (write the outputs first, atomically: see :func:`write_outputs`)."""
        rec = self.manifest.record(self.stage, paper_id, "ok", shard=self.shard, outputs=outputs, **attrs)
        self._count("ok")
        return rec

    def fail(self, paper_id: str, error: str, **attrs: Any) -> StatusRecord:
        """Record a failure with its one-line reason (terminal unless ``retry_failed``)."""
        log.warning("%s[%s]: %s failed: %s", self.stage, self.shard, paper_id, error)
        rec = self.manifest.record(self.stage, paper_id, "failed", error, shard=self.shard, **attrs)
        self._count("failed")
        return rec

    def skip(self, paper_id: str, reason: str, **attrs: Any) -> StatusRecord:
        """Record a non-terminal skip (e.g. an upstream file is not there yet)."""
        rec = self.manifest.record(self.stage, paper_id, "skipped", reason, shard=self.shard, **attrs)
        self._count("skipped")
        return rec

    def write_ok(
        self, paper_id: str, files: Mapping[str, tuple[str | os.PathLike[str], bytes | str]], **attrs: Any
    ) -> StatusRecord:
        """Write ``name -> (path, content)`` atomically, then record ``ok`` with those outputs."""
        return self.ok(paper_id, write_outputs(files), **attrs)

    def record_outcome(self, paper_id: str, outcome: Outcome | Mapping[str, Any] | None) -> StatusRecord:
        if outcome is None:
            return self.ok(paper_id)
        if not isinstance(outcome, Outcome):
            return self.ok(paper_id, outputs=dict(outcome))
        if outcome.status == "ok":
            return self.ok(paper_id, outputs=outcome.outputs, **outcome.attrs)
        if outcome.status == "failed":
            return self.fail(paper_id, outcome.error or "failed", **outcome.attrs)
        if outcome.status == "skipped":
            return self.skip(paper_id, outcome.error or "skipped", **outcome.attrs)
        raise ManifestError(f"unknown outcome status {outcome.status!r} for {paper_id}")

    @contextlib.contextmanager
    def isolate(self, paper_id: str) -> Iterator[None]:
        """Record any exception inside the block as this paper's failure and carry on.

        ``SkipItem`` records ``skipped``; ``StageAbort``, ``KeyboardInterrupt`` and ``SystemExit``
        propagate, and so does a failure of the machine (disk full, I/O error, out of memory, a
        killed worker: :func:`is_retryable`), unrecorded, so that the rerun does the paper.
        """
        try:
            yield
        except StageAbort:
            raise
        except SkipItem as exc:
            self.skip(paper_id, str(exc) or "skipped")
        except Exception as exc:
            if is_retryable(exc):
                log.error(
                    "%s[%s]: %s: %s (not recorded; the rerun retries it)",
                    self.stage,
                    self.shard,
                    paper_id,
                    describe_error(exc),
                )
                if isinstance(exc, MemoryError):
                    raise EnvironmentFault(f"{self.stage} {paper_id}: out of memory") from exc
                raise
            self.fail(paper_id, describe_error(exc))

    # ---- driving
    def run(
        self,
        fn: Callable[[str], Outcome | Mapping[str, Any] | None],
        ids: Iterable[str] | None = None,
    ) -> ShardStats:
        """Call ``fn(paper_id)`` for every pending paper of this shard and record the outcome.

        ``fn`` returns an :class:`Outcome`, a mapping of outputs (-> ``ok``) or None (-> ``ok``);
        it raises :class:`SkipItem` to skip, anything else to fail that paper only.
        """
        todo = self.select(ids)
        items = self._progress(todo)
        try:
            for pid in items:
                with self.isolate(pid):
                    outcome = fn(pid)
                    self.record_outcome(pid, outcome)
        finally:  # a fault stops the shard: close the bar before the CLI prints its one line
            getattr(items, "close", lambda: None)()
        return self.finish()

    def _progress(self, items: list[str]) -> Iterable[str]:
        if not self.progress or not items:
            return items
        from tqdm import tqdm

        return tqdm(items, desc=f"{self.stage}[{self.shard}]", unit="paper", mininterval=2.0)

    def finish(self) -> ShardStats:
        """Log the shard's stats; write the completion marker if every assigned paper is terminal."""
        self.stats.seconds = time.monotonic() - self._t0
        if not self.stats.complete:
            remaining = self.manifest.pending(self.stage, self.assigned)
            if not remaining:
                self.stats.complete = True
                atomic_write_json(
                    self.marker_path,
                    {
                        **dataclasses.asdict(self.stats),
                        "assigned_sha256": self._digest(self.assigned),
                        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                )
        log.info(self.stats.line())
        return self.stats


def add_shard_args(parser: Any) -> None:
    """Add ``--shard-index/--num-shards/--retry-failed/--force`` to a stage's CLI parser."""
    from astrollama.cli_args import number

    parser.add_argument(
        "--shard-index",
        type=number(int, min=0),
        default=None,
        help="this shard (default: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, else 0)",
    )
    parser.add_argument(
        "--num-shards",
        type=number(int, min=1),
        default=None,
        help="number of shards (default: SLURM_ARRAY_TASK_COUNT, else 1)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="redo papers recorded as failed")
    parser.add_argument("--force", action="store_true", help="redo every paper of the shard")


__all__ = [
    "SkipItem",
    "StageAbort",
    "Outcome",
    "describe_error",
    "is_retryable",
    "PoolWatch",
    "write_outputs",
    "ShardStats",
    "StageRunner",
    "add_shard_args",
]
