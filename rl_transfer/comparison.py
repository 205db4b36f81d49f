"""One transfer-vs-scratch comparison: every metric per seed, its IQM, interval and p-value, and a
calibrated verdict. The code path of the reports, usable on its own (numpy and scipy only).

Example (3 seeds, 3 evaluations)::

    import numpy as np, rl_transfer
    t = np.array([0, 1000, 2000])
    c = rl_transfer.compare(t, transfer=np.array([[50, 400, 500]] * 3),
                            scratch=np.array([[20, 100, 300]] * 3),
                            threshold=475, r_min=20, r_max=500)
    c.verdict, c.metrics["forward_transfer"].iqm, c.metrics["forward_transfer"].p_value

The verdict tests the paired per-seed difference of normalized areas, d_i = A_T,i - A_B,i
(A = mean of the normalized curve clipped to [0, 1] over the budget). It has the sign of
forward transfer, and unlike forward transfer it is antisymmetric (swapping the arms flips its
sign), so under an A/A comparison its distribution is symmetric about 0. The test is the paired
t-test at every seed count; from 6 seeds the exact sign-flip permutation test is reported beside
it as a robustness check (below 6 it cannot reach p < 0.05). Colas, Sigaud & Oudeyer (2018,
"How many random seeds?"; 2019, "A hitchhiker's guide to statistical comparisons of RL
algorithms") compare such tests' false-positive rates for RL at small n; the calibration
benchmark (benchmarks/bench_calibration.py, docs/metrics.md) measures this rule's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from rl_transfer.metrics import ACCOUNTINGS, METRIC_NAMES, Curve, Value, seed_metrics
from rl_transfer.stats import (
    Aggregate,
    aggregate,
    decide,
    paired_t_test,
    seeds_needed,
    sign_flip_test,
)

UNCHANGED_BY_ACCOUNTING = {"time_to_threshold_scratch"}
"""Metrics with no accounting suffix: they do not depend on the source's cost."""
NULL_VALUES: dict[str, float | None] = {
    "jumpstart": 0.0,
    "asymptotic_gain": 0.0,
    "auc_gain": 0.0,
    "transfer_ratio": 0.0,
    "time_to_threshold_transfer": None,
    "time_to_threshold_scratch": None,
    "time_to_threshold_gain": 0.0,
    "time_to_threshold_speedup": 1.0,
    "forward_transfer": 0.0,
    "normalized_area_gain": 0.0,
}
"""Each metric's no-difference value (None: a level, not a difference; no test)."""


class ComparisonError(ValueError):
    """Arrays given to :func:`compare` have the wrong shapes or values."""


def metric_keys() -> list[tuple[str, str, str]]:
    """(summary key, metric name, accounting) for every metric of a comparison."""
    keys = []
    for accounting in ACCOUNTINGS:
        for name in METRIC_NAMES:
            if accounting != "target_only" and name in UNCHANGED_BY_ACCOUNTING:
                continue
            suffix = "" if accounting == "target_only" else f"_{accounting}"
            keys.append((name + suffix, name, accounting))
    return keys


@dataclass
class MetricResult:
    """One metric over seeds.

    Attributes:
        per_seed: one value per seed (None where undefined for that seed), seed order as given.
        notes: seed index -> why undefined, or a flag such as "lower bound".
        p_value: two-sided p-value of the paired t-test of the defined values against the
            metric's no-difference value (0 for gains and forward transfer, 1 for the speed-up,
            tested on its logarithm); forward transfer and ``normalized_area_gain`` carry the
            verdict's test of A_T - A_B. None where there is no such value or fewer than 2 seeds
            are defined.
        iqm, ci, n_defined: interquartile mean and 95% percentile bootstrap interval of the
            defined values (:func:`rl_transfer.stats.aggregate`), computed when first read.
    """

    per_seed: list[float | None]
    notes: dict[int, str]
    name: str
    test_p: float | None = field(default=None, repr=False)
    """The verdict's p-value, for the metrics that carry it."""

    @cached_property
    def p_value(self) -> float | None:
        if self.name in ("forward_transfer", "normalized_area_gain"):
            return self.test_p
        return _metric_p(self.name, self.per_seed)

    @cached_property
    def _agg(self) -> Aggregate:
        return aggregate(self.per_seed)

    @property
    def iqm(self) -> float | None:
        return self._agg.iqm

    @property
    def ci(self) -> tuple[float, float] | None:
        return self._agg.ci

    @property
    def n_defined(self) -> int:
        return self._agg.n_defined


