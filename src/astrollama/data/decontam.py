"""Benchmark decontamination for the BUILD stage: n-grams of the MCQ questions and options.

A document is contaminated when at least ``decontam_min_matches`` of its distinct word
``decontam_ngram``-grams occur in the benchmark (question + options, the question alone, each
option). The benchmark file is read by the scoring reader, so decontamination and scoring read one
file the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from astrollama.benchmark import MCQInputError, load_questions
from astrollama.data.dedup import ngram_hashes, normalised_words, word_hashes
from astrollama.errors import InputError


class BuildError(InputError):
    """Bad build input (benchmark file, tokenizer, empty corpus)."""


def load_benchmark_questions(path: str | os.PathLike[str]) -> list[tuple[str, list[str]]]:
    """(question, options A-D) of each row of the benchmark MCQ file.

    The file is read by the scoring reader (``astrollama.benchmark.load_questions``:
    .parquet / .jsonl / .csv with ``question`` and ``A``..``D``), so decontamination and scoring
    read one file the same way.
    """
    try:
        qs = load_questions(path)
    except MCQInputError as e:
        raise BuildError(str(e)) from e
    return [(q.question, list(q.options.values())) for q in qs]


@dataclass
class Benchmark:
    """Sorted n-gram hashes of the benchmark (question + options), and which question owns each.

    Texts of at least ``n`` words contribute their ``n``-grams; a shorter question (or option) of
    at least ``min_words`` words contributes its ``min_words``-grams, so short questions are
    caught too. ``lengths`` lists the n-gram lengths a document is hashed with (at most two).
    """

    path: str
    n: int
    questions: int
    hashes: np.ndarray
    owners: np.ndarray
    lengths: tuple[int, ...]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], n: int, min_words: int = 8) -> Benchmark:
        texts = load_benchmark_questions(path)
        hs, owners, lengths = [], [], {n}
        for qi, (q, opts) in enumerate(texts):
            # the question with its options, the question alone and each option: a paper can
            # quote any of them
            for part in dict.fromkeys([" ".join([q, *opts]), q, *opts]):
                words = normalised_words(part)
                if len(words) < min(n, min_words):
                    continue
                k = n if len(words) >= n else min_words
                lengths.add(k)
                h = ngram_hashes(word_hashes(words), k)
                hs.append(h)
                owners.append(np.full(len(h), qi, dtype=np.int64))
        if not hs:
            return cls(str(path), n, len(texts), np.zeros(0, np.uint64), np.zeros(0, np.int64), (n,))
        h, o = np.concatenate(hs), np.concatenate(owners)
        order = np.argsort(h, kind="stable")
        return cls(str(path), n, len(texts), h[order], o[order], tuple(sorted(lengths)))

    def doc_ngrams(self, wh: np.ndarray) -> np.ndarray:
        """All n-gram hashes of a document (word hashes ``wh``) at the benchmark's lengths."""
        parts = [ngram_hashes(wh, k) for k in self.lengths if len(wh) >= k]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)

    def matches(self, doc_ngrams: np.ndarray) -> tuple[int, list[int]]:
        """(number of the document's distinct n-grams found in the benchmark, question indices)."""
        if len(self.hashes) == 0 or len(doc_ngrams) == 0:
            return 0, []
        pos = np.searchsorted(self.hashes, doc_ngrams)
        pos[pos >= len(self.hashes)] = 0
        hit = self.hashes[pos] == doc_ngrams
        if not hit.any():
            return 0, []
        qs = set()
        for p in np.unique(pos[hit]):
            lo = p
            while lo < len(self.hashes) and self.hashes[lo] == self.hashes[p]:
                qs.add(int(self.owners[lo]))
                lo += 1
        return len(np.unique(doc_ngrams[hit])), sorted(qs)
