"""Phase 1 of the BUILD stage, per document and in worker processes: cleaning (:func:`clean_text`),
the normalised-text hash, a MinHash signature, benchmark n-gram matches and the token count with the
recipe's tokenizer (:func:`process_docs`; order preserved, memory bounded)."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from astrollama import killpoint
from astrollama.data.aic import clean_nougat_markers
from astrollama.data.build_config import BuildConfig
from astrollama.data.build_inputs import Doc
from astrollama.data.decontam import Benchmark, BuildError
from astrollama.data.dedup import MinHasher, ngram_hashes, normalised_words, word_hashes
from astrollama.data.runner import PoolWatch

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


def encode_batch(tok: Any, texts: list[str]) -> list[Any]:
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
    ntok = [len(e.ids) for e in encode_batch(tok, cleaned)] if tok else [0] * len(batch)
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