@dataclass
class Comparison:
    """What :func:`compare` returns.

    Attributes:
        verdict: ``positive``, ``negative`` or ``inconclusive``: target-only A_T - A_B tested at
            ``alpha`` for this one comparison (no correction for other comparisons).
        verdict_total_time, verdict_amortized: the same with the source's steps charged in full,
            or divided by ``n_reuse``.
        p_value, p_value_total_time, p_value_amortized: the paired t-tests behind them.
        p_value_sign_flip: the sign-flip permutation test of target-only A_T - A_B (None below
            6 seeds), the robustness check.
        seeds_needed: seeds a paired t-test at ``alpha`` would need for 80% power at the observed
            effect (None when decided, or not estimable).
        n_seeds: seeds compared.
        alpha: the level.
        metrics: metric name (``forward_transfer``, ``forward_transfer_total_time``, ...) ->
            :class:`MetricResult`.
    """

    verdict: str
    verdict_total_time: str
    verdict_amortized: str
    p_value: float | None
    p_value_total_time: float | None
    p_value_amortized: float | None
    n_seeds: int
    alpha: float
    metrics: dict[str, MetricResult] = field(default_factory=dict)

    def _d(self) -> list[float]:
        return [v for v in self.metrics["normalized_area_gain"].per_seed if v is not None]

    @cached_property
    def p_value_sign_flip(self) -> float | None:
        return sign_flip_test(self._d())

    @cached_property
    def seeds_needed(self) -> int | None:
        if self.verdict != "inconclusive":
            return None
        return seeds_needed(self._d(), self.alpha)


def _metric_p(name: str, values: Sequence[float | None]) -> float | None:
    null = NULL_VALUES[name]
    if null is None:
        return None
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if name == "time_to_threshold_speedup":
        if np.any(x <= 0):
            return None
        x = np.log(x)
        null = 0.0
    return paired_t_test(x - null)


def _as_2d(name: str, a: object, n_evals: int | None = None) -> np.ndarray:
    try:
        x = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        raise ComparisonError(f"{name} must be a numeric array [n_seeds, n_evals]") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or (n_evals is not None and x.shape[1] != n_evals):
        want = f"[n_seeds, {n_evals}]" if n_evals is not None else "[n_seeds, n_evals]"
        raise ComparisonError(f"{name} must have shape {want}, got {np.shape(a)}")
    if not np.all(np.isfinite(x)):
        raise ComparisonError(f"{name} holds NaN or infinite values")
    return x


