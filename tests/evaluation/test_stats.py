"""The shared bootstrap: chunked draws give the same interval as one draw of all resamples."""

from __future__ import annotations

import numpy as np
import pytest

from astrollama.evaluation.stats import bootstrap_ci, bootstrap_mean_ci


def test_bootstrap_chunking_does_not_change_the_interval() -> None:
    x = np.random.default_rng(7).random(1_000)
    # 2_000_000 // 1000 = 2000 resamples per chunk: 4500 resamples are drawn in 3 chunks
    got = bootstrap_mean_ci(x, n_resamples=4_500, seed=1)
    idx = np.random.default_rng(1).integers(0, x.size, size=(4_500, x.size))
    assert got == tuple(np.percentile(x[idx].mean(1), [2.5, 97.5]).tolist())
    assert got[0] < x.mean() < got[1]


def test_bootstrap_statistic_and_level() -> None:
    nll, tok = np.array([10.0, 20.0, 5.0]), np.array([5.0, 10.0, 1.0])
    lo, hi = bootstrap_ci(3, lambda i: nll[i].sum(1) / tok[i].sum(1), n_resamples=500, seed=0)
    assert 2.0 <= lo <= hi <= 5.0
    narrow = bootstrap_ci(3, lambda i: nll[i].sum(1) / tok[i].sum(1), n_resamples=500, seed=0, level=0.5)
    assert lo <= narrow[0] <= narrow[1] <= hi
    with pytest.raises(ValueError, match="empty sample"):
        bootstrap_mean_ci([], n_resamples=10)
