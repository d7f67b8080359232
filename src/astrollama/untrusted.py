"""The one reader of files from outside, and the checks on the values they hold.

Every file a command reads is untrusted: a config, a record, a paper's text, a benchmark table, a
checkpoint, a results file. Every reader in the package goes through this module, so the rules
below hold everywhere:

* **Regular files only.** The path is opened without blocking (``O_NONBLOCK``) and checked with
  ``fstat`` before a byte is read: a FIFO, a device (``/dev/zero``), a socket or a directory in a
  file's place is a one-line error, never a hang. Files handed to another library by name
  (parquet, safetensors, tokenizers) are checked the same way first (:func:`check_file`).
* **Bounded.** Each kind of file has a size cap (:data:`LIMITS`); a file over it is refused from its
  ``stat`` size, and reads stop at the cap even where ``stat`` lies (``/proc``).
* **Confined.** Where a command was given a root directory (a data root, a results directory), a
  path read under it is resolved (symlinks followed) and must stay inside it (:func:`confine`).
* **Typed.** Text must be UTF-8 (the error names the byte offset); JSON must parse and holds no lone
  surrogate (``"\\ud800"``); numbers, flags and enums are checked with :func:`strict_bool`,
  :func:`int_in_range` and :func:`check_text`.

Every problem is an :class:`~astrollama.errors.InputError` (or the caller's subclass) with one
line ``<file>: <field>: <problem>``; the CLI prints it and exits 2. Machine faults (EIO, ENOSPC)
propagate as ``OSError`` and exit 1.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from astrollama.errors import InputError, is_environment_error

KiB, MiB, GiB = 2**10, 2**20, 2**30

# Size caps by kind of file (our choices: each far above any real file of its kind, far below what
# would exhaust a laptop's memory or disk).
LIMITS: dict[str, int] = {
    "config": 4 * MiB,  # YAML/JSON configs: recipes, DeepSpeed, prompts, adapter_config, meta.json
    "results": 64 * MiB,  # a results/summary JSON (eval outputs, stats, markers)
    "record": 64 * MiB,  # one JSONL line (questions, predictions, manifest rows)
    "jsonl": 64 * GiB,  # a whole JSONL file (read line by line, one line in memory)
    "text": 64 * MiB,  # one paper's text: .mmd, .txt, a per-paper .json, an id list
    "tex": 64 * MiB,  # one LaTeX source file
    "shard": 2 * GiB,  # one LMFlow dataset file (read whole)
    "table": 16 * GiB,  # a parquet / CSV benchmark or SFT table (streamed by pyarrow/pandas)
    "pdf": 512 * MiB,  # one paper's PDF
    "eprint": 1 * GiB,  # one paper's source archive (its unpacked size is capped separately)
    "weights": 1024 * GiB,  # one safetensors/bin weights file (memory-mapped, never read whole)
    "safetensors_header": 100 * MiB,  # the JSON header of a safetensors file (the format's own cap)
    "tokenizer": 256 * MiB,  # tokenizer.json, vocab files, GGUF metadata aside
    "png": 64 * MiB,  # a plot copied into a report
}

_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _what(mode: int) -> str:
    for test, name in _TYPES:
        if test(mode):
            return name
    return "not a regular file"


def _limit(kind: str) -> int:
    try:
        return LIMITS[kind]
    except KeyError:
        raise ValueError(f"unknown file kind {kind!r}; one of {sorted(LIMITS)}") from None


def _size(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or root in path.parents


def confine(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    error: type[InputError] = InputError,
    field: str = "(path)",
    where: str | os.PathLike[str] | None = None,
) -> Path:
    """``path`` (relative paths are taken under ``root``) resolved, symlinks followed; refused
    unless it stays inside ``root``. ``where`` names the file that gave the path (default: it)."""
    r = Path(root).resolve()
    p = Path(path)
    if "\0" in str(p):
        raise error(f"{where or p}: {field}: a NUL byte in the path")
    full = (p if p.is_absolute() else r / p).resolve()
    if not inside(full, r):
        raise error(f"{where or p}: {field}: {str(path)!r} leads outside {r}")
    return full


def _os_problem(e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno == errno.ELOOP:
        return "a symlink loop"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.ENOTDIR:
        return "a parent is not a directory"
    if e.errno == errno.ENAMETOOLONG:
        return "path too long"
    return e.strerror or type(e).__name__


def open_regular(
    path: str | os.PathLike[str],
    kind: str,
    *,
    root: str | os.PathLike[str] | None = None,
    error: type[InputError] = InputError,
    field: str | None = None,
) -> tuple[BinaryIO, int]:
    """``(binary file, size)`` of a regular file of ``kind``, opened without blocking.

    Refused (``error``, one line): missing, unreadable, not a regular file (FIFO, device, socket,
    directory), over the cap of ``kind``, or (with ``root``) resolving outside ``root``."""
    cap = _limit(kind)
    p = Path(path)
    at = f"{path}: {field}: " if field else f"{path}: "
    if root is not None:
        p = confine(p, root, error=error, field=field or "(path)")
    try:
        fd = os.open(
            p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
        )
    except OSError as e:
        if is_environment_error(e) and e.errno != errno.EAGAIN:
            raise
        if e.errno == errno.ENXIO:  # a socket
            raise error(f"{at}not a regular file") from None
        raise error(f"{at}{_os_problem(e)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{at}is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):  # a FIFO, a device, a socket: never read
            raise error(f"{at}not a regular file")
        if st.st_size > cap:
            raise error(f"{at}{_size(st.st_size)}, over the {_size(cap)} limit for a {kind} file")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return fh, st.st_size


def check_file(
    path: str | os.PathLike[str],
    kind: str,
    *,
    root: str | os.PathLike[str] | None = None,
    error: type[InputError] = InputError,
    field: str | None = None,
) -> Path:
    """Check a file another library will open by name (parquet, safetensors, tokenizer) by the
    rules of :func:`open_regular`; returns the path (resolved inside ``root`` when given)."""
    fh, _ = open_regular(path, kind, root=root, error=error, field=field)
    fh.close()
    return confine(path, root, error=error, field=field or "(path)") if root is not None else Path(path)


def check_dir(
    path: str | os.PathLike[str], *, error: type[InputError] = InputError, what: str = "a directory"
) -> Path:
    """``path`` must be an existing directory (one-line error otherwise)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        if is_environment_error(e):
            raise
        raise error(f"{p}: (path): {_os_problem(e)}; expected {what}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise error(
            f"{p}: (path): is {_what(st.st_mode) if not stat.S_ISREG(st.st_mode) else 'a file'}, not {what}"
        )
    return p


