"""The compact LSH index answers exactly as a plain banded-LSH dictionary index would, across its
merge levels (more inserts than it keeps in its dictionaries) and its signature blocks."""

from __future__ import annotations

import numpy as np

from astrollama.data.dedup import LSHIndex


class DictLSH:
    """The reference: one dictionary per band keyed by the band's bytes, every signature kept."""

    def __init__(self, num_perm: int, bands: int) -> None:
        self.bands, self.rows = bands, num_perm // bands
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self.sigs: list[np.ndarray] = []

    def query(self, sig: np.ndarray, threshold: float) -> tuple[int, float] | None:
        cands: set[int] = set()
        for b in range(self.bands):
            cands.update(self.tables[b].get(sig[b * self.rows : (b + 1) * self.rows].tobytes(), ()))
        best = None
        for c in sorted(cands):
            j = float(np.mean(self.sigs[c] == sig))
            if j >= threshold and (best is None or j > best[1]):
                best = (c, j)
        return best

    def insert(self, sig: np.ndarray) -> int:
        self.sigs.append(sig)
        for b in range(self.bands):
            self.tables[b].setdefault(sig[b * self.rows : (b + 1) * self.rows].tobytes(), []).append(
                len(self.sigs) - 1
            )
        return len(self.sigs) - 1


def test_compact_index_matches_the_dictionary_index() -> None:
    rng = np.random.default_rng(0)
    n, num_perm, bands = 20_000, 64, 16
    compact, ref = LSHIndex(num_perm, bands), DictLSH(num_perm, bands)
    kept: list[np.ndarray] = []
    hits = 0
    for i in range(n):
        if kept and rng.random() < 0.1:  # a near copy of a kept signature: some rows changed
            sig = kept[rng.integers(len(kept))].copy()
            k = rng.integers(1, num_perm // 2)
            sig[rng.choice(num_perm, size=k, replace=False)] = rng.integers(0, 2**32, size=k, dtype=np.uint32)
        else:
            sig = rng.integers(0, 1000, size=num_perm, dtype=np.uint32)  # small alphabet: band collisions
        got, want = compact.query(sig, 0.5), ref.query(sig, 0.5)
        assert got == want, (i, got, want)
        hits += want is not None
        if want is None:
            assert compact.insert(sig) == ref.insert(sig)
            kept.append(sig)
    assert hits > n // 20 and len(compact) == len(ref.sigs) > LSHIndex._RECENT * 3
    assert np.array_equal(compact.sigs, np.stack(ref.sigs))
