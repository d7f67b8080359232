"""The one bootstrap used by every evaluation interval (MCQ accuracy, paired accuracy change,
document-level perplexity).

``bootstrap_ci`` draws ``n_resamples`` index vectors of the ``n`` sampled units (questions,
documents) with replacement from numpy ``default_rng(seed)``, evaluates ``statistic`` on each and
returns the percentile interval at ``level``. Draws are made in chunks to bound memory; the
chunking does not change the random stream, so results depend only on (n, statistic, n_resamples,
seed, level).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_ci(
    n: int,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval: ``statistic`` maps a ``(k, n)`` matrix of resampled unit
    indices to the ``k`` resampled values of the statistic."""
    if n <= 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        values[start : start + k] = statistic(rng.integers(0, n, size=(k, n)))
    alpha = round((1.0 - level) / 2.0, 12)  # 0.025 exactly for level 0.95
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_mean_ci(values, *, n_resamples: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (units resampled)."""
    x = np.asarray(values, dtype=np.float64)
    return bootstrap_ci(
        x.size, lambda idx: x[idx].mean(axis=1), n_resamples=n_resamples, seed=seed, level=level
    )
