"""General SFT conversation sets and our astro Q&A -> LMFlow ``conversation`` shards.

``astrollama data sft-convert --input FORMAT=PATH ... --out DIR`` reads each input in the layout
its users download it in (docs/data-sft.md has the fields, sizes and licences, with sources):

* ``lima``: JSONL, one object per line with ``conversations`` (a list of strings, user and
  assistant alternating, user first) and ``source`` (GAIR/lima ``train.jsonl``; its ``test.jsonl``
  holds single prompts without replies and is refused);
* ``openorca``: parquet or JSONL with ``id``, ``system_prompt``, ``question``, ``response``;
* ``ultrachat``: parquet or JSONL with ``prompt``, ``prompt_id`` and ``messages`` (a list of
  ``{role, content}``), the ``ultrachat_200k`` layout;
* ``qa``: a data root whose ``qa`` stage has run (:mod:`astrollama.data.qa`): every kept
  question/answer pair of every ``ok`` paper.

Every input is untrusted: a wrong type, an empty turn, turns out of order, a turn above
``--max-turn-chars``, a broken JSONL line or an unreadable parquet stops the conversion with one
line ``<file>: <row>: <field>: <problem>`` (exit 2) and nothing is written. ``--limit N`` keeps
a seeded random sample of N rows of each input (in file order; only sampled rows are converted
and checked). Conversations are then decontaminated against the benchmark (the same n-gram code
as the CPT build, :mod:`astrollama.data.decontam`, reading the MCQ file with the scoring reader),
exact duplicates dropped, split into train/validation by a hash of the conversation id (of the
paper id for ``qa``, so a held-out paper's questions stay held out, as in the CPT corpora), and
written as bounded shards ``DIR/{train,validation}/<format>-NNNNN.json`` plus ``DIR/stats.json``.
The directory is built beside ``DIR`` and renamed into place when complete; the same inputs and
options give byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from astrollama.data.dedup import normalised_words, word_hashes
from astrollama.data.split import assign_split
from astrollama.errors import InputError, is_environment_error
from astrollama.io import Legacy, atomic_write_json, claim_dir, owned_dir, read_jsonl
from astrollama.lmflow_data import CONVERSATION, DEFAULT_SHARD_BYTES, ShardWriter, check_conversation
from astrollama.untrusted import check_text

# the output's owner marker (astrollama.io); an output of an earlier version is recognised by its
# stats.json of type "conversation" with nothing beside it but train/ and validation/
OWNER = "data sft-convert"
LEGACY = (
    Legacy(
        "stats.json",
        check=lambda st: isinstance(st, dict) and st.get("type") == CONVERSATION and "sources" in st,
        only=frozenset({"stats.json", "train", "validation"}),
    ),
)

log = logging.getLogger(__name__)

FORMATS = ("lima", "openorca", "ultrachat", "qa")
_COLUMNS = {
    "lima": ("conversations", "source"),
    "openorca": ("id", "system_prompt", "question", "response"),
    "ultrachat": ("prompt", "prompt_id", "messages"),
}


class ConversionError(InputError):
    """An SFT input file that cannot be converted; the message names the file, row and field."""


@dataclass(frozen=True)
class ConvertConfig:
    seed: int = 0
    validation_fraction: float = 0.02  # our choice
    max_turn_chars: int = 100_000  # our choice: far above any turn of the three sets
    max_turns: int = 64  # our choice
    decontam_ngram: int = 13
    decontam_min_matches: int = 1
    max_shard_bytes: int = DEFAULT_SHARD_BYTES

    def check(self) -> None:
        for name, ok, want in (
            ("--validation-fraction", 0 <= self.validation_fraction < 1, "in [0, 1)"),
            ("--max-turn-chars", self.max_turn_chars >= 1, ">= 1"),
            ("--max-turns", self.max_turns >= 2, ">= 2"),
            ("--decontam-ngram", self.decontam_ngram >= 1, ">= 1"),
            ("--decontam-min-matches", self.decontam_min_matches >= 1, ">= 1"),
            ("--max-shard-mb", self.max_shard_bytes > 0, "> 0"),
        ):
            if not ok:
                raise ConversionError(f"{name}: must be {want}")


@dataclass(frozen=True)
class Source:
    format: str
    path: Path
    limit: int | None = None


# ------------------------------------------------------------------------------------- reading


def _parquet_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from astrollama.untrusted import check_file

    check_file(path, "table", error=ConversionError)
    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise ConversionError(f"{path}: (columns): missing {missing}; the file has {sorted(names)}")
        i = 0
        for batch in pf.iter_batches(batch_size=1024, columns=[c for c in columns if c in names]):
            for row in batch.to_pylist():
                yield f"row {i}", row
                i += 1
    except ConversionError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        if isinstance(e, OSError) and is_environment_error(e):
            raise
        raise ConversionError(
            f"{path}: (parquet): cannot read ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None


def iter_rows(path: str | os.PathLike[str], columns: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` of a ``.jsonl`` or ``.parquet`` file (``where``: ``line N`` / ``row N``)."""
    from astrollama.untrusted import check_file

    p = Path(path)
    check_file(p, "jsonl" if p.suffix.lower() == ".jsonl" else "table", error=ConversionError)
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        for lineno, obj in read_jsonl(p, error=ConversionError):
            yield f"line {lineno}", obj
    elif suffix == ".parquet":
        yield from _parquet_rows(p, columns)
    else:
        raise ConversionError(f"{p}: unsupported file type {suffix!r} (use .jsonl or .parquet)")


