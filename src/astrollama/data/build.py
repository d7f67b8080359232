"""BUILD stage: one corpus variant (abstracts | aic | summary) -> LMFlow ``text_only`` shards.

Steps, in this order (thresholds are :class:`BuildConfig` fields, ``astrollama data build`` flags and
``build:`` keys of a ``data_prep/<name>.yaml`` config; docs/data-corpus.md lists them). MinHash/LSH
live in :mod:`astrollama.data.dedup`, the benchmark n-grams in :mod:`astrollama.data.decontam`:

1. documents sorted by (id, text hash); a repeated id keeps its first row (``duplicate_id``);
2. per document, in N worker processes (order preserved): cleaning (:func:`clean_text`), the
   normalised-text hash, a MinHash signature of word 5-gram shingles, benchmark n-gram matches and
   the token count with the recipe's tokenizer;
3. in the parent, in id order: ``empty`` / ``too_short`` (fewer than ``min_words`` words),
   ``summary_length`` (summaries flagged outside their length target, when
   ``summary_length_policy="drop"``), ``duplicate_text`` (same normalised text as an earlier
   paper), ``near_duplicate`` (MinHash-LSH candidate with estimated Jaccard >= ``near_dup_jaccard``
   to an earlier KEPT paper), ``contaminated`` (>= ``decontam_min_matches`` benchmark n-grams,
   when ``decontam_action="drop"``; always reported);
4. split by paper id with :func:`astrollama.data.split.assign_split` (same papers held out in
   every variant), shards written with :class:`astrollama.lmflow_data.ShardWriter` to
   ``<out>/<variant>/train`` and ``<out>/<variant>/validation``;
5. report: ``stats.json``, ``stats.md``, ``length_hist.png``, ``papers.jsonl`` (kept papers with
   split and tokens), ``drops.jsonl`` (one line per dropped paper with its reason),
   ``decontamination.json``.

The variant directory is built under a temporary name and renamed when complete, so a kill at
any point leaves either nothing or the whole variant; a rerun removes stale temporaries and
rebuilds (or skips when ``build.json`` shows the same inputs and settings). The output contains no
timestamps or paths that vary between runs: the same input gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from astrollama.data import killpoint
from astrollama.data.aic import clean_nougat_markers
from astrollama.data.decontam import Benchmark, BuildError
from astrollama.data.dedup import LSHIndex, MinHasher, ngram_hashes, normalised_words, word_hashes
from astrollama.data.quality import quality_step, sampled_quality
from astrollama.data.runner import PoolWatch
from astrollama.data.split import assign_split
from astrollama.io import (
    Legacy,
    atomic_write_json,
    atomic_write_text,
    claim_dir,
    owned_dir,
    owner_of,
    read_jsonl,
    write_owner,
)
from astrollama.lmflow_data import DEFAULT_SHARD_BYTES, ShardWriter, _load_text_only, dataset_files
from astrollama.untrusted import read_json, read_text, sha256_file

log = logging.getLogger(__name__)

VARIANTS = ("abstracts", "aic", "summary")

# Ownership (astrollama.io): ``--out`` and each ``<out>/<variant>`` carry the build's owner marker;
# a variant of an earlier version is recognised by its build.json, an --out of an earlier version
# by holding nothing but such variants.
OWNER = "data build"
VARIANT_LEGACY = (Legacy("build.json"),)


def _legacy_root(directory: Path) -> bool:
    entries = [p for p in directory.iterdir() if not p.name.startswith(".")]
    return all(p.name in VARIANTS and p.is_dir() and any(r(p) for r in VARIANT_LEGACY) for p in entries)


BUILD_FORMAT = 1


@dataclass
class BuildConfig:
    validation_fraction: float = 0.2
    min_words: int = 20
    shingle_words: int = 5
    num_perm: int = 128
    lsh_bands: int = 16  # 16 bands x 8 rows: candidate pairs from Jaccard ~0.7 up
    near_dup_jaccard: float = 0.8
    decontam_ngram: int = 13
    decontam_min_matches: int = 1
    decontam_action: str = "drop"  # "drop" | "report"
    summary_length_policy: str = "drop"  # "drop" | "keep" summaries flagged outside their target
    repeated_line_min_chars: int = 20
    repeated_line_max: int = 2  # a line seen more often than this is kept once (running headers)
    max_shard_bytes: int = DEFAULT_SHARD_BYTES
    max_shard_docs: int | None = None

    def __post_init__(self) -> None:
        """Range checks; messages name the ``astrollama data build`` option of each field."""
        checks = (
            (
                "--validation-fraction",
                self.validation_fraction,
                0 <= self.validation_fraction < 1,
                "in [0, 1)",
            ),
            ("--near-dup-jaccard", self.near_dup_jaccard, 0 < self.near_dup_jaccard <= 1, "in (0, 1]"),
            ("--min-words", self.min_words, self.min_words >= 0, ">= 0"),
            ("--decontam-ngram", self.decontam_ngram, self.decontam_ngram >= 1, ">= 1"),
            ("--decontam-min-matches", self.decontam_min_matches, self.decontam_min_matches >= 1, ">= 1"),
            ("--shingle-words", self.shingle_words, self.shingle_words >= 1, ">= 1"),
            (
                "--repeated-line-min-chars",
                self.repeated_line_min_chars,
                self.repeated_line_min_chars >= 1,
                ">= 1",
            ),
            ("--repeated-line-max", self.repeated_line_max, self.repeated_line_max >= 1, ">= 1"),
            (
                "--max-shard-docs",
                self.max_shard_docs,
                self.max_shard_docs is None or self.max_shard_docs >= 1,
                ">= 1",
            ),
            ("--max-shard-mb", self.max_shard_bytes / 2**20, self.max_shard_bytes >= 1, "> 0"),
            (
                "--num-perm/--lsh-bands",
                (self.num_perm, self.lsh_bands),
                self.lsh_bands >= 1 and self.num_perm >= 1 and not self.num_perm % self.lsh_bands,
                "num_perm a positive multiple of lsh_bands",
            ),
            (
                "--decontam-action",
                self.decontam_action,
                self.decontam_action in ("drop", "report"),
                "drop or report",
            ),
            (
                "--summary-length-policy",
                self.summary_length_policy,
                self.summary_length_policy in ("drop", "keep"),
                "drop or keep",
            ),
        )
        for option, value, ok, want in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise BuildError(f"{option}: must be {want}, got {value!r}")


@dataclass
class Doc:
    """One paper's text for a variant; ``flags`` carries upstream marks (e.g. ``length_flag``).

    ``text`` may be ``None`` with a ``load`` callable that returns it: the build then reads the
    text when it needs it and does not keep it, so its memory does not grow with the corpus.
    """

    id: str
    text: str | None
    flags: dict[str, Any] = field(default_factory=dict)
    load: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def read(self) -> str:
        if self.text is not None:
            return self.text
        if self.load is None:
            raise BuildError(f"document {self.id}: no text and no loader")
        return self.load()


# ------------------------------------------------------------------------------------- cleaning

_LATEX_DROP = re.compile(
    r"\\(?:label|cite[a-zA-Z]*\*?|ref|eqref|autoref|cref|Cref)\s*(?:\[[^\]]*\])?\{[^{}]*\}"
    r"|\\(?:noindent|newline|hline|toprule|midrule|bottomrule|centering|clearpage|newpage|"
    r"smallskip|medskip|bigskip)\b"
    r"|\\[vh]space\*?\{[^{}]*\}"
)
_TABULAR = re.compile(r"\\begin\{tabular\*?\}.*?\\end\{tabular\*?\}", re.S)
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")


def clean_text(text: str, *, repeated_line_min_chars: int = 20, repeated_line_max: int = 2) -> str:
    """OCR markers, LaTeX noise, repeated lines and whitespace; keeps math and paragraphs.

    * Nougat missing-page markers and repetition/error blocks removed;
    * ``\\label``/``\\cite``/``\\ref`` and spacing commands removed, ``tabular`` bodies removed
      (their captions stay), math untouched;
    * consecutive duplicate lines collapsed; a line of at least ``repeated_line_min_chars``
      characters seen more than ``repeated_line_max`` times is kept once (running headers,
      OCR loops);
    * NFC unicode, runs of spaces/tabs -> one space, at most one blank line in a row.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = clean_nougat_markers(text)
    if "\\" in text:
        text = _TABULAR.sub("", text)
        text = _LATEX_DROP.sub("", text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    counts = Counter(ln for ln in lines if len(ln) >= repeated_line_min_chars)
    seen: set[str] = set()
    out: list[str] = []
    prev = None
    for ln in lines:
        if ln and ln == prev:
            continue
        prev = ln
        if ln and counts.get(ln, 0) > repeated_line_max:
            if ln in seen:
                continue
            seen.add(ln)
        out.append(ln)
    return _BLANKS.sub("\n\n", "\n".join(out)).strip()


# ---------------------------------------------------------------------------------- tokenizer


def load_fast_tokenizer(tokenizer_dir: str | os.PathLike[str]) -> Any:
    """A ``tokenizers.Tokenizer`` from ``<dir>/tokenizer.json`` (what HF fast tokenizers wrap)."""
    from tokenizers import Tokenizer

    p = Path(tokenizer_dir)
    f = p / "tokenizer.json" if p.is_dir() else p
    if not f.is_file():
        raise BuildError(f"{p}: no tokenizer.json (pass the recipe's model/tokenizer directory)")
    return Tokenizer.from_file(str(f))


# ----------------------------------------------------------------------------- worker (phase 1)

_W: dict[str, Any] = {}


def _init_worker(cfg: BuildConfig, tokenizer_dir: str | None, bench: Benchmark | None) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _W["cfg"] = cfg
    _W["tok"] = load_fast_tokenizer(tokenizer_dir) if tokenizer_dir else None
    _W["bench"] = bench
    _W["mh"] = MinHasher(cfg.num_perm)


def _encode(tok: Any, texts: list[str]) -> list[Any]:
    # encode_batch_fast (tokenizers >= 0.21) skips offsets: same ids, ~30% faster
    fast = getattr(tok, "encode_batch_fast", None)
    return (fast or tok.encode_batch)(texts, add_special_tokens=False)


def _process_batch(batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
    killpoint.hit("build-worker")  # tests: a worker killed by the OOM killer
    cfg: BuildConfig = _W["cfg"]
    tok, bench, mh = _W["tok"], _W["bench"], _W["mh"]
    cleaned = [
        clean_text(
            t, repeated_line_min_chars=cfg.repeated_line_min_chars, repeated_line_max=cfg.repeated_line_max
        )
        for _, t in batch
    ]
    ntok = [len(e.ids) for e in _encode(tok, cleaned)] if tok else [0] * len(batch)
    out = []
    for (pid, _), text, nt in zip(batch, cleaned, ntok, strict=True):
        words = normalised_words(text)
        wh = word_hashes(words)
        rec: dict[str, Any] = {
            "id": pid,
            "text": text,
            "words": len(words),
            "tokens": nt,
            "hash": hashlib.blake2b(" ".join(words).encode(), digest_size=16).digest(),
            "sig": mh.signature(ngram_hashes(wh, cfg.shingle_words)),
        }
        if bench is not None:
            rec["bench"] = bench.matches(bench.doc_ngrams(wh))
        out.append(rec)
    return out


def _batches(docs: Sequence[Doc], size: int) -> Iterator[list[tuple[str, str]]]:
    for i in range(0, len(docs), size):
        yield [(d.id, d.read()) for d in docs[i : i + size]]


def process_docs(
    docs: Sequence[Doc],
    cfg: BuildConfig,
    *,
    tokenizer_dir: str | None,
    bench: Benchmark | None,
    workers: int = 1,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "build",
) -> Iterator[dict[str, Any]]:
    """Phase 1 over ``docs`` in order, with ``workers`` processes (1 = in this process).

    Texts are read (:meth:`Doc.read`) batch by batch and at most ``4 x workers`` batches are in
    flight, so memory holds a few batches whatever the number of documents."""
    from collections import deque

    from tqdm import tqdm

    with tqdm(total=len(docs), desc=desc, unit="doc", disable=not progress) as bar:
        if workers <= 1:
            _init_worker(cfg, tokenizer_dir, bench)
            for b in _batches(docs, batch_size):
                yield from _process_batch(b)
                bar.update(len(b))
            return
        import multiprocessing as mp

        ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, tokenizer_dir, bench)) as pool:
            watch = PoolWatch(pool, "build worker")  # a killed worker: exit 1, not a hang
            pending: deque[Any] = deque()
            batches = _batches(docs, batch_size)
            for b in batches:
                pending.append(pool.apply_async(_process_batch, (b,)))
                if len(pending) >= 4 * workers:
                    break
            while pending:
                res = watch.get(pending.popleft())
                nxt = next(batches, None)
                if nxt is not None:
                    pending.append(pool.apply_async(_process_batch, (nxt,)))
                yield from res
                bar.update(len(res))


