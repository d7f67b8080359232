"""The paper manifest: one table per data root, one row per arXiv paper, per-stage status.

Layout under ``<root>/manifest/``::

    papers.jsonl                    base rows (metadata), an append-only log merged by id
    status/<stage>/<shard>.jsonl    append-only status records, one file per (stage, shard)

Why logs and not SQLite: job arrays run hundreds of processes on a cluster file system (NFS,
Lustre, GPFS) where SQLite's locking is unsafe. Every writer appends whole JSON lines to its own
file, under a short ``flock`` per append, so

* a ``kill -9`` can at worst leave a torn last line: readers ignore it and the next append
  truncates it first;
* lines are ASCII (JSON escapes for other characters), so no line splitter can cut a record in two;
* reading merges everything: the base row of a paper is the merge of all its rows in log order
  (a row for an older version never overrides a newer one), and its status in a stage is the
  LATEST record for (id, stage) across all shard files;
* re-appending the same rows or statuses (a rerun after a kill) does not change the merged view,
  so every stage that records its work here is idempotent.

``Manifest.table()`` gives the merged view as a pandas DataFrame, ``compact()`` rewrites the
papers log in merged form (atomically), and ``astrollama data manifest export`` writes CSV or
Parquet. On-disk names use :func:`namespaced` ids (``astro-ph/0601001`` -> ``astro-ph_0601001``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from astrollama.data.shards import default_shard
from astrollama.errors import InputError
from astrollama.io import atomic_path, check_writable, claim_dir, claim_file, read_jsonl

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "skipped")
"""``ok`` and ``failed`` are terminal (a rerun skips the paper); ``skipped`` is not (retried)."""
TERMINAL = frozenset({"ok", "failed"})

PAPER_FIELDS = (
    "id",
    "version",
    "published",
    "updated",
    "categories",
    "title",
    "abstract",
    "authors",
    "doi",
    "journal_ref",
    "comments",
    "license",
    "source",
)
"""Known base-row fields, in table order. Extra fields are kept as extra columns."""

_NEW_ID = re.compile(r"^\d{4}\.\d{4,5}$")
_OLD_ID = re.compile(r"[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?/\d{7}")  # astro-ph/, math.GT/, cond-mat.str-el/
_ANY_ID = re.compile(r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?$")
_LOCAL_ID = re.compile(r"[a-z][a-z0-9-]*/[0-9A-Za-z][0-9A-Za-z.-]*")  # never "." or ".." on disk
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_data_root(directory: Path) -> bool:
    """A data root (the ownership rule of astrollama.io): it holds the paper manifest."""
    return (directory / "manifest").is_dir()


def writable_root(root: str | os.PathLike[str], what: str = "--root") -> Manifest:
    """The manifest of a data root a command is about to write, checked before any work."""
    return Manifest(root).claim(what)


class ManifestError(InputError):
    """Bad manifest input or a corrupt manifest file; the message names the file/row and field."""


# ----------------------------------------------------------------------------- ids


def is_arxiv_id(paper_id: str) -> bool:
    """True for a bare arXiv id: ``2401.01234``, ``0704.0001`` or ``astro-ph/0601001``."""
    return bool(_NEW_ID.fullmatch(paper_id) or _OLD_ID.fullmatch(paper_id))


def is_paper_id(paper_id: str) -> bool:
    """An id the manifest accepts: an arXiv id, or a local ``name/number`` id for papers that are
    not on arXiv (the bundled demo papers are ``demo/0001``...). No ``_``: see :func:`namespaced`."""
    return isinstance(paper_id, str) and bool(is_arxiv_id(paper_id) or _LOCAL_ID.fullmatch(paper_id))


def check_paper_id(paper_id: object, where: str = "paper id") -> str:
    """``paper_id`` if it is a valid id (see :func:`is_paper_id`), else :class:`ManifestError`.

    Every on-disk name is built from a checked id, so no id (``demo/..``, ``/``, ``a/b/c``, one
    with a NUL or a newline) can place a file outside its stage directory.
    """
    if not is_paper_id(paper_id):  # type: ignore[arg-type]
        raise ManifestError(f"{where}: not an arXiv id or a local 'name/number' id: {paper_id!r}")
    return paper_id  # type: ignore[return-value]


def parse_arxiv_id(text: str) -> tuple[str, int | None]:
    """Split ``'http://arxiv.org/abs/astro-ph/0601001v2'`` or ``'2401.01234v1'`` into (id, version).

    Accepts abs/pdf URLs, ``arXiv:`` prefixes and OAI identifiers (``oai:arXiv.org:...``).
    """
    s = text.strip()
    for prefix in ("oai:arXiv.org:", "arXiv:", "arxiv:"):
        if s.startswith(prefix):
            s = s[len(prefix) :]
    s = re.sub(r"^https?://[^/]+/(abs|pdf|e-print|src)/", "", s)
    s = s.removesuffix(".pdf")
    m = _ANY_ID.search(s)
    if not m or (m.start() and s[m.start() - 1] not in "/:"):
        raise ManifestError(f"not an arXiv id: {text!r}")
    version = m.group("version")
    return m.group("id"), int(version) if version else None


def namespaced(paper_id: str) -> str:
    """The on-disk name of a paper: ``astro-ph/0601001`` -> ``astro-ph_0601001``; new ids unchanged.

    Refuses anything that is not a paper id (:func:`check_paper_id`): the name is a single, safe
    path component."""
    return check_paper_id(paper_id).replace("/", "_")


def from_namespaced(name: str) -> str:
    """Inverse of :func:`namespaced`: ``astro-ph_0601001`` -> ``astro-ph/0601001``."""
    if "_" not in name:
        return name
    archive, _, number = name.rpartition("_")
    return f"{archive}/{number}"


def yymm(paper_id: str) -> str:
    """The year-month bucket of an id (``2401.01234`` -> ``2401``, ``astro-ph/0601001`` -> ``0601``).

    Output trees use ``<dir>/<yymm>/<namespaced id>.<ext>`` (like arXiv's own bulk layout) so that
    no directory holds 300k files.
    """
    return check_paper_id(paper_id).split("/")[-1][:4]


def paper_path(directory: str | os.PathLike[str], paper_id: str, suffix: str = "") -> Path:
    """``<directory>/<yymm>/<namespaced id><suffix>``, the standard per-paper location.

    The one place stage paths are built from ids: the result is always inside ``directory``."""
    name = f"{namespaced(paper_id)}{suffix}"
    if "/" in suffix or "\0" in suffix or name in (".", ".."):
        raise ManifestError(f"paper path suffix {suffix!r} would leave {directory}")
    return Path(directory) / yymm(paper_id) / name


# ----------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class StatusRecord:
    """One line of a status log: what a stage did to one paper."""

    id: str
    stage: str
    status: str
    error: str | None = None
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    time: float = 0.0
    shard: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "attrs": self.attrs,
                "error": self.error,
                "id": self.id,
                "outputs": self.outputs,
                "shard": self.shard,
                "stage": self.stage,
                "status": self.status,
                "time": self.time,
            },
            ensure_ascii=True,
        )


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ManifestError(f"invalid {kind} name {value!r} (letters, digits, '_', '.', '-')")
    return value


# ----------------------------------------------------------------------------- log files


def _lock(fh: IO[bytes]) -> None:
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    except OSError as exc:  # file systems without flock support (some NFS mounts)
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        log.debug("flock unsupported on %s; relying on one writer per file", fh.name)


def _truncate_torn_tail(fh: IO[bytes]) -> None:
    """If the file does not end in a newline (a writer was killed mid-line), cut the torn line."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    pos, block = size, 1 << 16
    while pos > 0:
        start = max(0, pos - block)
        fh.seek(start)
        chunk = fh.read(pos - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            cut = start + nl + 1
            break
        pos = start
    else:
        cut = 0
    log.warning("%s: dropping a torn last line (%d bytes) left by a killed writer", fh.name, size - cut)
    fh.truncate(cut)


def append_lines(
    path: Path, lines: Iterable[str], *, fsync: bool = False, lock_path: Path | None = None
) -> int:
    """Append whole lines to a JSONL log under an exclusive lock; repair a torn tail first.

    The lines go out in one ``write`` call. ``kill -9`` cannot lose what was written (the kernel
    has it); pass ``fsync=True`` to also survive a machine crash. ``lock_path`` locks a side file
    instead of the log itself (needed where the log may be replaced, see ``Manifest.compact``).
    Returns the number of lines.
    """
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    if not payload:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            if lock_path is not None:
                _lock(stack.enter_context(open(lock_path, "ab")))
            fh = stack.enter_context(open(path, "ab+"))
            if lock_path is None:
                _lock(fh)  # released when the file is closed
            _truncate_torn_tail(fh)
            fh.seek(0, os.SEEK_END)
            fh.write(payload)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
    except OSError as exc:  # disk full mid-append: name the log (a torn tail is cut by the next append)
        if exc.filename is None:
            exc.filename = str(path)
        raise
    return payload.count(b"\n")


# ----------------------------------------------------------------------------- rows


def normalise_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate one base row and bring lists/versions into canonical form."""
    if not isinstance(row, Mapping):
        raise ManifestError(f"{where}: expected a mapping, got {type(row).__name__}")
    out = dict(row)
    pid = out.get("id")
    if not is_paper_id(pid):
        raise ManifestError(
            f"{where}: field 'id' is not a bare arXiv id (or local 'name/number' id): {pid!r}"
        )
    version = out.get("version")
    if version is not None:
        if isinstance(version, str) and re.fullmatch(r"v?\d+", version):
            version = int(version.lstrip("v"))
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ManifestError(f"{where} ({pid}): field 'version' must be a positive int, got {version!r}")
        out["version"] = version
    for key in ("categories", "authors", "doi"):
        value = out.get(key)
        if isinstance(value, str):  # doi: several may be given in one string (harvest.split_dois)
            out[key] = (
                [value]
                if key == "authors"
                else value.split()
                if key == "categories"
                else [d for d in re.split(r"[\s,;]+", value) if d] or None
            )
        elif value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ManifestError(f"{where} ({pid}): field {key!r} must be a list of strings, got {value!r}")
    for key in ("published", "updated"):
        value = out.get(key)
        if value is not None and not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
            raise ManifestError(f"{where} ({pid}): field {key!r} must be 'YYYY-MM-DD', got {value!r}")
    return out


def _is_older(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """True when ``new`` describes an older state of the paper than ``old`` (it must not win)."""
    nv, ov = new.get("version"), old.get("version")
    if nv is not None and ov is not None and nv != ov:
        return nv < ov
    nu, ou = new.get("updated"), old.get("updated")
    return nu is not None and ou is not None and nu < ou


def merge_row(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a new base row into an existing one (idempotent: merging twice changes nothing).

    A row for an older version (or an older ``updated`` date) only fills fields the existing row
    lacks; otherwise its non-null fields override. Null fields never erase known values.
    """
    if old is None:
        return {k: v for k, v in new.items() if v is not None}
    merged = dict(old)
    older = _is_older(new, old)
    for key, value in new.items():
        if value is None:
            continue
        if not older or merged.get(key) is None:
            merged[key] = value
    return merged


# ----------------------------------------------------------------------------- manifest


class Manifest:
    """The manifest of one data root (``<root>/manifest``). Cheap to create; safe across processes.

    Paths recorded in ``outputs`` are relative to ``root`` (use :meth:`resolve` / :meth:`relative`).
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False):
        self.root = Path(root)
        if os.path.lexists(self.root) and not self.root.is_dir():  # a file, a FIFO, a dangling link
            raise ManifestError(f"{self.root}: (root): not a directory; a data root is a directory")
        self.dir = self.root / "manifest"
        self.papers_path = self.dir / "papers.jsonl"
        self.status_dir = self.dir / "status"
        self._papers_lock = self.dir / ".papers.lock"
        self.fsync = fsync
        self._papers_cache: tuple[tuple[int, int], dict[str, dict[str, Any]]] | None = None

    def __repr__(self) -> str:
        return f"Manifest({str(self.root)!r})"

    def require(self) -> Manifest:
        """``self``, refused unless the root holds a manifest (for commands that only read one)."""
        if not self.dir.is_dir():
            raise ManifestError(
                f"{self.root}: (root): not a data root (no manifest/ directory); harvest into it first"
            )
        return self

    # ---- paths
    def resolve(self, rel: str | os.PathLike[str]) -> Path:
        """An ``outputs`` path (relative to the data root) as a real path.

        Status logs are input too: a path that is absolute or climbs out with ``..`` (a tampered
        record) is a :class:`ManifestError`, so no stage reads a file outside the data root."""
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts or "\0" in str(rel):
            raise ManifestError(f"{self.status_dir}: field 'outputs': {str(rel)!r} is outside the data root")
        from astrollama.untrusted import inside

        full = self.root / p
        if not inside(full.resolve(), self.root.resolve()):  # a symlink out of the root (a planted file)
            raise ManifestError(f"{full}: (path): a symlink leads outside the data root {self.root}")
        return full

    def relative(self, path: str | os.PathLike[str]) -> str:
        """A path under the data root as the relative POSIX string stored in ``outputs``."""
        p = Path(path)
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(p)

    # ---- base rows
    def claim(self, what: str = "--root") -> Manifest:
        """Check that this data root may be written (astrollama.io ownership): it does not exist, is
        empty, or already holds a manifest; and it is writable. Returns ``self``."""
        claim_dir(self.root, "data", legacy=(is_data_root,), what=what)
        check_writable(self.dir, what)
        return self

    def upsert_papers(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Validate and append base rows (merged by id on read). Returns the number of rows.

        Validation happens before anything is written: a bad row raises :class:`ManifestError`
        naming the row and field and nothing is appended.
        """
        clean = [normalise_row(r, f"row {i}") for i, r in enumerate(rows)]
        n = append_lines(
            self.papers_path,
            (json.dumps(r, ensure_ascii=True, sort_keys=True) for r in clean),
            fsync=self.fsync,
            lock_path=self._papers_lock,
        )
        self._papers_cache = None
        return n

    def papers(self) -> dict[str, dict[str, Any]]:
        """All base rows, merged by id, sorted by id. Do not mutate the returned dicts."""
        try:
            st = self.papers_path.stat()
            key = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            return {}
        if self._papers_cache and self._papers_cache[0] == key:
            return self._papers_cache[1]
        result = dict(sorted(self._merged_rows(None).items()))
        self._papers_cache = (key, result)
        return result

    def merged_fields(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """:meth:`papers` reduced to ``fields`` (and what the merge compares, ``version`` and
        ``updated``), read line by line: each merged value is the one :meth:`papers` gives, and a
        paper costs its fields, not its whole metadata row (the build's abstracts)."""
        return self._merged_rows({"id", "version", "updated", *fields})

    def _merged_rows(self, keep: set[str] | None) -> dict[str, dict[str, Any]]:
        """The base rows merged by id, read line by line; ``keep``: only these fields of each row."""
        merged: dict[str, dict[str, Any]] = {}
        for lineno, row in read_jsonl(
            self.papers_path, error=ManifestError, tolerate_torn_tail=True, missing_ok=True
        ):
            pid = row.get("id")
            if not is_paper_id(pid):
                raise ManifestError(f"{self.papers_path}:{lineno}: field 'id': not a paper id: {pid!r}")
            merged[pid] = merge_row(
                merged.get(pid), row if keep is None else {k: v for k, v in row.items() if k in keep}
            )
        return merged

    def get(self, paper_id: str) -> dict[str, Any] | None:
        """The merged base row of one paper, or None."""
        return self.papers().get(paper_id)

    def ids(self) -> list[str]:
        return list(self.papers())

    def compact(self) -> int:
        """Rewrite ``papers.jsonl`` as one merged row per paper (atomic). Returns the row count.

        Holds the same lock as :meth:`upsert_papers`, so concurrent upserts are not lost.
        """
        from astrollama.io import file_lock

        with file_lock(self._papers_lock):
            self._papers_cache = None
            rows = self.papers()
            with atomic_path(self.papers_path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                for row in rows.values():
                    fh.write(json.dumps(row, ensure_ascii=True, sort_keys=True) + "\n")
            self._papers_cache = None
        return len(rows)

    # ---- status
    def status_path(self, stage: str, shard: str) -> Path:
        return self.status_dir / _check_name("stage", stage) / f"{_check_name('shard', shard)}.jsonl"

    def record(
        self,
        stage: str,
        paper_id: str,
        status: str,
        error: str | None = None,
        *,
        shard: str | None = None,
        outputs: Mapping[str, str | os.PathLike[str]] | None = None,
        **attrs: Any,
    ) -> StatusRecord:
        """Append one status record for (stage, paper). ``outputs`` maps names to file paths.

        Output paths are stored relative to the data root: a ``Path`` (or an absolute string) is
        a file-system path and is made relative; a relative string is taken as already relative
        to the data root.

        ``shard`` defaults to the job-array task (see ``shards.default_shard``). Extra keyword
        arguments are stored in ``attrs`` (must be JSON-serialisable).
        """
        rec = self._make_record(stage, paper_id, status, error, shard, outputs, attrs)
        append_lines(self.status_path(stage, rec.shard), [rec.to_json()], fsync=self.fsync)
        return rec

    def record_many(self, records: Iterable[StatusRecord]) -> int:
        """Append many pre-built records (one write per shard file); for batched stages."""
        by_file: dict[Path, list[str]] = {}
        for rec in records:
            by_file.setdefault(self.status_path(rec.stage, rec.shard), []).append(rec.to_json())
        return sum(append_lines(p, lines, fsync=self.fsync) for p, lines in by_file.items())

    def make_record(
        self,
        stage: str,
        paper_id: str,
        status: str,
        error: str | None = None,
        *,
        shard: str | None = None,
        outputs: Mapping[str, str | os.PathLike[str]] | None = None,
        **attrs: Any,
    ) -> StatusRecord:
        """Build (and validate) a record without writing it; see :meth:`record_many`."""
        return self._make_record(stage, paper_id, status, error, shard, outputs, attrs)

    def _make_record(self, stage, paper_id, status, error, shard, outputs, attrs) -> StatusRecord:
        if shard is None:
            shard = default_shard()
        _check_name("stage", stage)
        if status not in STATUSES:
            raise ManifestError(f"status must be one of {STATUSES}, got {status!r} ({stage}, {paper_id})")
        if not is_paper_id(paper_id):
            raise ManifestError(f"record for stage {stage!r}: field 'id' is not a paper id: {paper_id!r}")
        if status == "failed" and not error:
            raise ManifestError(f"a failed record needs an error message ({stage}, {paper_id})")
        outs = {
            k: (v if isinstance(v, str) and not os.path.isabs(v) else self.relative(v))
            for k, v in (outputs or {}).items()
        }
        try:
            json.dumps(attrs)
        except TypeError as exc:
            raise ManifestError(f"record ({stage}, {paper_id}): attrs not JSON-serialisable: {exc}") from None
        return StatusRecord(
            id=paper_id,
            stage=stage,
            status=status,
            error=error,
            outputs=outs,
            attrs=dict(attrs),
            time=time.time(),
            shard=_check_name("shard", shard),
        )

    def stages(self) -> list[str]:
        """Stage names that have any status log."""
        if not self.status_dir.is_dir():
            return []
        return sorted(p.name for p in self.status_dir.iterdir() if p.is_dir())

    def _records(self, stage: str) -> Iterator[dict[str, Any]]:
        """Every record of ``stage``'s status logs, shard file by shard file, each checked (an id
        and a known status; a torn last line is skipped): what :meth:`status` and
        :meth:`ok_outputs` keep the latest of."""
        directory = self.status_dir / _check_name("stage", stage)
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("*.jsonl")):
            for lineno, obj in read_jsonl(
                path, error=ManifestError, tolerate_torn_tail=True, missing_ok=True
            ):
                if obj.get("status") not in STATUSES or not is_paper_id(obj.get("id")):
                    raise ManifestError(f"{path}:{lineno}: bad status record (fields 'id'/'status')")
                yield obj

    def status(self, stage: str) -> dict[str, StatusRecord]:
        """The latest record per paper in ``stage`` (across all shard files)."""
        latest: dict[str, dict[str, Any]] = {}
        for obj in self._records(stage):
            pid = obj["id"]
            prev = latest.get(pid)
            if prev is None or obj.get("time", 0.0) >= prev.get("time", 0.0):
                latest[pid] = obj
        fields = {f.name for f in dataclasses.fields(StatusRecord)}
        return {
            pid: StatusRecord(**{k: v for k, v in obj.items() if k in fields}) for pid, obj in latest.items()
        }

    def ok_outputs(
        self, stage: str, output: str, attrs: Sequence[str] = ()
    ) -> dict[str, tuple[str, tuple[Any, ...]]]:
        """``{id: (outputs[output], (attrs...))}`` of the papers whose latest ``stage`` record is
        ``ok``, sorted by id: what the build needs of a stage, and no more. Read line by line and
        checked as :meth:`status` does; it keeps ~0.2 KB per paper where :meth:`status` holds every
        record's fields (~2.5 KB per paper at the peak: 1 GB at 400,000 papers)."""
        latest: dict[str, tuple[float, str, str, tuple[Any, ...]]] = {}
        for obj in self._records(stage):
            pid, t = obj["id"], obj.get("time", 0.0)
            prev = latest.get(pid)
            if prev is None or t >= prev[0]:
                outs, more = obj.get("outputs") or {}, obj.get("attrs") or {}
                out = outs.get(output, "") if isinstance(outs, dict) else ""
                flags = tuple(more.get(a) if isinstance(more, dict) else None for a in attrs)
                latest[pid] = (t, obj["status"], out, flags)
        return {pid: (v[2], v[3]) for pid, v in sorted(latest.items()) if v[1] == "ok"}

    def pending(
        self, stage: str, ids: Iterable[str] | None = None, *, retry_failed: bool = False
    ) -> list[str]:
        """Ids (from ``ids``, default all papers, in order) with no terminal record in ``stage``.

        ``ok`` and ``failed`` are terminal, so a rerun skips finished papers; ``retry_failed``
        makes failed ones pending again. ``skipped`` is never terminal.
        """
        done = {"ok"} if retry_failed else TERMINAL
        st = self.status(stage)
        source = self.ids() if ids is None else ids
        return [pid for pid in source if (rec := st.get(pid)) is None or rec.status not in done]

    def failures(self, stage: str) -> dict[str, str]:
        """id -> error message for papers whose latest record in ``stage`` is ``failed``."""
        return {pid: rec.error or "" for pid, rec in self.status(stage).items() if rec.status == "failed"}

    def summary(self) -> dict[str, dict[str, int]]:
        """stage -> {status: count} (latest status per paper)."""
        out: dict[str, dict[str, int]] = {}
        for stage in self.stages():
            counts: dict[str, int] = {}
            for rec in self.status(stage).values():
                counts[rec.status] = counts.get(rec.status, 0) + 1
            out[stage] = counts
        return out

    # ---- merged view
    def table(self):
        """Everything as a pandas DataFrame: base columns, ``<stage>_status``/``<stage>_error``
        for every stage, and one column per output name (``pdf``, ``src``, ``mmd``, ...)."""
        import pandas as pd

        papers = self.papers()
        rows = {pid: dict(row) for pid, row in papers.items()}
        out_time: dict[tuple[str, str], float] = {}
        stage_cols: list[str] = []
        output_cols: list[str] = []
        for stage in self.stages():
            stage_cols += [f"{stage}_status", f"{stage}_error"]
            for pid, rec in self.status(stage).items():
                row = rows.setdefault(pid, {"id": pid})
                row[f"{stage}_status"] = rec.status
                row[f"{stage}_error"] = rec.error
                for name, rel in rec.outputs.items():
                    if name not in output_cols:
                        output_cols.append(name)
                    if rec.time >= out_time.get((pid, name), float("-inf")):
                        row[name] = rel
                        out_time[(pid, name)] = rec.time
        extra = sorted(
            {k for r in rows.values() for k in r} - set(PAPER_FIELDS) - set(stage_cols) - set(output_cols)
        )
        columns = [*PAPER_FIELDS, *extra, *output_cols, *stage_cols]
        return pd.DataFrame([rows[k] for k in sorted(rows)], columns=columns)

    def export(self, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
        """Write :meth:`table` as CSV or Parquet (atomically). Lists become space/'; '-joined in CSV."""
        fmt = fmt or Path(path).suffix.lstrip(".")
        if fmt not in ("csv", "parquet"):
            raise ManifestError(f"export format must be csv or parquet, got {fmt!r} ({path})")
        claim_file(path, "data manifest export", is_own=None)  # not a directory, link or device; writable
        df = self.table()
        with atomic_path(path) as tmp:
            if fmt == "csv":
                for col, sep in (("categories", " "), ("authors", "; "), ("doi", " ")):
                    df[col] = df[col].map(lambda v, s=sep: s.join(v) if isinstance(v, list) else v)
                df.to_csv(tmp, index=False)
            else:
                df.to_parquet(tmp, index=False)
        return Path(path)


__all__ = [
    "Manifest",
    "ManifestError",
    "StatusRecord",
    "STATUSES",
    "TERMINAL",
    "PAPER_FIELDS",
    "namespaced",
    "from_namespaced",
    "parse_arxiv_id",
    "is_arxiv_id",
    "is_paper_id",
    "check_paper_id",
    "yymm",
    "paper_path",
    "merge_row",
    "normalise_row",
    "append_lines",
]
