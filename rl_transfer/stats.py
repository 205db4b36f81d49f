"""Aggregation over seeds (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice", google-research/rliable), done with scipy.

- interquartile mean: 25% trimmed mean (``scipy.stats.trim_mean``; equals the mean for 3 values);
- 95% percentile bootstrap interval (``scipy.stats.bootstrap``, seeded, 10,000 resamples) over the
  per-seed values; ``[v, v]`` when every value is ``v``;
- probability of improvement P(X > Y) as rliable defines it: Mann-Whitney U / (n m), ties count 1/2.

Intervals are for reading. Decisions come from tests that are calibrated at the seed count in
hand (a percentile bootstrap of 3 values covers far less than 95%): the paired t-test, the
sign-flip permutation test beside it from 6 seeds, Holm's procedure over a study's family, and
Lan-DeMets alpha spending (power family) over the looks of an adaptive study.
"""

from __future__ import annotations

import functools
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


BAND_BATCH = 1_000
"""Bootstrap resamples drawn at a time by :func:`iqm_band` (bounds its memory to
``BAND_BATCH * n_runs * n_steps`` floats; the resamples, and so the band, do not depend on it)."""


def iqm_band(
    ys: np.ndarray, seed: int = BOOTSTRAP_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs at each step of a set of curves on one grid, and its 95% percentile
    bootstrap band: at every step the numbers :func:`aggregate` gives for that step's values
    (the same IQM; the same seeded resamples, so the same interval up to floating-point
    rounding), computed in one vectorized bootstrap over the steps.

    Args:
        ys: shape [n_runs, n_steps], n_runs >= 1: each run's curve (mean return) on one grid.
        seed: the bootstrap's seed (:func:`aggregate`'s).

    Returns:
        ``(iqm, lower, upper)``, each shape [n_steps]. With one run, or at a step where every
        run has the same value, ``lower`` and ``upper`` equal the IQM there.

    Raises:
        ValueError: ``ys`` is not 2-D with at least one run, or holds NaN.
    """
    ys = np.asarray(ys, dtype=float)
    if ys.ndim != 2 or ys.shape[0] < 1 or np.isnan(ys).any():
        raise ValueError(f"iqm_band needs curves of shape [n_runs >= 1, n_steps], got {ys.shape}")
    centre = np.array([iqm(col) for col in ys.T])
    lower, upper = centre.copy(), centre.copy()
    spread = ~np.all(ys == ys[:1], axis=0)  # steps where the runs differ
    if ys.shape[0] > 1 and spread.any():
        res = stats.bootstrap(
            (ys[:, spread].T,),
            _iqm_axis,
            n_resamples=N_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            vectorized=True,
            axis=-1,
            batch=BAND_BATCH,
            rng=np.random.default_rng(seed),
        )
        lower[spread] = res.confidence_interval.low
        upper[spread] = res.confidence_interval.high
    return centre, lower, upper


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) = U / (n m) (rliable's ``probability_of_improvement`` for one task); ties count
    one half. ``x`` shape [n], ``y`` shape [m]."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(u / (len(x) * len(y)))


# ----------------------------------------------------------------------------------------------
# Decisions: tests, multiplicity, sequential looks

VERDICTS = ("positive", "negative", "inconclusive")
MIN_PERMUTATION_SEEDS = 6
"""Below 6 paired seeds an exact sign-flip test cannot reach p < 0.05 (its smallest two-sided
p-value is 2 / 2^n = 0.0625 at n = 5), so it cannot decide; the paired t-test can."""
SIGN_FLIP_RESAMPLES = 2**14
"""Sign-flip resamples: the test is exact (every sign pattern) up to n = 14, Monte Carlo above."""


def paired_t_test(d: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t-test (one-sample t-test of the per-seed differences
    ``d`` against 0; Student 1908, ``scipy.stats.ttest_1samp``).

    ``d``: shape [n], one paired difference per seed (transfer minus scratch). Returns None with
    fewer than 2 values. With zero variance (equal up to rounding, 1e-12 relative): 1.0 when
    every difference is 0, else the exact
    sign-flip p-value 2 / 2^n (the t statistic is infinite; the smallest p a sign-flip test
    gives is the honest bound).

    Under an A/A comparison (both arms from one distribution) the differences are symmetric about
    0, where the t-test is exact for normal data and conservative for heavy tails; the
    calibration benchmark (benchmarks/bench_calibration.py) checks its false-verdict rate.
    """
    x = np.asarray(d, dtype=float)
    n = len(x)
    if n < 2:
        return None
    if np.ptp(x) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))):  # equal up to rounding
        return 1.0 if np.all(np.abs(x) <= 1e-12) else min(1.0, 2.0 / 2**n)
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def sign_flip_test(d: Sequence[float], seed: int = BOOTSTRAP_SEED) -> float | None:
    """Two-sided p-value of the paired sign-flip permutation test of the mean difference
    (Fisher 1935; ``scipy.stats.permutation_test`` with ``permutation_type="samples"`` on one
    sample flips signs). Exact up to 14 seeds, Monte Carlo (2^14 resamples, seeded) above.
    None below :data:`MIN_PERMUTATION_SEEDS`, where it cannot reach 5%."""
    x = np.asarray(d, dtype=float)
    if len(x) < MIN_PERMUTATION_SEEDS:
        return None
    if np.all(x == 0):
        return 1.0
    res = stats.permutation_test(
        (x,),
        lambda v, axis: np.mean(v, axis=axis),
        permutation_type="samples",
        n_resamples=SIGN_FLIP_RESAMPLES,
        vectorized=True,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def decide(p_value: float | None, effect: float | None, level: float) -> str:
    """``positive`` / ``negative`` when ``p_value < level`` (by the sign of ``effect``, the mean
    paired difference), else ``inconclusive``."""
    if (
        p_value is None
        or effect is None
        or not np.isfinite(p_value)
        or not np.isfinite(effect)
        or p_value >= level
        or effect == 0
    ):
        return "inconclusive"
    return "positive" if effect > 0 else "negative"


def seeds_needed(
    d: Sequence[float], level: float = 0.05, power: float = 0.8, max_seeds: int = 1000
) -> int | None:
    """Seeds a paired t-test at two-sided ``level`` would need to detect the observed mean
    difference with probability ``power``, taking the observed standard deviation as the truth
    (power from the noncentral t distribution). ``d``: shape [n], n >= 2.

    Returns None when it cannot be estimated (fewer than 2 values or a zero mean difference) or
    when it exceeds ``max_seeds``. With zero spread (every difference equal and nonzero) the
    test's p-value is 2 / 2^n, and the answer is the smallest n with 2 / 2^n < ``level``.
    An estimate from few seeds is rough: it says how
    many more seeds are worth running, not a guarantee."""
    x = np.asarray(d, dtype=float)
    if len(x) < 2:
        return None
    mean, sd = float(np.mean(x)), float(np.std(x, ddof=1))
    if mean == 0:
        return None
    if sd == 0:  # every difference equal: the test's p is the sign-flip bound 2 / 2^n
        n_flip = int(np.floor(np.log2(2.0 / level))) + 1
        return max(2, n_flip) if n_flip <= max_seeds else None
    effect = abs(mean) / sd
    n = np.arange(2, max_seeds + 1)
    crit = stats.t.ppf(1 - level / 2, n - 1)
    nc = effect * np.sqrt(n)
    pw = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
    ok = np.flatnonzero(pw >= power)
    return int(n[ok[0]]) if len(ok) else None


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm 1979): reject hypothesis i at family-wise error
    ``alpha`` when its adjusted p-value is < ``alpha``. None entries (no test) stay None and do
    not count toward the family size."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: p_values[j])):  # type: ignore[arg-type,return-value]
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


