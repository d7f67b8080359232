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
from collections.abc import Sequence

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
    """Banded LSH over MinHash signatures; candidates are verified by estimated Jaccard.

    Compact, so a corpus of any size fits: the signatures live in ``uint32`` blocks of 16,384 rows
    (``num_perm`` x 4 bytes per document; a new block is added, nothing is copied) and each band's table is a sorted array of 64-bit band
    keys with the index of their document (12 bytes per document and band), fed by a small
    dictionary of recent inserts that is merged in as it grows. A band key is a hash of the
    band's rows; a candidate counts only when one of its bands equals the query's exactly, so a
    hash collision cannot make a candidate.
    """

    _RECENT = 4096  # inserts held in the dictionaries before they are merged into sorted arrays
    _BLOCK = 1 << 14  # signatures per block

    def __init__(self, num_perm: int, bands: int) -> None:
        self.bands, self.rows = bands, num_perm // bands
        self.num_perm = num_perm
        self._blocks: list[np.ndarray] = []  # signatures, _BLOCK rows each: growing never copies
        self.n = 0
        self._mult = _consts(self.rows, 977)
        # sorted levels: (keys, indices) per band, "big" and "small" (small merged into big when
        # it reaches a quarter of it), then the recent dictionaries
        empty = (np.zeros(0, np.uint64), np.zeros(0, np.int32))
        self._big = [empty] * bands
        self._small = [empty] * bands
        self._recent: list[dict[int, list[int]]] = [{} for _ in range(bands)]
        self._n_recent = 0

    def __len__(self) -> int:
        return self.n

    @property
    def sigs(self) -> np.ndarray:
        """The stored signatures, one row per inserted document (a copy)."""
        if not self._blocks:
            return np.zeros((0, self.num_perm), dtype=np.uint32)
        return np.concatenate(self._blocks)[: self.n]

    def _sig(self, i: int) -> np.ndarray:
        return self._blocks[i >> 14][i & (self._BLOCK - 1)]

    def _band_keys(self, sig: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            rows = sig.astype(np.uint64).reshape(self.bands, self.rows) * self._mult[None, :]
            return rows.sum(axis=1, dtype=np.uint64) ^ np.arange(self.bands, dtype=np.uint64)

    def query(self, sig: np.ndarray, threshold: float) -> tuple[int, float] | None:
        """(index, estimated Jaccard) of the most similar stored signature above ``threshold``."""
        keys = self._band_keys(sig)
        cands: set[int] = set()
        for b in range(self.bands):
            k = keys[b]
            for level in (self._big[b], self._small[b]):
                lo = np.searchsorted(level[0], k, side="left")
                hi = np.searchsorted(level[0], k, side="right")
                cands.update(level[1][lo:hi].tolist())
            cands.update(self._recent[b].get(int(k), ()))
        if not cands:
            return None
        bands_q = sig.reshape(self.bands, self.rows)
        best = None
        for c in sorted(cands):
            stored = self._sig(c)
            if not (stored.reshape(self.bands, self.rows) == bands_q).all(axis=1).any():
                continue  # a band-key collision, no band in common
            j = float(np.mean(stored == sig))
            if j >= threshold and (best is None or j > best[1]):
                best = (c, j)
        return best

    def insert(self, sig: np.ndarray) -> int:
        idx = self.n
        if idx == len(self._blocks) * self._BLOCK:
            self._blocks.append(np.zeros((self._BLOCK, self.num_perm), dtype=np.uint32))
        self._blocks[idx >> 14][idx & (self._BLOCK - 1)] = sig
        self.n += 1
        for b, k in enumerate(self._band_keys(sig).tolist()):
            self._recent[b].setdefault(k, []).append(idx)
        self._n_recent += 1
        if self._n_recent >= self._RECENT:
            self._merge_recent()
        return idx

    @staticmethod
    def _merge(
        a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        keys, idx = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
        order = np.argsort(keys, kind="stable")
        return keys[order], idx[order]

    def _merge_recent(self) -> None:
        for b in range(self.bands):
            rec = self._recent[b]
            pairs = [(k, i) for k, ids in rec.items() for i in ids]
            new = (
                np.fromiter((k for k, _ in pairs), np.uint64, len(pairs)),
                np.fromiter((i for _, i in pairs), np.int32, len(pairs)),
            )
            self._small[b] = self._merge(self._small[b], new)
            if len(self._small[b][0]) * 4 >= len(self._big[b][0]):
                self._big[b] = self._merge(self._big[b], self._small[b])
                self._small[b] = (np.zeros(0, np.uint64), np.zeros(0, np.int32))
            rec.clear()
        self._n_recent = 0
