"""The LMFlow ``text_only`` dataset format: the one reader and the one writer in this project.

What LMFlow accepts (docs/lmflow.md; checked against its source):

* ``dataset_path`` is a DIRECTORY; every ``*.json`` directly inside it is one JSON object
  ``{"type": "text_only", "instances": [{"text": "..."}, ...]}``. JSONL is not accepted.
* LMFlow HEAD sniffs ``"type"`` from the first and last 100 characters of each file, seeking in a
  text-mode file: the writer puts ``"type"`` first and escapes everything to ASCII so that a cut
  never lands inside a multi-byte character.
* LMFlow v0.0.8 rejects extra keys in instances: instances carry ``text`` only.
* Each file is read whole into RAM: the writer bounds shard size.

``read_text_only_dir`` applies the same rules, so a directory that passes here loads in LMFlow,
and the local engine sees exactly the documents LMFlow would see. ``summarize_dataset`` checks a
whole directory one shard at a time (the pre-launch check). Errors are one line
``<file>: <field>: <problem>``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from astrollama.errors import InputError, is_environment_error
from astrollama.io import atomic_write_text

TEXT_ONLY = "text_only"
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024  # 64 MiB per file keeps LMFlow's whole-file reads cheap
_SNIFF_CHARS = 100  # LMFlow HEAD reads this many characters from each end of a file


class LMFlowDataError(InputError):
    """A dataset directory or file LMFlow would reject (or silently mis-read)."""


def _encode_text_only(texts: list[str]) -> str:
    # "type" first; ensure_ascii=True so the sniffed prefix/suffix is pure ASCII.
    body = json.dumps([{"text": t} for t in texts], ensure_ascii=True)
    return '{"type": "text_only", "instances": ' + body + "}\n"


def write_text_only(path: str | os.PathLike[str], texts: Iterable[str]) -> Path:
    """Write one LMFlow ``text_only`` file atomically."""
    items = [str(t) for t in texts]
    return atomic_write_text(path, _encode_text_only(items))


@dataclass
class ShardWriter:
    """Stream documents into bounded ``text_only`` shards: ``<prefix>-00000.json``, ...

    Each shard is written atomically when it fills (or on ``close``), so an interrupted writer
    leaves only complete shards. Shard names depend only on the order of documents and the size
    bound, so the same input always gives byte-identical output.
    """

    out_dir: Path
    prefix: str = "shard"
    max_bytes: int = DEFAULT_SHARD_BYTES
    max_docs: int | None = None
    _buf: list[str] = field(default_factory=list, init=False)
    _buf_bytes: int = field(default=0, init=False)
    written: list[Path] = field(default_factory=list, init=False)
    n_docs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, text: str) -> None:
        size = len(json.dumps(text, ensure_ascii=True)) + 12
        full_bytes = self._buf and self._buf_bytes + size > self.max_bytes
        full_docs = self.max_docs is not None and len(self._buf) >= self.max_docs
        if full_bytes or full_docs:
            self.flush()
        self._buf.append(text)
        self._buf_bytes += size
        self.n_docs += 1

    def flush(self) -> None:
        if not self._buf:
            return
        path = self.out_dir / f"{self.prefix}-{len(self.written):05d}.json"
        write_text_only(path, self._buf)
        self.written.append(path)
        self._buf, self._buf_bytes = [], 0

    def close(self) -> list[Path]:
        self.flush()
        return self.written

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def write_text_only_shards(
    texts: Iterable[str], out_dir: str | os.PathLike[str], *, prefix: str = "shard",
    max_bytes: int = DEFAULT_SHARD_BYTES, max_docs: int | None = None,
) -> list[Path]:
    with ShardWriter(Path(out_dir), prefix=prefix, max_bytes=max_bytes, max_docs=max_docs) as w:
        for t in texts:
            w.add(t)
    return w.written


def dataset_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files LMFlow would load from ``path`` (a directory), sorted; errors name the path."""
    p = Path(path)
    if not p.exists():
        raise LMFlowDataError(f"{p}: dataset directory does not exist")
    if not p.is_dir():
        raise LMFlowDataError(
            f"{p}: LMFlow's dataset_path must be a directory of *.json files, not a file"
        )
    files = sorted(f for f in p.glob("*.json") if f.is_file() and not f.name.startswith("."))
    if not files:
        raise LMFlowDataError(f"{p}: no *.json files directly in this directory")
    return files


