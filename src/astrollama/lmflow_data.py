"""The LMFlow ``text_only`` and ``conversation`` dataset formats: the one reader and the one writer
in this project.

What LMFlow accepts (docs/lmflow.md; checked against its source):

* ``dataset_path`` is a DIRECTORY; every ``*.json`` directly inside it is one JSON object
  ``{"type": "text_only", "instances": [{"text": "..."}, ...]}``. JSONL is not accepted.
* LMFlow HEAD sniffs ``"type"`` from the first and last 100 characters of each file, seeking in a
  text-mode file: the writer puts ``"type"`` first and escapes everything to ASCII so that a cut
  never lands inside a multi-byte character.
* LMFlow v0.0.8 rejects extra keys in instances: instances carry ``text`` only.
* Each file is read whole into RAM: the writer bounds shard size.
* ``conversation`` files (SFT): ``{"type": "conversation", "instances": [{"system": "...",
  "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...]}]}``.
  LMFlow silently skips a conversation that does not open with a user turn and silently drops a
  trailing unanswered turn; here both are errors, as are other roles (``tools``/function turns are
  not supported), empty contents, and instances whose keys differ across the dataset (the HF json
  loader cannot merge files whose columns differ). Every file of one directory has one type.

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

from astrollama.errors import InputError
from astrollama.io import atomic_write_text

TEXT_ONLY = "text_only"
CONVERSATION = "conversation"
CONVERSATION_KEYS = {"messages"}, {"system", "conversation_id"}  # required, optional
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024  # 64 MiB per file keeps LMFlow's whole-file reads cheap
_SNIFF_CHARS = 100  # LMFlow HEAD reads this many characters from each end of a file


class LMFlowDataError(InputError):
    """A dataset directory or file LMFlow would reject (or silently mis-read)."""


def _encode(kind: str, instances: list) -> str:
    # "type" first; ensure_ascii=True so the sniffed prefix/suffix is pure ASCII.
    return f'{{"type": "{kind}", "instances": ' + json.dumps(instances, ensure_ascii=True) + "}\n"


def write_text_only(path: str | os.PathLike[str], texts: Iterable[str]) -> Path:
    """Write one LMFlow ``text_only`` file atomically."""
    return atomic_write_text(path, _encode(TEXT_ONLY, [{"text": str(t)} for t in texts]))


def write_conversations(path: str | os.PathLike[str], conversations: Iterable[dict]) -> Path:
    """Write one LMFlow ``conversation`` file atomically; every instance is checked first
    (:func:`check_conversation`), so a file written here loads in LMFlow and in the local engine."""
    items = list(conversations)
    for i, c in enumerate(items):
        check_conversation(c, f"{path}: instances[{i}]")
    return atomic_write_text(path, _encode(CONVERSATION, items))


@dataclass
class ShardWriter:
    """Stream documents (``text_only``: strings) or conversations (``kind="conversation"``: dicts as
    :func:`check_conversation` wants them) into bounded shards: ``<prefix>-00000.json``, ...

    Each shard is written atomically when it fills (or on ``close``), so an interrupted writer
    leaves only complete shards. Shard names depend only on the order of documents and the size
    bound, so the same input always gives byte-identical output.
    """

    out_dir: Path
    prefix: str = "shard"
    max_bytes: int = DEFAULT_SHARD_BYTES
    max_docs: int | None = None
    kind: str = TEXT_ONLY
    _buf: list = field(default_factory=list, init=False)
    _buf_bytes: int = field(default=0, init=False)
    written: list[Path] = field(default_factory=list, init=False)
    n_docs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, text: str | dict) -> None:
        if self.kind == CONVERSATION:
            check_conversation(text, f"{self.out_dir}: conversation {self.n_docs}")
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
        if self.kind == CONVERSATION:
            write_conversations(path, self._buf)
        else:
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
    texts: Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    prefix: str = "shard",
    max_bytes: int = DEFAULT_SHARD_BYTES,
    max_docs: int | None = None,
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
        raise LMFlowDataError(f"{p}: LMFlow's dataset_path must be a directory of *.json files, not a file")
    # not only regular files: a FIFO or device named *.json is refused when read, not skipped here
    files = sorted(f for f in p.glob("*.json") if not f.is_dir() and not f.name.startswith("."))
    if not files:
        raise LMFlowDataError(f"{p}: no *.json files directly in this directory")
    return files


_TYPE_FIRST = re.compile(rb'^\s*\{\s*"type"\s*:')
_NON_ASCII = re.compile(rb"[\x80-\xff]")


def _load_shard(f: Path) -> tuple[str, list]:
    """(type, instances) of one LMFlow file, after the checks every type shares.

    ``"type"`` must be the first key (LMFlow HEAD sniffs it from the file's first/last 100
    characters), the file ASCII (escaped, so a seek never lands inside a character), the JSON whole,
    ``type`` ``text_only`` or ``conversation``, ``instances`` a list. One shard is held at a time.
    """
    from astrollama.untrusted import read_bytes

    raw = read_bytes(f, "shard", root=f.parent, error=LMFlowDataError)  # a symlink may not leave the dataset
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
        raise LMFlowDataError(
            f"{f}: (json): invalid JSON at line {e.lineno} column {e.colno}: {e.msg}{cut}"
        ) from None
    if not isinstance(obj, dict):
        raise LMFlowDataError(f"{f}: (top level): must be an object with 'type' and 'instances'")
    if obj.get("type") not in (TEXT_ONLY, CONVERSATION):
        raise LMFlowDataError(f"{f}: type: is {obj.get('type')!r}, expected 'text_only' or 'conversation'")
    extra = set(obj) - {"type", "instances"}
    if extra:
        raise LMFlowDataError(f"{f}: (top level): unexpected keys {sorted(extra)}")
    inst = obj.get("instances")
    if not isinstance(inst, list):
        raise LMFlowDataError(f"{f}: instances: must be a list, got {type(inst).__name__}")
    return obj["type"], inst


def load_text_only(f: Path) -> list[str]:
    """The texts of one ``text_only`` file: :func:`_load_shard`, then ``{"text": str}`` instances."""
    kind, inst = _load_shard(f)
    if kind != TEXT_ONLY:
        raise LMFlowDataError(f"{f}: type: is {kind!r}, expected 'text_only'")
    for i, row in enumerate(inst):
        if not isinstance(row, dict) or set(row) != {"text"}:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise LMFlowDataError(
                f"{f}: instances[{i}]: must be {{'text': ...}} only (LMFlow v0.0.8 rejects extra keys); got {keys}"
            )
        if not isinstance(row["text"], str):
            raise LMFlowDataError(
                f"{f}: instances[{i}].text: must be a string, got {type(row['text']).__name__}"
            )
    return [row["text"] for row in inst]


def iter_text_only_file(f: Path) -> Iterator[str]:
    """The documents of one ``text_only`` file (checked as :func:`load_text_only` says)."""
    yield from load_text_only(Path(f))


def read_text_only_dir(path: str | os.PathLike[str]) -> list[str]:
    """All documents of an LMFlow ``text_only`` directory, in LMFlow's file order."""
    docs: list[str] = []
    for f in dataset_files(path):
        docs.extend(load_text_only(f))
    if not docs:
        raise LMFlowDataError(f"{path}: the dataset holds no instances")
    return docs