# ------------------------------------------------------------------------------------- build


def _fingerprint(
    variant: str,
    entries: Sequence[tuple[str, bytes, Doc]],
    cfg: BuildConfig,
    tokenizer_dir: str | None,
    mcq: str | None,
) -> str:
    """Hash of the settings, the tokenizer, the benchmark and every (id, text sha256, flags)."""
    h = hashlib.sha256()
    h.update(
        json.dumps({"format": BUILD_FORMAT, "variant": variant, "cfg": asdict(cfg)}, sort_keys=True).encode()
    )
    for f in ([Path(tokenizer_dir) / "tokenizer.json"] if tokenizer_dir else []) + (
        [Path(mcq)] if mcq else []
    ):
        h.update(sha256_file(f, "tokenizer" if f.name == "tokenizer.json" else "table", error=BuildError))
    for pid, digest, d in entries:
        h.update(pid.encode() + b"\0" + digest + json.dumps(d.flags, sort_keys=True).encode())
    return h.hexdigest()


def _text_digests(docs: Iterable[Doc], progress: bool, desc: str) -> list[tuple[str, bytes, Doc]]:
    """(id, sha256 of the text, doc) of every document, texts read one at a time and not kept."""
    from tqdm import tqdm

    out = []
    for d in tqdm(docs, desc=f"{desc}: hash", unit="doc", disable=not progress):
        out.append((d.id, hashlib.sha256(d.read().encode()).digest(), d))
    return out