_TYPE_FIRST = re.compile(rb'^\s*\{\s*"type"\s*:')
_NON_ASCII = re.compile(rb"[\x80-\xff]")


def _load_text_only(f: Path) -> list[str]:
    """The texts of one ``text_only`` file, after every check LMFlow's reader implies.

    ``"type"`` must be the first key (LMFlow HEAD sniffs it from the file's first/last 100
    characters), the file ASCII (escaped, so a seek never lands inside a character), the JSON whole,
    ``type`` ``text_only``, ``instances`` a list of ``{"text": str}``. One shard is held at a time.
    """
    try:
        raw = f.read_bytes()
    except OSError as e:
        if is_environment_error(e):
            raise
        raise LMFlowDataError(f"{f}: (file): cannot read ({e.strerror or type(e).__name__})") from None
    if not raw.isascii():
        at = _NON_ASCII.search(raw).start()
        raise LMFlowDataError(
            f"{f}: (encoding): non-ASCII byte at offset {at}; LMFlow HEAD seeks into the file and can fail "
            "with UnicodeDecodeError. Rewrite with ensure_ascii=True (astrollama.lmflow_data.write_text_only)"
        )
    if not _TYPE_FIRST.match(raw[: _SNIFF_CHARS * 4]):
        raise LMFlowDataError(
            f'{f}: type: "type" must be the first key of the object; LMFlow HEAD looks for it in the '
            f"first or last {_SNIFF_CHARS} characters"
        )
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        cut = "" if raw.rstrip().endswith(b"}") else " (truncated: the file does not end with '}')"
        raise LMFlowDataError(f"{f}: (json): invalid JSON at line {e.lineno} column {e.colno}: {e.msg}{cut}") from None
    if not isinstance(obj, dict):
        raise LMFlowDataError(f"{f}: (top level): must be an object with 'type' and 'instances'")
    if obj.get("type") != TEXT_ONLY:
        raise LMFlowDataError(f"{f}: type: is {obj.get('type')!r}, expected 'text_only'")
    extra = set(obj) - {"type", "instances"}
    if extra:
        raise LMFlowDataError(f"{f}: (top level): unexpected keys {sorted(extra)}")
    inst = obj.get("instances")
    if not isinstance(inst, list):
        raise LMFlowDataError(f"{f}: instances: must be a list, got {type(inst).__name__}")
    for i, row in enumerate(inst):
        if not isinstance(row, dict) or set(row) != {"text"}:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise LMFlowDataError(
                f"{f}: instances[{i}]: must be {{'text': ...}} only (LMFlow v0.0.8 rejects extra keys); got {keys}"
            )
        if not isinstance(row["text"], str):
            raise LMFlowDataError(f"{f}: instances[{i}].text: must be a string, got {type(row['text']).__name__}")
    return [row["text"] for row in inst]


def iter_text_only_file(f: Path) -> Iterator[str]:
    """The documents of one ``text_only`` file (checked as :func:`_load_text_only` says)."""
    yield from _load_text_only(Path(f))


def read_text_only_dir(path: str | os.PathLike[str]) -> list[str]:
    """All documents of an LMFlow ``text_only`` directory, in LMFlow's file order."""
    docs: list[str] = []
    for f in dataset_files(path):
        docs.extend(_load_text_only(f))
    if not docs:
        raise LMFlowDataError(f"{path}: the dataset holds no instances")
    return docs


@dataclass(frozen=True)
class DatasetSummary:
    path: Path
    files: int
    documents: int
    characters: int


def summarize_dataset(path: str | os.PathLike[str]) -> DatasetSummary:
    """Check every shard of a directory as LMFlow will read it (one shard in memory at a time) and
    count it: what ``train launch --dry-run`` and ``train run`` do before anything starts."""
    files = dataset_files(path)
    docs = chars = 0
    for f in files:
        texts = _load_text_only(f)
        docs, chars = docs + len(texts), chars + sum(map(len, texts))
    if not docs:
        raise LMFlowDataError(f"{path}: instances: the dataset holds no instances")
    return DatasetSummary(Path(path), len(files), docs, chars)