def count_rows(path: Path) -> int:
    """Rows :func:`iter_rows` will yield (parquet metadata; non-blank JSONL lines)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        from astrollama.untrusted import check_file

        check_file(path, "table", error=ConversionError)
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as e:  # pyarrow raises several types for a broken footer
            if is_environment_error(e):
                raise
            raise ConversionError(f"{path}: (parquet): cannot read ({type(e).__name__}: {e})") from None
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return sum(1 for _ in iter_rows(path, ()))  # raises the one-line error
    return sum(1 for _ in read_jsonl(path, error=ConversionError))  # bounded lines, regular file


# ---------------------------------------------------------------------------------- converters


def _text(path: Path, where: str, field: str, v: Any, cfg: ConvertConfig, *, empty_ok: bool = False) -> str:
    if not isinstance(v, str):
        raise ConversionError(f"{path}: {where}: {field}: must be a string, got {type(v).__name__}")
    check_text(v, f"{path}: {where}", field, error=ConversionError)  # no lone surrogate
    if not empty_ok and not v.strip():
        raise ConversionError(f"{path}: {where}: {field}: empty turn")
    if len(v) > cfg.max_turn_chars:
        raise ConversionError(
            f"{path}: {where}: {field}: {len(v)} characters, above --max-turn-chars {cfg.max_turn_chars}"
        )
    return v


def _conversation(
    path: Path, where: str, cid: str, system: str, turns: list[tuple[str, str, Any]], cfg: ConvertConfig
) -> dict[str, Any]:
    """Check ``(field, role, content)`` turns in the source's own terms, then as LMFlow reads them."""
    if len(turns) < 2:
        raise ConversionError(
            f"{path}: {where}: {turns[0][0] if turns else 'turns'}: {len(turns)} turn(s): "
            "a conversation needs a user turn and an assistant reply"
        )
    if len(turns) > cfg.max_turns:
        raise ConversionError(f"{path}: {where}: {len(turns)} turns, above --max-turns {cfg.max_turns}")
    if len(turns) % 2:
        raise ConversionError(
            f"{path}: {where}: {turns[-1][0]}: the last turn has no reply ({len(turns)} turns; "
            "an LMFlow conversation ends with the assistant)"
        )
    msgs = []
    for k, (field, role, content) in enumerate(turns):
        want = ("user", "assistant")[k % 2]
        if role != want:
            raise ConversionError(
                f"{path}: {where}: {field}: role is {role!r}, expected {want!r} (turns alternate, user first)"
            )
        msgs.append({"role": role, "content": _text(path, where, field, content, cfg)})
    conv = {"conversation_id": cid, "system": system, "messages": msgs}
    check_conversation(conv, f"{path}: {where}")
    return conv