class _SplitWriter:
    """Shards of one split written as documents arrive (the directory is made on the first one),
    with the running totals the stats need (tokens per document, characters)."""

    def __init__(self, d: Path, cfg: BuildConfig) -> None:
        from array import array

        self.dir, self.cfg = d, cfg
        self.w: ShardWriter | None = None
        self.tokens = array("q")
        self.characters = 0

    def add(self, text: str, tokens: int) -> None:
        if self.w is None:
            self.w = ShardWriter(
                self.dir, prefix="shard", max_bytes=self.cfg.max_shard_bytes, max_docs=self.cfg.max_shard_docs
            )
        n_shards = len(self.w.written)
        self.w.add(text)
        if len(self.w.written) > n_shards:
            killpoint.hit("build.shard")
        self.tokens.append(tokens)
        self.characters += len(text)

    def close(self) -> int:
        return len(self.w.close()) if self.w is not None else 0


def _read_back(dirs: Sequence[Path], documents: int) -> Iterator[str]:
    """Check every written shard with the loader's own rules, one shard in memory at a time, and
    yield the quality sample (documents ``0, step, 2 step, ...`` over the splits in order)."""
    step = quality_step(documents)
    i = 0
    for d in dirs:
        n = 0
        for f in dataset_files(d):
            for t in _load_text_only(f):
                if i % step == 0:
                    yield t
                i += 1
                n += 1
        if not n:
            raise BuildError(f"{d}: the dataset holds no instances")