def compare(
    t: Sequence[float] | np.ndarray,
    transfer: Sequence[Sequence[float]] | np.ndarray,
    scratch: Sequence[Sequence[float]] | np.ndarray,
    *,
    threshold: float,
    r_min: float,
    r_max: float,
    eval_every: float | None = None,
    source_steps: float = 0,
    source_curve: tuple[Sequence[float], Sequence[Sequence[float]]] | None = None,
    n_reuse: int = 1,
    asymptote_window: int = 5,
    alpha: float = 0.05,
) -> Comparison:
    """Compare a transfer arm with the scratch baseline over paired seeds.

    Args:
        t: shape [n_evals], target env steps of the evaluations, increasing, t[0] = 0.
        transfer, scratch: shape [n_seeds, n_evals], mean evaluation return per episode of each
            arm at each t; row i of both is seed i (target seed i of the transfer arm started
            from source seed i).
        threshold: time-to-threshold level (return).
        r_min, r_max: the pair's normalization bounds (returns), r_min < r_max.
        eval_every: evaluation interval in steps, the speed-up's resolution; default t[1] - t[0].
        source_steps: env steps spent training the source (charged in total-time accounting).
        source_curve: ``(t_src, values)``, the source's measured curve on the target during its
            pretraining: ``t_src`` shape [m] from 0 to ``source_steps``, ``values`` shape
            [n_seeds, m]. None: no measured segment (an imported source); R_min stands for it,
            noted as assumed.
        n_reuse: target runs sharing one source (amortized accounting: source_steps / n_reuse).
        asymptote_window: last k evaluations averaged for asymptotic gain.
        alpha: level of the verdicts.

    Returns:
        A :class:`Comparison`.

    Raises:
        ComparisonError (a ValueError): shapes that do not match or ragged arrays, t not starting
            at 0 or not increasing, NaN or infinite values, r_min >= r_max, fewer than 2
            evaluations, a source curve that does not end at ``source_steps``, alpha outside
            (0, 1), eval_every <= 0, source_steps < 0, a non-finite threshold, or
            asymptote_window or n_reuse below 1.
    """
    tt = np.asarray(t, dtype=float)
    if tt.ndim != 1 or len(tt) < 2:
        raise ComparisonError(f"t must have shape [n_evals >= 2], got {np.shape(t)}")
    if not np.all(np.isfinite(tt)) or tt[0] != 0 or np.any(np.diff(tt) <= 0):
        raise ComparisonError(
            "t must be finite, start at 0 (the evaluation before any target step) and increase"
        )
    xt = _as_2d("transfer", transfer, len(tt))
    xb = _as_2d("scratch", scratch, len(tt))
    if xt.shape[0] < 1:
        raise ComparisonError("transfer and scratch need at least one seed (one row each)")
    if xt.shape != xb.shape:
        raise ComparisonError(
            f"transfer and scratch must have the same shape (paired seeds), got {xt.shape} and "
            f"{xb.shape}"
        )
    if not r_min < r_max:
        raise ComparisonError(f"r_min ({r_min}) must be below r_max ({r_max})")
    if not 0 < alpha < 1:
        raise ComparisonError(f"alpha must lie in (0, 1), got {alpha}")
    if eval_every is not None and not eval_every > 0:
        raise ComparisonError(f"eval_every must be positive, got {eval_every}")
    if not source_steps >= 0:
        raise ComparisonError(f"source_steps must be >= 0, got {source_steps}")
    if not np.isfinite(threshold):
        raise ComparisonError(f"threshold must be a finite return, got {threshold}")
    if int(asymptote_window) != asymptote_window or asymptote_window < 1:
        raise ComparisonError(f"asymptote_window must be an integer >= 1, got {asymptote_window}")
    if int(n_reuse) != n_reuse or n_reuse < 1:
        raise ComparisonError(f"n_reuse must be an integer >= 1, got {n_reuse}")
    n = xt.shape[0]
    segments: list[Curve | None] = [None] * n
    if source_curve is not None:
        try:
            ts = np.asarray(source_curve[0], dtype=float)
        except (TypeError, ValueError):
            raise ComparisonError("source_curve must be (t_src [m], values [n_seeds, m])") from None
        vs = _as_2d("source_curve values", source_curve[1], len(ts))
        if vs.shape[0] != n:
            raise ComparisonError(
                f"source_curve values must have one row per seed ({n}), got {vs.shape[0]}"
            )
        if (
            ts.ndim != 1
            or len(ts) < 2
            or not np.all(np.isfinite(ts))
            or ts[0] != 0
            or np.any(np.diff(ts) <= 0)
        ):
            raise ComparisonError("source_curve t must start at 0 and increase, with >= 2 points")
        if ts[-1] != source_steps:
            raise ComparisonError(
                f"source_curve t must end at source_steps ({source_steps:g}), got {ts[-1]:g}"
            )
        segments = [Curve(ts, row) for row in vs]
    delta = float(eval_every) if eval_every is not None else float(tt[1] - tt[0])
    per_seed = [
        seed_metrics(
            Curve(tt, xt[i]),
            Curve(tt, xb[i]),
            threshold=threshold,
            r_min=r_min,
            r_max=r_max,
            eval_every=delta,
            source_steps=source_steps,
            source_curve=segments[i],
            n_reuse=n_reuse,
            asymptote_window=asymptote_window,
        )
        for i in range(n)
    ]
    return comparison_from_seeds(per_seed, alpha)


def comparison_from_seeds(per_seed: list[dict[str, Value]], alpha: float = 0.05) -> Comparison:
    """A :class:`Comparison` from per-seed metrics (:func:`rl_transfer.metrics.seed_metrics`,
    one dict per seed, in seed order)."""
    metrics: dict[str, MetricResult] = {}
    p: dict[str, float | None] = {}
    effect: dict[str, float | None] = {}
    for accounting in ACCOUNTINGS:
        suffix = "" if accounting == "target_only" else f"_{accounting}"
        d = [m["normalized_area_gain" + suffix].value for m in per_seed]
        defined = [v for v in d if v is not None]
        p[accounting] = paired_t_test(defined)
        effect[accounting] = float(np.mean(defined)) if defined else None
    for key, name, accounting in metric_keys():
        values = [m[key].value for m in per_seed]
        notes = {i: m[key].note for i, m in enumerate(per_seed) if m[key].note}
        metrics[key] = MetricResult(values, notes, name, p[accounting])  # type: ignore[arg-type]
    verdicts = {a: decide(p[a], effect[a], alpha) for a in ACCOUNTINGS}
    return Comparison(
        verdict=verdicts["target_only"],
        verdict_total_time=verdicts["total_time"],
        verdict_amortized=verdicts["amortized"],
        p_value=p["target_only"],
        p_value_total_time=p["total_time"],
        p_value_amortized=p["amortized"],
        n_seeds=len(per_seed),
        alpha=alpha,
        metrics=metrics,
    )