def read_bytes(
    path: str | os.PathLike[str],
    kind: str,
    *,
    root: str | os.PathLike[str] | None = None,
    error: type[InputError] = InputError,
    field: str | None = None,
) -> bytes:
    """The bytes of a regular file of ``kind`` (see :func:`open_regular`), at most its cap."""
    cap = _limit(kind)
    fh, _ = open_regular(path, kind, root=root, error=error, field=field)
    with fh:
        data = fh.read(cap + 1)
    if len(data) > cap:  # stat said less (a /proc file, a file growing under us)
        raise error(f"{path}: {field + ': ' if field else ''}over the {_size(cap)} limit for a {kind} file")
    return data


def decode(
    data: bytes,
    where: str | os.PathLike[str],
    *,
    error: type[InputError] = InputError,
    field: str | None = None,
) -> str:
    """``data`` as UTF-8 text; otherwise one line naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{where}: {field + ': ' if field else ''}not UTF-8 text (byte {e.start})") from None


def read_text(
    path: str | os.PathLike[str],
    kind: str = "text",
    *,
    root: str | os.PathLike[str] | None = None,
    error: type[InputError] = InputError,
    field: str | None = None,
) -> str:
    """The UTF-8 text of a regular file of ``kind`` (bounded, typed; see the module doc)."""
    return decode(read_bytes(path, kind, root=root, error=error, field=field), path, error=error, field=field)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(
    text: str | bytes, where: str | os.PathLike[str], *, error: type[InputError] = InputError
) -> Any:
    """``json.loads`` with one-line errors; a lone surrogate escape anywhere is refused."""
    if isinstance(text, bytes):
        text = decode(text, where, error=error)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: (json): invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise error(f"{where}: (json): nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        check_text(obj, where, "(json)", error=error)
    return obj


def read_json(
    path: str | os.PathLike[str],
    kind: str = "config",
    *,
    root: str | os.PathLike[str] | None = None,
    error: type[InputError] = InputError,
    expect: type | None = dict,
) -> Any:
    """The JSON value of a regular file of ``kind``; ``expect`` (default ``dict``) is its type."""
    obj = parse_json(read_text(path, kind, root=root, error=error), path, error=error)
    if expect is not None and not isinstance(obj, expect):
        want = "an object" if expect is dict else expect.__name__
        raise error(f"{path}: (top level): must be {want}, got {type(obj).__name__}")
    return obj


# ------------------------------------------------------------------------------------- values


def check_text(
    value: Any, where: str | os.PathLike[str], field: str, *, error: type[InputError] = InputError
) -> Any:
    """Refuse a lone surrogate (``"\\ud800"``, valid JSON but not Unicode text) in any string of
    ``value`` (strings, lists and dicts, keys too); returns ``value``."""
    stack: list[tuple[str, Any]] = [(field, value)]
    while stack:
        name, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                raise error(
                    f"{where}: {name}: a lone surrogate (U+{ord(v[e.start]):04X}) at character {e.start}; "
                    "not Unicode text"
                ) from None
        elif isinstance(v, dict):
            for k, x in v.items():
                stack.append((name, k))
                stack.append((f"{name}.{k}" if name != "(json)" else str(k), x))
        elif isinstance(v, list):
            stack.extend((f"{name}[{i}]", x) for i, x in enumerate(v))
    return value


def strict_bool(
    value: Any, where: str | os.PathLike[str], field: str, *, error: type[InputError] = InputError
) -> bool:
    """``value`` must be a JSON/YAML boolean (``true``/``false``): ``"no"``, ``0`` or ``"false"``
    are refused, never read by truthiness."""
    if isinstance(value, bool):
        return value
    raise error(f"{where}: {field}: must be true or false, got {value!r:.40}")


def int_in_range(
    value: Any,
    where: str | os.PathLike[str],
    field: str,
    *,
    lo: int | None = None,
    hi: int | None = None,
    error: type[InputError] = InputError,
) -> int:
    """``value`` must be an integer (not a bool, not a float) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{where}: {field}: must be an integer, got {value!r:.40}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
        raise error(f"{where}: {field}: must be in {rng}, got {value}")
    return value


