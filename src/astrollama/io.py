"""Atomic file output, and the one JSONL reader.

Output: write to a temporary name in the same directory, then rename. A reader never sees a
half-written file, and a killed process leaves either the old file or the new one, never a torn
one. Use these helpers for every output the project writes.

Input: ``read_jsonl`` reads every JSONL file the project takes in (questions, keys, held-out texts,
predictions, the paper manifest and its logs, metadata imports).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from astrollama.errors import InputError

log = logging.getLogger(__name__)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _name_path(exc: BaseException, path: Path) -> None:
    """Give an OSError without a file name (ENOSPC/EIO from ``write``) the output's path."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        exc.filename = str(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync and tmp.exists():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        if fsync:
            _fsync_dir(final.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _name_path(exc, final)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    ensure_ascii: bool = False,
    fsync: bool = True,
) -> Path:
    text = json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii, sort_keys=False)
    return atomic_write_text(path, text + "\n", fsync=fsync)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success rename it onto ``path``.

    ``path`` must not exist yet (a directory rename cannot replace a non-empty directory). On an
    exception the temporary directory is removed.
    """
    import shutil

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.rename(tmp, final)
        _fsync_dir(final.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_path(exc, final)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) held for the duration of the block."""
    import fcntl

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def save_png(fig, path: str | os.PathLike[str]) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    error: type[InputError] = InputError,
    tolerate_torn_tail: bool = False,
    missing_ok: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a UTF-8 JSONL file of objects.

    A bad line raises ``error`` with one line ``<file>: line N: <problem>`` (not UTF-8, invalid JSON,
    not an object). Lines are split on ``\\n`` only (U+2028 inside a JSON string is not a line end).
    ``tolerate_torn_tail`` ignores a last line without its newline (an append cut short, in an
    append-only log); ``missing_ok`` yields nothing for a missing file. The file is opened by
    :func:`astrollama.untrusted.open_regular` (a regular file, opened without blocking; inside
    ``root`` when given) and read one bounded line at a time (``LIMITS["record"]`` per line).
    A lone surrogate escape (``"\\ud800"``) in any string is refused.
    """
    from astrollama.untrusted import LIMITS, check_text, open_regular

    p = Path(path)
    if missing_ok and not os.path.lexists(p):
        return
    cap = LIMITS["record"]
    fh, _ = open_regular(p, "jsonl", root=root, error=error)
    with fh:
        lineno = 0
        while True:
            raw = fh.readline(cap + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > cap:
                raise error(f"{p}: line {lineno}: longer than the {cap // 2**20} MiB limit for one record")
            if tolerate_torn_tail and not raw.endswith(b"\n"):
                log.debug("%s: ignoring a torn last line (%d bytes)", p, len(raw))
                return
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{p}: line {lineno}: not UTF-8 text (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{p}: line {lineno}: invalid JSON ({e.msg})") from None
            except RecursionError:
                raise error(f"{p}: line {lineno}: nested too deeply") from None
            if not isinstance(obj, dict):
                raise error(f"{p}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
            if "\\u" in line:
                check_text(obj, f"{p}: line {lineno}", "(json)", error=error)
            yield lineno, obj