@dataclass(frozen=True)
class DatasetSummary:
    path: Path
    files: int
    documents: int  # conversations, for a conversation dataset
    characters: int
    kind: str = TEXT_ONLY


def summarize_dataset(path: str | os.PathLike[str]) -> DatasetSummary:
    """Check every shard of a directory as LMFlow will read it (one shard in memory at a time) and
    count it: what ``train launch --dry-run`` and ``train run`` do before anything starts."""
    files = dataset_files(path)
    kind = dataset_type(path)
    if kind == CONVERSATION:
        convs = read_conversation_dir(path)
        chars = sum(len(c.get("system", "")) + sum(len(m["content"]) for m in c["messages"]) for c in convs)
        return DatasetSummary(Path(path), len(files), len(convs), chars, kind)
    docs = chars = 0
    for f in files:
        texts = load_text_only(f)
        docs, chars = docs + len(texts), chars + sum(map(len, texts))
    if not docs:
        raise LMFlowDataError(f"{path}: instances: the dataset holds no instances")
    return DatasetSummary(Path(path), len(files), docs, chars)


def check_conversation(c: object, where: str) -> None:
    """Raise :class:`LMFlowDataError` (``<where>.<field>: <problem>``) unless ``c`` is a conversation
    both LMFlow and the local engine read the same way: ``messages`` alternating user / assistant,
    opening with user and ending with assistant, non-blank string contents; optional ``system``
    (string; "" = none) and ``conversation_id`` (string); no other keys."""
    required, optional = CONVERSATION_KEYS
    if not isinstance(c, dict):
        raise LMFlowDataError(f"{where}: must be an object with 'messages', got {type(c).__name__}")
    keys = set(c)
    if not required <= keys or keys - required - optional:
        raise LMFlowDataError(
            f"{where}: keys must be 'messages' plus optional 'system' and 'conversation_id'; "
            f"got {sorted(keys)}"
        )
    for key in optional & keys:
        if not isinstance(c[key], str):
            raise LMFlowDataError(f"{where}.{key}: must be a string, got {type(c[key]).__name__}")
    if c.get("system") and not c["system"].strip():
        raise LMFlowDataError(
            f'{where}.system: is blank but not empty (LMFlow reads it inconsistently); use ""'
        )
    msgs = c["messages"]
    if not isinstance(msgs, list) or not msgs or len(msgs) % 2:
        n = len(msgs) if isinstance(msgs, list) else type(msgs).__name__
        raise LMFlowDataError(
            f"{where}.messages: must be a non-empty list of user/assistant pairs, got {n} "
            "(LMFlow silently drops a trailing unanswered turn)"
        )
    for j, m in enumerate(msgs):
        role = ("user", "assistant")[j % 2]
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            got = sorted(m) if isinstance(m, dict) else type(m).__name__
            raise LMFlowDataError(f"{where}.messages[{j}]: must be {{'role', 'content'}} only, got {got}")
        if m["role"] != role:
            raise LMFlowDataError(
                f"{where}.messages[{j}].role: must be {role!r} (turns alternate, user first; "
                f"LMFlow silently skips other conversations), got {m['role']!r}"
            )
        if not isinstance(m["content"], str) or not m["content"].strip():
            raise LMFlowDataError(f"{where}.messages[{j}].content: must be a non-blank string")
    from astrollama.untrusted import check_text

    check_text(c, where, "(conversation)", error=LMFlowDataError)  # no lone surrogate in any string