SPENDING_RHO = 2.0
"""Exponent of the alpha-spending function alpha * fraction^rho. rho = 2 spends little at the
first looks, where a t-test on 3 seeds has almost no power, and keeps most of alpha for the last
(rho = 1 spends evenly, rho = 3 is close to O'Brien-Fleming); chosen by simulation
(benchmarks/bench_calibration.py)."""
BOUNDARY_SIMULATIONS = 200_000
FUTILITY_FACTOR = 2
"""A comparison stops as futile when the seeds it would need exceed this many times max_seeds."""


def spent_alpha(fraction: float, alpha: float) -> float:
    """The error spent by information fraction ``fraction`` in [0, 1] (here the seeds run so far
    over the maximum): alpha * fraction^rho, the power family of Lan-DeMets spending functions
    (Lan & DeMets 1983, Biometrika 70; Kim & DeMets 1987, Biometrics 43), rho =
    :data:`SPENDING_RHO`."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    return alpha * fraction**SPENDING_RHO


def look_schedule(min_seeds: int, max_seeds: int) -> list[int]:
    """The seed counts at which an adaptive study looks: ``min_seeds``, then about 1.5x more each
    round, ending at ``max_seeds`` (for 3 and 10: 3, 5, 8, 10)."""
    looks = [min(min_seeds, max_seeds)]
    while looks[-1] < max_seeds:
        looks.append(min(max_seeds, max(looks[-1] + 2, int(np.ceil(looks[-1] * 1.5)))))
    return looks


def _t_p_values(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(n))
    return 2 * stats.t.sf(np.abs(t), n - 1)


@functools.lru_cache(maxsize=64)
def _levels(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    rng = np.random.default_rng(20_181_029)
    x = rng.standard_normal((BOUNDARY_SIMULATIONS, looks[-1]))
    p = np.stack([_t_p_values(x[:, :n]) for n in looks], axis=1)
    alive = np.ones(len(x), dtype=bool)
    levels, spent = [], 0.0
    for k, n in enumerate(looks):
        if k == 0:  # nothing rejected before: the level is the alpha spent, exactly
            level = spent_alpha(n / looks[-1], alpha)
            rejected = p[:, 0] <= level
            spent += rejected.sum() / len(x)
            alive &= ~rejected
            levels.append(level)
            continue
        want = int(round((spent_alpha(n / looks[-1], alpha) - spent) * len(x)))
        candidates = np.sort(p[alive, k])
        level = float(candidates[want - 1]) if want > 0 else 0.0
        rejected = alive & (p[:, k] <= level)
        spent += rejected.sum() / len(x)
        alive &= ~rejected
        levels.append(level)
    return tuple(levels)


def look_levels(looks: Sequence[int], alpha: float) -> list[float]:
    """Nominal two-sided p-value level of each look of a group-sequential paired t-test that
    spends :func:`spent_alpha` of ``alpha`` by each look.

    Each level is set so that, under the null hypothesis with normal differences, the chance to
    reject for the first time at that look is exactly the error spent there: the joint law of the
    t statistics at the looks (they share seeds) is pivotal, so it is simulated once
    (:data:`BOUNDARY_SIMULATIONS` sequences, seeded) instead of bounding it (a Bonferroni split
    over looks would waste power). For other symmetric laws of the differences the t-test's
    robustness carries over; the calibration benchmark checks heavy-tailed and skewed arms."""
    return list(_levels(tuple(int(n) for n in looks), float(alpha)))


@dataclass(frozen=True)
class Look:
    """One hypothesis at one look of an adaptive study.

    Attributes:
        status: ``positive`` / ``negative`` (decided), ``futile`` (stopped: the seeds it would
            need exceed the maximum), ``failed`` (fewer than 2 paired seeds finished by the
            second look), ``undecided`` (the last look passed without a decision) or
            ``continue`` (run more seeds).
        n: seeds at this look.
        p_value: paired t-test p-value of the differences.
        level: the nominal level spent at this look.
        seeds_needed: the estimate behind a futility stop (None when not estimable).
    """

    status: str
    n: int
    p_value: float | None
    level: float
    seeds_needed: int | None = None


def sequential_look(
    d: Sequence[float], k: int, looks: Sequence[int], max_seeds: int, alpha: float
) -> Look:
    """Decide one hypothesis at look ``k`` (0-based) of ``looks`` from its paired differences
    ``d`` (shape [looks[k]]), with ``alpha`` this hypothesis's share of the family's error
    (alpha / m, Bonferroni).

    The look rejects when the paired t-test p-value is at most the look's level
    (:func:`look_levels`); from the second look on, a hypothesis whose estimated seeds needed
    (:func:`seeds_needed` at ``alpha``) exceed :data:`FUTILITY_FACTOR` x ``max_seeds``, or
    cannot be estimated (no effect), stops as futile. Futility never rejects, so it cannot
    raise the error (non-binding)."""
    x = np.asarray(d, dtype=float)
    level = look_levels(looks, alpha)[k]
    if len(x) < 2 and k >= 1:  # the runs of this comparison failed: nothing to test
        return Look("failed", len(x), None, level)
    p = paired_t_test(x)
    status = (
        decide(p, float(np.mean(x)) if len(x) else None, 1.0)
        if p is not None and p <= level
        else "inconclusive"
    )
    if status != "inconclusive":
        return Look(status, len(x), p, level)
    if k == len(looks) - 1:
        return Look("undecided", len(x), p, level, seeds_needed(x, alpha))
    if k >= 1:
        need = seeds_needed(x, alpha, max_seeds=FUTILITY_FACTOR * max_seeds)
        if need is None:
            return Look("futile", len(x), p, level, None)
    return Look("continue", len(x), p, level)


def sequential_holm_look(
    differences: dict[str, Sequence[float]],
    k: int,
    looks: Sequence[int],
    max_seeds: int,
    alpha: float,
    m: int,
    rejected_before: int,
) -> dict[str, Look]:
    """Decide every open hypothesis of a family of ``m`` at look ``k``, with the sequential Holm
    procedure of the graphical approach for group-sequential designs (Maurer & Bretz 2013,
    Statistics in Biopharmaceutical Research 5): each hypothesis not yet rejected holds
    alpha / (m - rejected) and is tested at its group-sequential level for that share
    (:func:`sequential_look`); a rejection passes its share on to the others, which are tested
    again at the same look, until no more is rejected. Futility is then judged at the final
    share. The family-wise error stays at most ``alpha``.

    Args:
        differences: hypothesis -> its paired differences at this look (shape [n]).
        rejected_before: hypotheses of the family rejected at earlier looks.

    Returns:
        hypothesis -> :class:`Look` (status ``continue`` for those still open).
    """
    out: dict[str, Look] = {}
    rejected = rejected_before
    pending = dict(differences)
    while True:
        share = alpha / max(1, m - rejected)
        newly = {}
        for h, d in pending.items():
            look = sequential_look(d, k, looks, max_seeds, share)
            if look.status in ("positive", "negative"):
                newly[h] = look
        if not newly:
            break
        out.update(newly)
        rejected += len(newly)
        for h in newly:
            pending.pop(h)
    share = alpha / max(1, m - rejected)
    for h, d in pending.items():
        out[h] = sequential_look(d, k, looks, max_seeds, share)
    return out