def _lima(path: Path, where: str, row: dict[str, Any], index: int, cfg: ConvertConfig) -> dict[str, Any]:
    conv = row.get("conversations")
    if not isinstance(conv, list):
        raise ConversionError(
            f"{path}: {where}: conversations: must be a list of strings, got {type(conv).__name__}"
        )
    if "source" in row and row["source"] is not None:
        _text(path, where, "source", row["source"], cfg, empty_ok=True)
    turns = [(f"conversations[{k}]", ("user", "assistant")[k % 2], t) for k, t in enumerate(conv)]
    return _conversation(path, where, f"lima:{index}", "", turns, cfg)


def _openorca(path: Path, where: str, row: dict[str, Any], index: int, cfg: ConvertConfig) -> dict[str, Any]:
    rid = row.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise ConversionError(f"{path}: {where}: id: must be a non-empty string, got {rid!r:.40}")
    system = _text(path, where, "system_prompt", row.get("system_prompt"), cfg, empty_ok=True).strip()
    turns = [("question", "user", row.get("question")), ("response", "assistant", row.get("response"))]
    return _conversation(path, where, f"openorca:{rid}", system, turns, cfg)


def _ultrachat(path: Path, where: str, row: dict[str, Any], index: int, cfg: ConvertConfig) -> dict[str, Any]:
    pid = row.get("prompt_id")
    if not isinstance(pid, str) or not pid.strip():
        raise ConversionError(f"{path}: {where}: prompt_id: must be a non-empty string, got {pid!r:.40}")
    _text(path, where, "prompt", row.get("prompt"), cfg)
    msgs = row.get("messages")
    if not isinstance(msgs, list):
        raise ConversionError(f"{path}: {where}: messages: must be a list, got {type(msgs).__name__}")
    turns = []
    for k, m in enumerate(msgs):
        if not isinstance(m, dict) or not {"role", "content"} <= set(m):
            raise ConversionError(
                f"{path}: {where}: messages[{k}]: must be an object with 'role' and 'content'"
            )
        turns.append((f"messages[{k}]", m["role"], m["content"]))
    return _conversation(path, where, f"ultrachat:{pid}", "", turns, cfg)


CONVERTERS: dict[str, Callable[[Path, str, dict[str, Any], int, ConvertConfig], dict[str, Any]]] = {
    "lima": _lima,
    "openorca": _openorca,
    "ultrachat": _ultrachat,
}


def _sample(n: int, limit: int | None, seed: int, key: str) -> set[int] | None:
    """Row indices kept by ``--limit`` (None: all): a seeded sample, the same on every machine."""
    if limit is None or limit >= n:
        return None
    salt = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
    return set(random.Random(salt).sample(range(n), limit))


def read_source(src: Source, cfg: ConvertConfig) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """(split key, conversation) pairs of one input, and its counts."""
    if src.format == "qa":
        from astrollama.data.qa import qa_conversations

        pairs, info = qa_conversations(src.path)
        keep = _sample(len(pairs), src.limit, cfg.seed, f"qa:{src.path.name}")
        pairs = [p for i, p in enumerate(pairs) if keep is None or i in keep]
        return pairs, {**info, "rows": info["conversations"], "selected": len(pairs)}
    n = count_rows(src.path)
    keep = _sample(n, src.limit, cfg.seed, f"{src.format}:{src.path.name}")
    convert = CONVERTERS[src.format]
    out = []
    for i, (where, row) in enumerate(iter_rows(src.path, _COLUMNS[src.format])):
        if keep is None or i in keep:
            conv = convert(src.path, where, row, i, cfg)
            out.append((conv["conversation_id"], conv))
    return out, {"rows": n, "selected": len(out)}


# -------------------------------------------------------------------------------------- output


def _conversation_text(conv: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in conv["messages"])


