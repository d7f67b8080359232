"""BUILD stage: one corpus variant (abstracts | aic | summary) -> LMFlow ``text_only`` shards.

Steps, in this order (thresholds are :class:`~astrollama.data.build_config.BuildConfig` fields, ``astrollama data build`` flags and
``build:`` keys of a ``data_prep/<name>.yaml`` config; docs/data-corpus.md lists them). MinHash/LSH
live in :mod:`astrollama.data.dedup`, the benchmark n-grams in :mod:`astrollama.data.decontam`; the
settings in :mod:`astrollama.data.build_config`, the input documents in
:mod:`astrollama.data.build_inputs`, step 2 in :mod:`astrollama.data.build_worker`, the report in
:mod:`astrollama.data.build_report`:

1. documents sorted by (id, text hash); a repeated id keeps its first row (``duplicate_id``);
2. per document, in N worker processes (order preserved): cleaning (:func:`~astrollama.data.build_worker.clean_text`), the
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
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from astrollama import killpoint
from astrollama.data.build_config import BuildConfig
from astrollama.data.build_inputs import VARIANTS, Doc, manifest_docs
from astrollama.data.build_report import length_histogram, stats_markdown, variant_stats
from astrollama.data.build_worker import load_fast_tokenizer, process_docs
from astrollama.data.decontam import Benchmark, BuildError
from astrollama.data.dedup import LSHIndex
from astrollama.data.quality import quality_step, sampled_quality
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
from astrollama.lmflow_data import ShardWriter, dataset_files, load_text_only
from astrollama.untrusted import read_json, sha256_file

log = logging.getLogger(__name__)

# Ownership (astrollama.io): ``--out`` and each ``<out>/<variant>`` carry the build's owner marker;
# a variant of an earlier version is recognised by its build.json, an --out of an earlier version
# by holding nothing but such variants.
OWNER = "data build"
VARIANT_LEGACY = (Legacy("build.json"),)


def _legacy_root(directory: Path) -> bool:
    entries = [p for p in directory.iterdir() if not p.name.startswith(".")]
    return all(p.name in VARIANTS and p.is_dir() and any(r(p) for r in VARIANT_LEGACY) for p in entries)


BUILD_FORMAT = 1


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
            for t in load_text_only(f):
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
    unique, first_drops = _unique(entries)
    del entries
    with owned_dir(final, OWNER, legacy=VARIANT_LEGACY) as tmp:
        sieve = _Sieve(cfg, bench)
        splits = _write_splits(
            tmp,
            unique,
            first_drops,
            sieve,
            reasons,
            tok=tok,
            workers=workers,
            progress=progress,
            desc=f"build {variant}",
        )
        n_kept = _check_kept(variant, splits, reasons, len(sieve.ids), cfg)
        stats = _write_report(tmp, variant, len(unique), splits, reasons, sieve, tok)
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


def _unique(entries: Sequence[tuple[str, bytes, Doc]]) -> tuple[list[Doc], list[dict[str, Any]]]:
    """Step 1: the documents in (id, text hash) order, a repeated id keeping its first row."""
    first_drops: list[dict[str, Any]] = []
    unique: list[Doc] = []
    last_id = None
    for pid, _, d in entries:
        if pid == last_id:
            first_drops.append({"id": pid, "reason": "duplicate_id"})
        else:
            unique.append(d)
        last_id = pid
    return unique, first_drops


class _Sieve:
    """Step 3, in id order: why a processed document is dropped (None: kept), against the KEPT
    documents so far (exact text hashes, the MinHash-LSH index); benchmark matches are recorded
    whatever the action."""

    def __init__(self, cfg: BuildConfig, bench: Benchmark | None) -> None:
        self.cfg, self.bench = cfg, bench
        self.seen_hash: dict[bytes, int] = {}
        self.lsh = LSHIndex(cfg.num_perm, cfg.lsh_bands)
        self.ids: list[str] = []  # the kept documents' ids, in LSH insertion order
        self.contamination: list[dict[str, Any]] = []

    def judge(self, rec: dict[str, Any], flags: dict[str, Any]) -> tuple[str | None, str | None]:
        cfg, pid = self.cfg, rec["id"]
        n_match, qs = rec.get("bench", (0, []))
        contaminated = bool(self.bench) and n_match >= cfg.decontam_min_matches
        if contaminated:
            self.contamination.append({"id": pid, "ngram_matches": n_match, "questions": qs})
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
        elif rec["hash"] in self.seen_hash:
            reason, detail = "duplicate_text", self.ids[self.seen_hash[rec["hash"]]]
        else:
            near = self.lsh.query(rec["sig"], cfg.near_dup_jaccard)
            if near is not None:
                reason, detail = "near_duplicate", f"{self.ids[near[0]]} (jaccard~{near[1]:.2f})"
            elif contaminated and cfg.decontam_action == "drop":
                reason, detail = (
                    "contaminated",
                    f"{n_match} {cfg.decontam_ngram}-grams from questions {qs[:10]}",
                )
        return reason, detail

    def keep(self, rec: dict[str, Any]) -> None:
        self.seen_hash[rec["hash"]] = self.lsh.insert(rec["sig"])
        self.ids.append(rec["id"])


def _write_splits(
    tmp: Path,
    unique: list[Doc],
    first_drops: list[dict[str, Any]],
    sieve: _Sieve,
    reasons: Counter[str],
    *,
    tok: str | None,
    workers: int,
    progress: bool,
    desc: str,
) -> dict[str, _SplitWriter]:
    """Steps 2-4 into ``tmp``: each document processed, judged, and written to its split's shards
    at once (``papers.jsonl``: the kept ones; ``drops.jsonl``: the dropped ones with their reason)."""
    cfg = sieve.cfg
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
                bench=sieve.bench,
                workers=workers,
                progress=progress,
                desc=desc,
            ),
            strict=True,
        ):
            pid = rec["id"]
            reason, detail = sieve.judge(rec, d.flags)
            if reason:
                drop({"id": pid, "reason": reason, **({"detail": detail} if detail else {})})
                continue
            sieve.keep(rec)
            split = assign_split(pid, cfg.validation_fraction)
            splits[split].add(rec["text"], rec["tokens"])
            papers.write(json.dumps({"id": pid, "split": split, "tokens": rec["tokens"]}) + "\n")
            rec.clear()
    return splits


def _check_kept(
    variant: str, splits: dict[str, _SplitWriter], reasons: Counter[str], kept: int, cfg: BuildConfig
) -> dict[str, int]:
    """The documents kept per split; an empty corpus or an empty split is refused."""
    n_kept = {s: len(w.tokens) for s, w in splits.items()}
    if not n_kept["train"] and not n_kept["validation"]:
        raise BuildError(f"{variant}: no document survived the build ({sum(reasons.values())} dropped)")
    for split in ("train", "validation"):  # never publish an empty split (docs/data-corpus.md)
        if not n_kept[split] and (split == "train" or cfg.validation_fraction > 0):
            raise BuildError(
                f"{variant}: {split} split: empty ({kept} documents kept, validation fraction "
                f"{cfg.validation_fraction:g}); add papers, or pass --validation-fraction 0 for a train-only corpus"
            )
    return n_kept


def _write_report(
    tmp: Path,
    variant: str,
    n_unique: int,
    splits: dict[str, _SplitWriter],
    reasons: Counter[str],
    sieve: _Sieve,
    tok: str | None,
) -> dict[str, Any]:
    """Step 5: the shards closed and read back, the report files written; the stats returned."""
    cfg, bench, contamination, kept = sieve.cfg, sieve.bench, sieve.contamination, len(sieve.ids)
    shards = {s: w.close() for s, w in splits.items()}
    written = [tmp / s for s in ("train", "validation") if shards[s]]
    quality = sampled_quality(_read_back(written, kept), kept)
    stats = variant_stats(variant, n_unique, splits, reasons, shards, cfg, tok, bench, contamination, quality)
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
    atomic_write_text(tmp / "stats.md", stats_markdown(stats))
    length_histogram({s: w.tokens for s, w in splits.items()}, tmp / "length_hist.png", variant)
    return stats


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
