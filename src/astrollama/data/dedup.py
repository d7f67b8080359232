"""Near-duplicate detection for the BUILD stage: word hashes, n-gram hashes, MinHash, banded LSH.

Our own MinHash (``datasketch`` was measured and dropped, docs/data-corpus.md): a signature is the
minimum of ``num_perm`` multiply-shift hashes over the 64-bit hashes of a document's word
``shingle_words``-grams; :class:`LSHIndex` cuts it into ``lsh_bands`` bands of ``num_perm //
lsh_bands`` rows and verifies every candidate by its estimated Jaccard similarity. Word and n-gram
hashes are deterministic (CRC32, fixed constants), so every run and every worker agree.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

_NONALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=64)
def _consts(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 2**63 - 1, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)


def normalised_words(text: str) -> list[str]:
    """Lower-case alphanumeric words: the unit of text hashes, shingles and n-grams."""
    return _NONALNUM.sub(" ", text.lower()).split()


def word_hashes(words: Sequence[str]) -> np.ndarray:
    """Deterministic 32-bit hash of each word (CRC32; Python's ``hash`` is salted per process)."""
    return np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))


def ngram_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every run of ``n`` consecutive words (one hash if the text is shorter)."""
    if len(wh) == 0:
        return np.zeros(0, dtype=np.uint64)
    n_eff = min(n, len(wh))
    mult = _consts(n_eff, 1234 + n_eff)
    m = len(wh) - n_eff + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n_eff):
            h = h * np.uint64(0x100000001B3) + wh[k : k + m] * mult[k]
    return h


class MinHasher:
    """MinHash with ``num_perm`` multiply-shift hash functions over 64-bit shingle hashes."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        self.a = _consts(num_perm, seed)[:, None]
        self.b = _consts(num_perm, seed + 1)[:, None]

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        if len(shingles) == 0:
            return np.full(self.a.shape[0], 0xFFFFFFFF, dtype=np.uint32)
        with np.errstate(over="ignore"):
            v = (self.a * shingles[None, :] + self.b) >> np.uint64(32)
        return v.min(axis=1).astype(np.uint32)


class LSHIndex:
    """Banded LSH over MinHash signatures; candidates are verified by estimated Jaccard."""

    def __init__(self, num_perm: int, bands: int) -> None:
        self.bands, self.rows = bands, num_perm // bands
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self.sigs: list[np.ndarray] = []

    def _keys(self, sig: np.ndarray) -> Iterator[tuple[int, bytes]]:
        for b in range(self.bands):
            yield b, sig[b * self.rows : (b + 1) * self.rows].tobytes()

    def query(self, sig: np.ndarray, threshold: float) -> tuple[int, float] | None:
        """(index, estimated Jaccard) of the most similar stored signature above ``threshold``."""
        cands: set[int] = set()
        for b, key in self._keys(sig):
            cands.update(self.tables[b].get(key, ()))
        best = None
        for c in sorted(cands):
            j = float(np.mean(self.sigs[c] == sig))
            if j >= threshold and (best is None or j > best[1]):
                best = (c, j)
        return best

    def insert(self, sig: np.ndarray) -> int:
        idx = len(self.sigs)
        self.sigs.append(sig)
        for b, key in self._keys(sig):
            self.tables[b].setdefault(key, []).append(idx)
        return idx