def _sieve(
    sources: Sequence[Source],
    loaded: Sequence[tuple[Any, dict[str, Any]]],
    cfg: ConvertConfig,
    benchmark: Any,
    progress: bool,
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Every source's conversations decontaminated, deduplicated and split: the kept ones
    (format, split, conversation), the per-source counts and the contamination matches."""
    from tqdm import tqdm

    seen: dict[bytes, str] = {}
    ids: dict[str, tuple[bytes, Path]] = {}  # conversation id -> (exact content digest, input)
    per_source, contamination = [], []
    kept: list[tuple[str, str, dict[str, Any]]] = []  # (format, split, conversation)
    for s, (pairs, info) in zip(sources, loaded, strict=True):
        drops: Counter[str] = Counter()
        splits: Counter[str] = Counter()
        for key, conv in tqdm(pairs, desc=f"sft-convert {s.format}", unit="conv", disable=not progress):
            words = normalised_words(_conversation_text(conv))
            digest = hashlib.blake2b(" ".join(words).encode(), digest_size=16).digest()
            # one id, one conversation: an identical repeat is dropped below as a duplicate; two
            # different conversations under one id are refused (which one is meant is unknowable)
            exact = hashlib.blake2b(json.dumps(conv, sort_keys=True).encode(), digest_size=16).digest()
            cid = conv["conversation_id"]
            if cid in ids and ids[cid][0] != exact:
                raise ConversionError(
                    f"{s.path}: conversation_id: {cid!r} names two different conversations"
                    f"{'' if ids[cid][1] == s.path else f' (also in {ids[cid][1]})'}; ids must be unique"
                )
            ids[cid] = (exact, s.path)
            if benchmark is not None:
                n_match, qs = benchmark.matches(benchmark.doc_ngrams(word_hashes(words)))
                if n_match >= cfg.decontam_min_matches:
                    drops["contaminated"] += 1
                    contamination.append(
                        {
                            "conversation_id": conv["conversation_id"],
                            "ngram_matches": n_match,
                            "questions": qs,
                        }
                    )
                    continue
            if digest in seen:
                drops["duplicate"] += 1
                continue
            seen[digest] = conv["conversation_id"]
            split = assign_split(key, cfg.validation_fraction)
            splits[split] += 1
            kept.append((s.format, split, conv))
        per_source.append(
            {
                "format": s.format,
                "file": s.path.name,
                "limit": s.limit,
                **info,
                "kept": {"train": splits["train"], "validation": splits["validation"]},
                "dropped": dict(sorted(drops.items())),
            }
        )
    return kept, per_source, contamination


def _write_dataset(
    final: Path,
    sources: Sequence[Source],
    kept: list[tuple[str, str, dict[str, Any]]],
    cfg: ConvertConfig,
    stats: dict[str, Any],
) -> None:
    """The shards (per split, one file group per format) and ``stats.json``, published whole."""
    with owned_dir(final, OWNER, legacy=LEGACY) as tmp:
        for split in ("train", "validation"):
            for fmt in dict.fromkeys(s.format for s in sources):
                convs = [c for f, x, c in kept if f == fmt and x == split]
                if convs:
                    with ShardWriter(
                        tmp / split, prefix=fmt, max_bytes=cfg.max_shard_bytes, kind=CONVERSATION
                    ) as w:
                        for c in convs:
                            w.add(c)
        atomic_write_json(tmp / "stats.json", stats)


def convert(
    sources: Sequence[Source],
    out: str | os.PathLike[str],
    *,
    config: ConvertConfig | None = None,
    mcq_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert ``sources`` into the LMFlow conversation dataset ``out`` (see the module doc);
    returns the stats written to ``out/stats.json``."""

    from astrollama.data.decontam import Benchmark

    cfg = config or ConvertConfig()
    cfg.check()
    if not sources:
        raise ConversionError("--input: give at least one FORMAT=PATH")
    for s in sources:
        if s.format not in FORMATS:
            raise ConversionError(f"--input: unknown format {s.format!r}; one of {', '.join(FORMATS)}")
        if s.limit is not None and s.limit < 1:
            raise ConversionError(f"--limit: must be >= 1, got {s.limit}")
    final = Path(out)
    claim_dir(final, OWNER, legacy=LEGACY)  # refuse someone else's directory before any work
    benchmark = Benchmark.from_file(mcq_path, cfg.decontam_ngram) if mcq_path else None

    # everything is read and checked before anything is written
    loaded = [read_source(s, cfg) for s in sources]
    kept, per_source, contamination = _sieve(sources, loaded, cfg, benchmark, progress)
    if not kept:
        raise ConversionError(f"{final}: no conversation left after decontamination and deduplication")

    stats = {
        "type": CONVERSATION,
        "sources": per_source,
        "settings": asdict(cfg),
        "conversations": {sp: sum(1 for _, x, _ in kept if x == sp) for sp in ("train", "validation")},
        "decontamination": {
            "benchmark": Path(mcq_path).name if mcq_path else None,
            "questions": benchmark.questions if benchmark else 0,
            "dropped": len(contamination),
            "matches": contamination,
        },
    }
    _write_dataset(final, sources, kept, cfg, stats)
    log.info(
        "sft-convert: %d train + %d validation conversations -> %s (dropped: %s)",
        stats["conversations"]["train"],
        stats["conversations"]["validation"],
        final,
        {s["format"]: s["dropped"] for s in per_source},
    )
    return stats


# ----------------------------------------------------------------------------------------- CLI


def _input(text: str) -> tuple[str, str]:
    import argparse

    fmt, sep, path = text.partition("=")
    if not sep or fmt not in FORMATS or not path:
        raise argparse.ArgumentTypeError(
            f"must be FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}, got {text!r}"
        )
    return fmt, path


def _limit(text: str) -> tuple[str | None, int]:
    import argparse

    fmt, sep, n = text.rpartition("=")
    if sep and fmt not in FORMATS:
        raise argparse.ArgumentTypeError(
            f"must be N or FORMAT=N with FORMAT one of {', '.join(FORMATS)}, got {text!r}"
        )
    try:
        value = int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be N or FORMAT=N with an integer N >= 1, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return (fmt or None), value


def register(sub: Any) -> None:
    """``astrollama data sft-convert``."""
    import argparse

    from astrollama.cli_args import number, seed_arg

    d = ConvertConfig()
    p = sub.add_parser(
        "sft-convert",
        help="LIMA / OpenOrca / UltraChat / astro Q&A -> LMFlow conversation shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--input",
        type=_input,
        action="append",
        required=True,
        metavar="FORMAT=PATH",
        help=f"an input ({', '.join(FORMATS)}; qa=DATA_ROOT); repeat for several",
    )
    p.add_argument("--out", required=True, help="output directory (train/, validation/, stats.json)")
    p.add_argument(
        "--limit",
        type=_limit,
        action="append",
        default=[],
        metavar="[FORMAT=]N",
        help="keep a seeded sample of N rows of each input (of that format's inputs with FORMAT=N)",
    )
    p.add_argument("--seed", type=seed_arg(), default=d.seed, help="sampling seed")
    p.add_argument("--mcq", help="benchmark questions (.parquet/.jsonl/.csv) to decontaminate against")
    p.add_argument("--validation-fraction", type=number(min=0, max=0.999), default=d.validation_fraction)
    p.add_argument("--max-turn-chars", type=number(int, min=1), default=d.max_turn_chars)
    p.add_argument("--max-turns", type=number(int, min=2), default=d.max_turns)
    p.add_argument("--decontam-ngram", type=number(int, min=1), default=d.decontam_ngram)
    p.add_argument("--decontam-min-matches", type=number(int, min=1), default=d.decontam_min_matches)
    p.add_argument("--max-shard-mb", type=number(gt=0), default=d.max_shard_bytes / 2**20)
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    limits = dict(a.limit)  # later flags win; None = every input
    sources = [Source(fmt, Path(path), limits.get(fmt, limits.get(None))) for fmt, path in a.input]
    cfg = ConvertConfig(
        seed=a.seed,
        validation_fraction=a.validation_fraction,
        max_turn_chars=a.max_turn_chars,
        max_turns=a.max_turns,
        decontam_ngram=a.decontam_ngram,
        decontam_min_matches=a.decontam_min_matches,
        max_shard_bytes=int(a.max_shard_mb * 2**20),
    )
    stats = convert(sources, a.out, config=cfg, mcq_path=a.mcq)
    print(
        json.dumps(
            {
                "out": str(a.out),
                **stats["conversations"],
                "dropped": {s["format"]: s["dropped"] for s in stats["sources"]},
            }
        )
    )
    return 0