def build_variant(
    variant: str,
    docs: Iterable[Doc],
    out_root: str | os.PathLike[str],
    *,
    tokenizer_dir: str | os.PathLike[str] | None,
    mcq_path: str | os.PathLike[str] | None = None,
    config: BuildConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Build ``<out_root>/<variant>`` and return its stats (see module docstring).

    Streams: texts are read when processed (:class:`Doc` ``load``) and written to their shard at
    once; what is kept per document is its id, a text digest, a MinHash signature and its token
    count, so memory grows by ~1 KB per paper, not by its text."""
    cfg = config or BuildConfig()
    out_root = Path(out_root)
    final = out_root / variant
    tok = str(tokenizer_dir) if tokenizer_dir else None
    if tok:
        load_fast_tokenizer(tok)  # fail early with a clear message
    entries = sorted(_text_digests(docs, progress, f"build {variant}"), key=lambda e: (e[0], e[1]))
    fp = _fingerprint(variant, entries, cfg, tok, str(mcq_path) if mcq_path else None)
    claim_dir(out_root, OWNER, legacy=(_legacy_root,))  # someone else's directory: refused, untouched
    for stale in out_root.glob(f".{variant}.*.tmp"):  # left by a killed build (--out is the build's)
        shutil.rmtree(stale, ignore_errors=True)
    if claim_dir(final, OWNER, legacy=VARIANT_LEGACY):  # an earlier build of this variant
        meta = final / "build.json"
        if (
            not force
            and meta.is_file()
            and read_json(meta, "results", error=BuildError).get("fingerprint") == fp
        ):
            log.info("%s: up to date (%s), skipped", final, fp[:12])
            return read_json(final / "stats.json", "results", error=BuildError)
        log.info("%s: inputs or settings changed, rebuilding (the old build stays until then)", final)

    bench = Benchmark.from_file(mcq_path, cfg.decontam_ngram) if mcq_path else None
    reasons: Counter[str] = Counter()
    first_drops: list[dict[str, Any]] = []
    unique: list[Doc] = []
    last_id = None
    for pid, _, d in entries:
        if pid == last_id:
            first_drops.append({"id": pid, "reason": "duplicate_id"})
        else:
            unique.append(d)
        last_id = pid
    del entries

    seen_hash: dict[bytes, int] = {}
    lsh = LSHIndex(cfg.num_perm, cfg.lsh_bands)
    lsh_ids: list[str] = []
    contamination: list[dict[str, Any]] = []
    with owned_dir(final, OWNER, legacy=VARIANT_LEGACY) as tmp:
        splits = {s: _SplitWriter(tmp / s, cfg) for s in ("train", "validation")}
        with (
            open(tmp / "papers.jsonl", "w", encoding="utf-8") as papers,
            open(tmp / "drops.jsonl", "w", encoding="utf-8") as drops_f,
        ):

            def drop(row: dict[str, Any]) -> None:
                reasons[row["reason"]] += 1
                drops_f.write(json.dumps(row, ensure_ascii=False) + "\n")

            for row in first_drops:
                drop(row)
            for d, rec in zip(
                unique,
                process_docs(
                    unique,
                    cfg,
                    tokenizer_dir=tok,
                    bench=bench,
                    workers=workers,
                    progress=progress,
                    desc=f"build {variant}",
                ),
                strict=True,
            ):
                pid, flags = rec["id"], d.flags
                n_match, qs = rec.get("bench", (0, []))
                contaminated = bool(bench) and n_match >= cfg.decontam_min_matches
                if contaminated:
                    contamination.append({"id": pid, "ngram_matches": n_match, "questions": qs})
                reason, detail = None, None
                if not rec["text"]:
                    reason = "empty"
                elif rec["words"] < cfg.min_words:
                    reason, detail = "too_short", f"{rec['words']} words < {cfg.min_words}"
                elif flags.get("length_flag") and cfg.summary_length_policy == "drop":
                    reason, detail = (
                        "summary_length",
                        f"{flags.get('summary_tokens')} tokens ({flags['length_flag']})",
                    )
                elif rec["hash"] in seen_hash:
                    reason, detail = "duplicate_text", lsh_ids[seen_hash[rec["hash"]]]
                else:
                    near = lsh.query(rec["sig"], cfg.near_dup_jaccard)
                    if near is not None:
                        reason, detail = "near_duplicate", f"{lsh_ids[near[0]]} (jaccard~{near[1]:.2f})"
                    elif contaminated and cfg.decontam_action == "drop":
                        reason, detail = (
                            "contaminated",
                            f"{n_match} {cfg.decontam_ngram}-grams from questions {qs[:10]}",
                        )
                if reason:
                    drop({"id": pid, "reason": reason, **({"detail": detail} if detail else {})})
                    continue
                seen_hash[rec["hash"]] = lsh.insert(rec["sig"])
                lsh_ids.append(pid)
                split = assign_split(pid, cfg.validation_fraction)
                splits[split].add(rec["text"], rec["tokens"])
                papers.write(json.dumps({"id": pid, "split": split, "tokens": rec["tokens"]}) + "\n")
                rec.clear()

        n_kept = {s: len(w.tokens) for s, w in splits.items()}
        if not n_kept["train"] and not n_kept["validation"]:
            raise BuildError(f"{variant}: no document survived the build ({sum(reasons.values())} dropped)")
        for split in ("train", "validation"):  # never publish an empty split (docs/data-corpus.md)
            if not n_kept[split] and (split == "train" or cfg.validation_fraction > 0):
                raise BuildError(
                    f"{variant}: {split} split: empty ({len(lsh_ids)} documents kept, validation fraction "
                    f"{cfg.validation_fraction:g}); add papers, or pass --validation-fraction 0 for a train-only corpus"
                )
        shards = {s: w.close() for s, w in splits.items()}
        written = [tmp / s for s in ("train", "validation") if shards[s]]
        quality = sampled_quality(_read_back(written, len(lsh_ids)), len(lsh_ids))
        stats = _stats(variant, len(unique), splits, reasons, shards, cfg, tok, bench, contamination, quality)
        atomic_write_json(
            tmp / "decontamination.json",
            {
                "benchmark": Path(bench.path).name if bench else None,
                "ngram": cfg.decontam_ngram,
                "min_matches": cfg.decontam_min_matches,
                "action": cfg.decontam_action,
                "documents": contamination,
            },
        )
        atomic_write_json(tmp / "stats.json", stats)
        atomic_write_text(tmp / "stats.md", _stats_md(stats))
        _histogram({s: w.tokens for s, w in splits.items()}, tmp / "length_hist.png", variant)
        killpoint.hit("build.before_rename")
        atomic_write_json(tmp / "build.json", {"variant": variant, "fingerprint": fp, "format": BUILD_FORMAT})
    if owner_of(out_root) != OWNER:
        write_owner(out_root, OWNER)
    log.info(
        "%s: %d train + %d validation documents, %d dropped %s",
        final,
        n_kept["train"],
        n_kept["validation"],
        sum(reasons.values()),
        dict(stats["drops"]),
    )
    return stats


def _split_stats(w: _SplitWriter, shards: int) -> dict[str, Any]:
    toks = np.asarray(w.tokens, dtype=np.int64)
    return {
        "papers": len(toks),
        "tokens": int(toks.sum()),
        "characters": int(w.characters),
        "shards": shards,
        "tokens_per_paper": (
            {
                "mean": round(float(np.mean(toks)), 1),
                **{f"p{q}": int(np.percentile(toks, q)) for q in (5, 50, 95)},
                "max": int(toks.max()),
            }
            if len(toks)
            else None
        ),
    }


def _stats(
    variant: str,
    n_unique: int,
    splits: dict[str, _SplitWriter],
    reasons: Counter[str],
    shards: dict[str, int],
    cfg: BuildConfig,
    tok: str | None,
    bench: Benchmark | None,
    contamination: list[dict[str, Any]],
    quality: dict[str, Any],
) -> dict[str, Any]:
    return {
        "variant": variant,
        "papers_in": n_unique + reasons.get("duplicate_id", 0),
        "papers_out": len(splits["train"].tokens) + len(splits["validation"].tokens),
        "train": _split_stats(splits["train"], shards["train"]),
        "validation": _split_stats(splits["validation"], shards["validation"]),
        "tokenizer": Path(tok).name if tok else None,
        "tokens_note": "content tokens (no BOS/EOS); LMFlow adds one BOS per document",
        "drops": dict(sorted(reasons.items())),
        "quality": quality,  # raw macros, dangling ... (a sample of the kept papers)
        "decontamination": {
            "benchmark": Path(bench.path).name if bench else None,
            "questions": bench.questions if bench else 0,
            "documents_matched": len(contamination),
            "questions_hit": len({q for c in contamination for q in c["questions"]}),
            "action": cfg.decontam_action,
        },
        "settings": asdict(cfg),
    }


def _stats_md(s: dict[str, Any]) -> str:
    lines = [
        f"# Corpus `{s['variant']}`",
        "",
        f"Papers in: {s['papers_in']}; kept: {s['papers_out']}. Tokenizer: `{s['tokenizer']}` "
        f"({s['tokens_note']}).",
        "",
        "| split | papers | tokens | characters | shards | tokens/paper p5 / p50 / p95 |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for split in ("train", "validation"):
        x = s[split]
        tp = x["tokens_per_paper"]
        dist = f"{tp['p5']} / {tp['p50']} / {tp['p95']}" if tp else "-"
        lines.append(
            f"| {split} | {x['papers']} | {x['tokens']} | {x['characters']} | {x['shards']} | {dist} |"
        )
    lines += [
        "",
        "Dropped papers by reason (details in drops.jsonl):",
        "",
        "| reason | papers |",
        "|---|---:|",
    ]
    lines += [f"| {r} | {n} |" for r, n in s["drops"].items()] or ["| (none) | 0 |"]
    dc, q = s["decontamination"], s["quality"]
    lines += [
        "",
        f"Decontamination: benchmark `{dc['benchmark']}` ({dc['questions']} questions, "
        f"{s['settings']['decontam_ngram']}-grams): {dc['documents_matched']} papers matched "
        f"{dc['questions_hit']} questions; action: {dc['action']} (decontamination.json).",
        "",
        f"Text quality (kept papers; `astrollama data quality`): {q['macros_per_100k']} raw LaTeX "
        f"macros per 100k characters outside math, {q['dangling']} dangling citation leftovers, "
        f"{q['control']} control characters.",
        "",
        "![token length histogram](length_hist.png)",
        "",
    ]
    return "\n".join(lines)


def _histogram(tokens: dict[str, Sequence[int]], path: Path, variant: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train, val = list(tokens["train"]), list(tokens["validation"])
    allt = train + val or [0]
    lo, hi = min(allt), max(allt)
    bins = np.linspace(lo, hi + 1, min(40, max(5, int(math.sqrt(len(allt))) + 1)))
    ax.hist(
        [train, val],
        bins=bins,
        stacked=True,
        label=["train", "validation"],
    )
    ax.axvline(
        float(np.median(allt)), color="k", linestyle="--", linewidth=1, label=f"median {int(np.median(allt))}"
    )
    ax.set_xlabel("tokens per paper")
    ax.set_ylabel("papers")
    ax.set_title(f"{variant}: token length")
    ax.legend()
    fig.tight_layout()
    with open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})
    plt.close(fig)


# ------------------------------------------------------------------------------- variant inputs


def abstract_docs(rows: Iterable[dict[str, Any]]) -> list[Doc]:
    """``abstracts`` variant (AstroLLaMA-1): one document per paper, the abstract text."""
    return [Doc(str(r["id"]), " ".join(str(r["abstract"]).split())) for r in rows if r.get("abstract")]


def _aic_text(path: Path, pid: str, root: Path, where: str = "aic") -> str:
    """The ``text`` of an AIC record: a regular file inside the data root, size-capped, UTF-8
    (astrollama.untrusted)."""
    try:
        text = read_json(path, "text", root=root, error=BuildError)["text"]
        if not isinstance(text, str):
            raise TypeError("not a string")
        return text
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"{path}: field 'text' of {pid}: unreadable {where} output "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None


def _summary_text(path: Path, pid: str, root: Path) -> str:
    """A summary's text: a regular file inside the data root, size-capped, UTF-8."""
    try:
        return read_text(path, "text", root=root, error=BuildError)
    except ValueError as exc:
        raise BuildError(
            f"{path}: field 'text' of {pid}: unreadable summary output "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None


def aic_docs(aic_dir: str | os.PathLike[str]) -> list[Doc]:
    """``aic`` variant: the ``text`` of every ``<ns_id>.json`` written by the AIC stage."""
    out = []
    for f in sorted(Path(aic_dir).glob("*.json")):
        rec = read_json(f, "text", root=aic_dir, error=BuildError)
        out.append(Doc(rec["id"], rec["text"]))
    return out


def summary_docs(summary_dir: str | os.PathLike[str]) -> list[Doc]:
    """``summary`` variant: finished summaries (sidecar present) with their length flag."""
    out = []
    for side in sorted(Path(summary_dir).glob("*.json")):
        meta = read_json(side, "text", root=summary_dir, error=BuildError)
        text = read_text(side.with_suffix(".txt"), "text", root=summary_dir, error=BuildError)
        out.append(
            Doc(
                meta["id"],
                text,
                {"length_flag": meta.get("length_flag"), "summary_tokens": meta.get("summary_tokens")},
            )
        )
    return out


# ---------------------------------------------------------------------------- manifest stage


def manifest_docs(m: Any, variant: str) -> list[Doc]:
    """The variant's input documents from the manifest at ``m`` (only ``ok`` upstream records).

    The AIC and summary texts are not read here: each :class:`Doc` reads its file when the
    build needs it (an unreadable file is a one-line error naming it then)."""
    import functools

    if variant == "abstracts":
        return abstract_docs(m.papers().values())
    stage = {"aic": "aic", "summary": "summary"}.get(variant)
    if stage is None:
        raise BuildError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    docs = []
    for pid, rec in sorted(m.status(stage).items()):
        if rec.status != "ok":
            continue
        path = m.resolve(rec.outputs.get(stage, ""))
        if variant == "aic":
            docs.append(Doc(pid, None, load=functools.partial(_aic_text, path, pid, m.root)))
        else:
            flags = {
                "length_flag": rec.attrs.get("length_flag"),
                "summary_tokens": rec.attrs.get("summary_tokens"),
            }
            docs.append(Doc(pid, None, flags, load=functools.partial(_summary_text, path, pid, m.root)))
    return docs


def run_build(
    root: str | os.PathLike[str],
    variants: Sequence[str],
    out: str | os.PathLike[str],
    *,
    tokenizer_dir: str | os.PathLike[str] | None,
    mcq_path: str | os.PathLike[str] | None = None,
    config: BuildConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    force: bool = False,
) -> dict[str, dict[str, Any]]:
    """Build each variant from the manifest at ``root`` into ``<out>/<variant>``; record every
    paper's fate in the manifest as stage ``build_<variant>`` (``ok`` with its split, or
    ``failed`` with ``dropped: <reason>``)."""
    from astrollama.data.manifest import Manifest

    claim_dir(out, OWNER, legacy=(_legacy_root,))  # refused before any document is read
    m = Manifest(root)
    res = {}
    for v in variants:
        docs = manifest_docs(m, v)
        if not docs:
            raise BuildError(f"{root}: variant {v!r} has no input documents (has its stage run?)")
        res[v] = build_variant(
            v,
            docs,
            out,
            tokenizer_dir=tokenizer_dir,
            mcq_path=mcq_path,
            config=config,
            workers=workers,
            progress=progress,
            force=force,
        )
        d = Path(out) / v
        recs = [
            m.make_record(f"build_{v}", r["id"], "ok", split=r["split"], tokens=r["tokens"])
            for _, r in read_jsonl(d / "papers.jsonl", error=BuildError)
        ]
        recs += [
            m.make_record(
                f"build_{v}",
                r["id"],
                "failed",
                f"dropped: {r['reason']}" + (f" ({r['detail']})" if r.get("detail") else ""),
            )
            for _, r in read_jsonl(d / "drops.jsonl", error=BuildError)
        ]
        m.record_many(recs)
    return res


def register(sub: Any) -> None:
    """``astrollama data build``."""
    import argparse

    from astrollama.cli_args import number

    d = BuildConfig()
    p = sub.add_parser(
        "build",
        help="corpus variants -> cleaned, deduplicated, decontaminated LMFlow shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="data root (manifest/)")
    p.add_argument(
        "--variants", default="abstracts,aic,summary", help="comma-separated: abstracts,aic,summary"
    )
    p.add_argument(
        "--train-only",
        default="",
        help="comma-separated variants built without a held-out split (validation fraction 0), "
        "e.g. a summary variant with too few papers to hold any out",
    )
    p.add_argument(
        "--out", required=True, help="output directory (gets <variant>/train, <variant>/validation)"
    )
    p.add_argument(
        "--tokenizer",
        required=True,
        help="the recipe's model/tokenizer directory (token stats; smollm2-135m: the demo model)",
    )
    p.add_argument(
        "--mcq", help="benchmark questions (.parquet/.jsonl/.csv: question, A-D) to decontaminate against"
    )
    p.add_argument("--workers", type=number(int, min=1), default=max(1, (os.cpu_count() or 1)))
    p.add_argument(
        "--validation-fraction",
        type=number(),
        default=d.validation_fraction,
        help="in [0, 1); 0: a train-only corpus (no validation/)",
    )
    p.add_argument("--min-words", type=number(int), default=d.min_words)
    p.add_argument("--near-dup-jaccard", type=number(), default=d.near_dup_jaccard)
    p.add_argument("--decontam-ngram", type=number(int), default=d.decontam_ngram)
    p.add_argument("--decontam-min-matches", type=number(int), default=d.decontam_min_matches)
    p.add_argument("--decontam-action", choices=["drop", "report"], default=d.decontam_action)
    p.add_argument("--summary-length-policy", choices=["drop", "keep"], default=d.summary_length_policy)
    p.add_argument(
        "--shingle-words", type=number(int, min=1), default=d.shingle_words, help="words per MinHash shingle"
    )
    p.add_argument(
        "--num-perm",
        type=number(int, min=1),
        default=d.num_perm,
        help="MinHash permutations (a multiple of --lsh-bands)",
    )
    p.add_argument(
        "--lsh-bands",
        type=number(int, min=1),
        default=d.lsh_bands,
        help="LSH bands; rows per band = num_perm / lsh_bands",
    )
    p.add_argument(
        "--repeated-line-min-chars",
        type=number(int, min=1),
        default=d.repeated_line_min_chars,
        help="lines at least this long are counted as repeated-line candidates",
    )
    p.add_argument(
        "--repeated-line-max",
        type=number(int, min=1),
        default=d.repeated_line_max,
        help="a candidate line seen more often than this is kept once",
    )
    p.add_argument("--max-shard-mb", type=number(), default=d.max_shard_bytes / 2**20)
    p.add_argument(
        "--max-shard-docs",
        type=number(int, min=1),
        default=d.max_shard_docs,
        help="documents per shard (default: no limit, only --max-shard-mb)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even when build.json says up to date")
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    # every BuildConfig field is the flag of the same name (max_shard_bytes: --max-shard-mb)
    cfg = BuildConfig(
        **{f.name: getattr(a, f.name) for f in fields(BuildConfig) if f.name != "max_shard_bytes"},
        max_shard_bytes=int(a.max_shard_mb * 2**20),
    )
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    train_only = [v.strip() for v in a.train_only.split(",") if v.strip()]
    for flag, names in (("--variants", variants), ("--train-only", train_only)):
        for v in names:
            if v not in VARIANTS:
                raise BuildError(f"{flag}: unknown variant {v!r}; one of {', '.join(VARIANTS)}")
    claim_dir(a.out, OWNER, legacy=(_legacy_root,))  # someone else's directory: refused before any work
    from astrollama.models import resolve_tokenizer

    try:  # a local directory or the Hugging Face cache first; the hub at most once
        tokenizer_dir = resolve_tokenizer(a.tokenizer)
    except ValueError as e:
        raise BuildError(f"--tokenizer: {e}") from None

    res: dict[str, dict[str, Any]] = {}
    for group, group_cfg in (
        ([v for v in variants if v not in train_only], cfg),
        ([v for v in variants if v in train_only], replace(cfg, validation_fraction=0.0)),
    ):
        if group:
            res |= run_build(
                a.root,
                group,
                a.out,
                tokenizer_dir=tokenizer_dir,
                mcq_path=a.mcq,
                config=group_cfg,
                workers=a.workers,
                force=a.force,
            )
    for v, s in res.items():
        print(
            f"{v}: {s['train']['papers']} train / {s['validation']['papers']} validation papers, "
            f"{s['train']['tokens'] + s['validation']['tokens']} tokens, dropped {s['drops']} -> {Path(a.out) / v}"
        )
    return 0
