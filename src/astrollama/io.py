"""Atomic, owned file output, and the one JSONL reader.

Output: write to a temporary name in the same directory, then rename. A reader never sees a
half-written file, and a killed process leaves either the old file or the new one, never a torn
one. Use these helpers for every output the project writes.

Ownership (the one rule for every output directory a command writes, docs/security.md): a command
writes only into a directory that does not exist yet, is empty, or carries ITS OWN marker
(:data:`OWNER_FILE`, ``{"owner": "<command>"}``, written into the directory with its first
content); an output of an earlier version of the same command is recognised by a
:class:`Legacy` rule (a file only that command writes, and nothing else in the directory but
what it writes), or any test ``(directory) -> bool`` given in its place. Anything else is someone's data: :func:`claim_dir` refuses it with one line
(:class:`OutputError`, exit 2) and touches nothing. Unwritable outputs are found before the work
starts (:func:`check_writable` creates and removes a probe file where the output will go, which
also catches read-only and immutable directories for root). :func:`owned_dir` renders a whole
output in a temporary directory and renames it into place at the end, so a failure leaves nothing.

Input: ``read_jsonl`` reads every JSONL file the project takes in (questions, keys, held-out texts,
predictions, the paper manifest and its logs, metadata imports).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from astrollama.errors import InputError, is_environment_error

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


# ----------------------------------------------------------------------------------------------
# Ownership of output directories
# ----------------------------------------------------------------------------------------------

OWNER_FILE = ".astrollama-owner.json"


class OutputError(InputError):
    """An output path the command may not write (someone else's data, not writable): exit 2."""


@dataclasses.dataclass(frozen=True)
class Legacy:
    """How an output of an earlier version of a command (before :data:`OWNER_FILE`) is recognised.

    ``marker``: a file only this command writes (``build.json``), or a JSON file whose parsed
    content ``check`` accepts (sft-convert's ``stats.json`` with ``"type": "conversation"``);
    ``only``: when given, the directory may hold nothing but these names (and hidden temporaries).
    """

    marker: str
    check: Callable[[Any], bool] | None = None
    only: frozenset[str] | None = None

    def __call__(self, directory: Path) -> bool:
        f = directory / self.marker
        if f.is_symlink() or not (f.is_file() or (self.check is None and f.is_dir())):
            return False
        if self.check is not None:
            try:
                if f.stat().st_size > 64 * 2**20 or not self.check(json.loads(f.read_bytes())):
                    return False
            except (OSError, ValueError):
                return False
        if self.only is not None:
            names = {p.name for p in directory.iterdir() if not p.name.startswith(".")}
            if not names <= self.only:
                return False
        return True


def owner_of(directory: str | os.PathLike[str]) -> str | None:
    """The owner named by ``directory``'s :data:`OWNER_FILE`, or None (absent or unreadable)."""
    f = Path(directory) / OWNER_FILE
    try:
        if f.is_symlink() or not f.is_file() or f.stat().st_size > 4096:
            return None
        obj = json.loads(f.read_bytes())
    except (OSError, ValueError):
        return None
    owner = obj.get("owner") if isinstance(obj, dict) else None
    return owner if isinstance(owner, str) else None


def write_owner(directory: str | os.PathLike[str], owner: str) -> Path:
    """Mark ``directory`` (which must exist) as ``owner``'s output."""
    return atomic_write_json(Path(directory) / OWNER_FILE, {"owner": owner}, fsync=False)


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: str | os.PathLike[str], what: str = "--out") -> None:
    """Refuse (:class:`OutputError`, one line naming ``path``) an output that cannot be written.

    ``path`` is the file or directory the command will create or replace: the directory that will
    receive it (its nearest existing ancestor) must be a directory where a file can be created
    (probed for real: ``os.access`` says yes to root on a read-only or immutable directory).
    """
    final = Path(path)
    if final.is_symlink():
        raise OutputError(f"{what}: {final}: is a symbolic link; give the real path")
    if final.is_dir():
        probe_dir = final
    else:
        if final.exists() and not final.is_file():
            raise OutputError(f"{what}: {final}: exists and is not a regular file or a directory")
        probe_dir = _nearest_existing(final.parent)
        if not probe_dir.is_dir():
            raise OutputError(f"{what}: {final}: cannot be created ({probe_dir} is not a directory)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".astrollama-probe.", dir=probe_dir)
    except OSError as e:
        if is_environment_error(e) and e.errno != errno.EROFS:
            raise
        raise OutputError(
            f"{what}: {final}: not writable ({e.strerror or type(e).__name__} in {probe_dir})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def claim_dir(
    path: str | os.PathLike[str],
    owner: str,
    *,
    legacy: Iterable[Callable[[Path], bool]] = (),
    what: str = "--out",
    create: bool = False,
) -> bool:
    """Check, before any work, that ``owner`` may write the output directory ``path``.

    Returns True when ``path`` holds an earlier output of ``owner`` (its marker, or a ``legacy``
    rule), False when it does not exist or is empty. A non-empty directory of anything else, a
    file, or a path that cannot be written is refused with :class:`OutputError` (one line naming
    ``path``); nothing is touched. ``create``: make the directory and write the marker now (for
    outputs written in place and resumed, e.g. an evaluation sweep).
    """
    final = Path(path)
    if final.is_symlink():
        raise OutputError(f"{what}: {final}: is a symbolic link; give the real directory")
    if final.exists() and not final.is_dir():
        raise OutputError(f"{what}: {final}: exists and is not a directory")
    own = False
    if final.is_dir():
        try:
            entries = [p.name for p in final.iterdir()]
        except OSError as e:
            raise OutputError(f"{what}: {final}: cannot be read ({e.strerror})") from None
        if entries:
            mark = owner_of(final)
            own = mark == owner or (mark is None and any(rule(final) for rule in legacy))
            if not own:
                whose = f"the output of `astrollama {mark}`" if mark else "not an output of this command"
                raise OutputError(
                    f"{what}: {final}: exists, is not empty and is {whose} "
                    f"(astrollama {owner} writes only into a new or empty directory or its own "
                    "earlier output); choose another path"
                )
    check_writable(final, what)
    if create:
        final.mkdir(parents=True, exist_ok=True)
        if owner_of(final) != owner:
            write_owner(final, owner)
    return own


def json_file_with(**fields: Any) -> Callable[[Path], bool]:
    """A test for :func:`claim_file`: the file is a JSON object holding ``fields`` (a command's own
    earlier output, e.g. ``json_file_with(metric="perplexity")``)."""

    def check(path: Path) -> bool:
        try:
            if path.stat().st_size > 256 * 2**20:
                return False
            obj = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and all(obj.get(k) == v for k, v in fields.items())

    return check


def claim_file(
    path: str | os.PathLike[str],
    owner: str,
    *,
    is_own: Callable[[Path], bool] | None,
    what: str = "--out",
) -> bool:
    """Check, before any work, that ``owner`` may write the output file ``path`` (atomically, later).

    A directory, a symbolic link or a non-regular file there is refused; an existing regular file
    is replaced only when ``is_own`` recognises it as ``owner``'s earlier output (``is_own=None``:
    a file whose name the user gave explicitly for this kind of output, replaced like a shell
    redirect); the place must be writable. Returns True when an earlier output is there.
    """
    final = Path(path)
    if final.is_symlink():
        raise OutputError(f"{what}: {final}: is a symbolic link; give the real path")
    if final.is_dir():
        raise OutputError(f"{what}: {final}: is a directory; give a file path")
    if final.exists() and not final.is_file():
        raise OutputError(f"{what}: {final}: exists and is not a regular file")
    own = final.is_file()
    if own and is_own is not None and not is_own(final):
        raise OutputError(
            f"{what}: {final}: exists and is not an output of `astrollama {owner}`; choose another path"
        )
    check_writable(final, what)
    return own


def _clear_stale(final: Path, owner: str) -> None:
    """Remove temporaries of ``final`` left by a killed run of ``owner`` (they carry its marker)."""
    import shutil

    with contextlib.suppress(OSError):
        for stale in final.parent.glob(f".{final.name}.*.tmp"):
            if stale.is_dir() and not stale.is_symlink() and owner_of(stale) == owner:
                shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def owned_dir(
    path: str | os.PathLike[str],
    owner: str,
    *,
    legacy: Iterable[Callable[[Path], bool]] = (),
    what: str = "--out",
) -> Iterator[Path]:
    """Render an output directory in a temporary directory, then put it at ``path``.

    :func:`claim_dir` runs first (refusals before any work). The temporary directory carries the
    marker from the start; on success it replaces ``path`` (an earlier output of ``owner``, or an
    empty directory) in two renames, and on any failure it is removed: ``path`` is then exactly as
    it was.
    """
    import shutil

    final = Path(path)
    claim_dir(final, owner, legacy=legacy, what=what)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(final, owner)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as e:  # the output exists and is writable, the directory holding it is not
        if is_environment_error(e) and e.errno != errno.EROFS:
            raise
        raise OutputError(
            f"{what}: {final}: not writable ({e.strerror or type(e).__name__} in {final.parent})"
        ) from None
    try:
        write_owner(tmp, owner)
        yield tmp
        # checked again: something may have appeared at ``path`` while the work ran
        claim_dir(final, owner, legacy=legacy, what=what)
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old.tmp", dir=final.parent))
            write_owner(trash, owner)
            os.rename(final, trash / "old")
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
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
