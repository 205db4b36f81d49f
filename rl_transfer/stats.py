"""Aggregation over seeds (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice", google-research/rliable), done with scipy.

- interquartile mean: 25% trimmed mean (``scipy.stats.trim_mean``; equals the mean for 3 values);
- 95% percentile bootstrap interval (``scipy.stats.bootstrap``, seeded, 10,000 resamples) over the
  per-seed values; ``[v, v]`` when every value is ``v``;
- probability of improvement P(X > Y) as rliable defines it: Mann-Whitney U / (n m), ties count 1/2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean of ``values`` (shape [n], n >= 1)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def _iqm_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(x, 0.25, axis=axis)


@dataclass(frozen=True)
class Aggregate:
    """IQM and interval of one metric over seeds.

    Attributes:
        iqm: interquartile mean of the defined values (None if none is defined).
        ci: 95% percentile bootstrap interval ``(lo, hi)`` (None with fewer than 2 defined values).
        n_defined: how many per-seed values were defined.
    """

    iqm: float | None
    ci: tuple[float, float] | None
    n_defined: int


def aggregate(values: Sequence[float | None], seed: int = BOOTSTRAP_SEED) -> Aggregate:
    """IQM and 95% percentile bootstrap interval over the defined (non-None) values."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) == 0:
        return Aggregate(None, None, 0)
    centre = iqm(x)
    if len(x) == 1:
        return Aggregate(centre, None, 1)
    if np.all(x == x[0]):
        return Aggregate(centre, (float(x[0]), float(x[0])), len(x))
    res = stats.bootstrap(
        (x,),
        _iqm_axis,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Aggregate(centre, (lo, hi), len(x))


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) = U / (n m) (rliable's ``probability_of_improvement`` for one task); ties count
    one half. ``x`` shape [n], ``y`` shape [m]."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(u / (len(x) * len(y)))


def verdict(ci: tuple[float, float] | None) -> str:
    """``negative`` when the forward-transfer interval lies wholly below 0, ``positive`` when
    wholly above, else ``inconclusive`` (also when there is no interval)."""
    if ci is None:
        return "inconclusive"
    if ci[1] < 0:
        return "negative"
    if ci[0] > 0:
        return "positive"
    return "inconclusive"