def number_in_range(
    value: Any,
    where: str | os.PathLike[str],
    field: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    error: type[InputError] = InputError,
) -> float:
    """``value`` must be a finite number (not a bool, not a string) in ``[lo, hi]`` (``(lo, hi]``
    with ``lo_open``)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error(f"{where}: {field}: must be a finite number, got {value!r:.40}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        rng = f"{'(' if lo_open else '['}{'' if lo is None else lo}, {'' if hi is None else hi}]"
        raise error(f"{where}: {field}: must be in {rng}, got {value}")
    return float(value)


# ------------------------------------------------------------------------------- safetensors


def safetensors_header(
    path: str | os.PathLike[str], *, error: type[InputError] = InputError
) -> dict[str, Any]:
    """The header of a safetensors file, checked against the file: a header length within the
    format's cap, JSON, and every tensor's byte range inside the data that follows it (a truncated
    file is refused here, not as a crash in the middle of a merge or an evaluation)."""
    fh, size = open_regular(path, "weights", error=error)
    with fh:
        head = fh.read(8)
        if len(head) < 8:
            raise error(f"{path}: (safetensors): {size} bytes, too short for a safetensors header")
        n = int.from_bytes(head, "little")
        if n > LIMITS["safetensors_header"] or 8 + n > size:
            raise error(f"{path}: (safetensors): header length {n} does not fit the file ({size} bytes)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{path}: (safetensors): the header is not JSON") from None
    if not isinstance(header, dict):
        raise error(f"{path}: (safetensors): the header is not an object")
    data = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        offs = t.get("data_offsets") if isinstance(t, dict) else None
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
            or not 0 <= offs[0] <= offs[1]
        ):
            raise error(f"{path}: {name}: data_offsets: malformed ({offs!r:.60})")
        if offs[1] > data:
            raise error(
                f"{path}: {name}: ends at byte {offs[1]} of the data, the file holds {data} (truncated?)"
            )
    return header


def guard(
    call: Callable[[], Any],
    where: str | os.PathLike[str],
    what: str,
    *,
    error: type[InputError] = InputError,
    catch: tuple[type[BaseException], ...] = (Exception,),
) -> Any:
    """Run ``call`` (another library reading an input: a tokenizer, a checkpoint, a table); any
    exception it raises that is not the machine's fault becomes one line ``<where>: <what>: ...``."""
    try:
        return call()
    except InputError:
        raise
    except catch as e:
        if is_environment_error(e):
            raise
        msg = " ".join(str(e).split())[:300]
        raise error(f"{where}: {what}: cannot load ({type(e).__name__}: {msg})") from None