def _load_conversations(f: Path) -> list[dict]:
    kind, inst = _load_shard(f)
    if kind != CONVERSATION:
        raise LMFlowDataError(f"{f}: type: is {kind!r}, expected 'conversation'")
    for i, c in enumerate(inst):
        check_conversation(c, f"{f}: instances[{i}]")
    return inst


def dataset_type(path: str | os.PathLike[str]) -> str:
    """``text_only`` or ``conversation``: the type of the first file (:func:`summarize_dataset` checks
    that every file has it)."""
    first = dataset_files(path)[0]
    return _load_shard(first)[0]


def read_conversation_dir(path: str | os.PathLike[str]) -> list[dict]:
    """All conversations of an LMFlow ``conversation`` directory, in LMFlow's file order, checked as
    :func:`check_conversation` says, with one set of instance keys across the directory."""
    convs: list[dict] = []
    keys: tuple[Path, frozenset] | None = None
    for f in dataset_files(path):
        for i, c in enumerate(_load_conversations(f)):
            if keys is None:
                keys = (f, frozenset(c))
            elif frozenset(c) != keys[1]:
                raise LMFlowDataError(
                    f"{f}: instances[{i}]: keys {sorted(c)} differ from {sorted(keys[1])} in {keys[0].name} "
                    "(LMFlow's json loader needs one set of columns: give every conversation the same keys)"
                )
            convs.append(c)
    if not convs:
        raise LMFlowDataError(f"{path}: the dataset holds no instances")
    return convs