# ------------------------------------------------------------------------------- checkpoints

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt")


def check_model_dir(
    path: str | os.PathLike[str],
    *,
    error: type[InputError] = InputError,
    need_weights: bool = True,
) -> Path:
    """A local checkpoint directory, checked before a library loads it: every ``*.json`` a bounded
    JSON object, tokenizer files bounded regular files, every ``*.safetensors`` header consistent
    with its file (:func:`safetensors_header`), and weights in safetensors only: a pickle
    (``pytorch_model.bin`` and the like) can run code when loaded, so it is refused, never opened.
    Training-state pickles beside safetensors weights (``training_args.bin``) are left alone."""
    p = check_dir(path, error=error, what="a checkpoint directory")
    for f in sorted(p.iterdir()):
        if f.name.startswith("."):
            continue
        if f.suffix == ".json":
            read_json(f, "tokenizer" if f.name == "tokenizer.json" else "config", error=error)
        elif f.name in _TOKENIZER_FILES:
            check_file(f, "tokenizer", error=error)
    shards = sorted(p.glob("*.safetensors"))
    for f in shards:
        safetensors_header(f, error=error)
    if need_weights and not shards and ((p / "config.json").exists() or (p / "adapter_config.json").exists()):
        pickles = sorted(
            f.name for f in p.iterdir() if f.suffix in _PICKLE_SUFFIXES and f.name != "training_args.bin"
        )
        if pickles:
            raise error(
                f"{p / pickles[0]}: (weights): pickle weights are not loaded (a pickle can run code); "
                "convert the checkpoint to safetensors"
            )
        raise error(f"{p}: (weights): no *.safetensors weights in this checkpoint")
    return p


def sha256_file(
    path: str | os.PathLike[str],
    kind: str,
    *,
    root: str | os.PathLike[str] | None = None,
    error: type[InputError] = InputError,
) -> bytes:
    """SHA-256 digest of a regular file of ``kind``, read in chunks (never whole in memory)."""
    import hashlib

    fh, _ = open_regular(path, kind, root=root, error=error)
    h = hashlib.sha256()
    with fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.digest()
