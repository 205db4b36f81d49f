"""Transfer metrics for one seed pair (transfer arm T vs scratch arm B on the same target).

Definitions follow docs/metrics.md: Taylor & Stone 2009 (JMLR 10, sec. 2.1) for jumpstart,
asymptotic gain, AUC gain (total reward), transfer ratio (area form), time to threshold and its
speed-up; Wolczyk et al. 2021 (Continual World) for normalized forward transfer.

Curves are mean evaluation returns per episode against target env steps. Both arms are compared on
scratch's evaluation grid (``t`` in [0, t_max]); the transfer arm is linearly interpolated onto it
(AUC and the bootstrap need one grid). Undefined or censored values are ``None`` with a reason,
never NaN or Infinity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

ACCOUNTINGS = ("target_only", "total_time", "amortized")
"""How the source's training steps are charged: not at all, in full, or divided by the number of
target runs that reuse the same source (Taylor & Stone 2009)."""

METRIC_NAMES = (
    "jumpstart",
    "asymptotic_gain",
    "auc_gain",
    "transfer_ratio",
    "time_to_threshold_transfer",
    "time_to_threshold_scratch",
    "time_to_threshold_gain",
    "time_to_threshold_speedup",
    "forward_transfer",
    "normalized_area_gain",
)
"""Per-seed metric names (the accounting suffix ``_total_time`` / ``_amortized`` is added for the
other accountings; ``time_to_threshold_scratch`` does not depend on accounting)."""


@dataclass(frozen=True)
class Curve:
    """An evaluation curve: ``t`` shape [n] (target env steps, increasing, t[0] = 0) and ``f``
    shape [n] (mean evaluation return per episode at each t)."""

    t: np.ndarray
    f: np.ndarray

    def __post_init__(self) -> None:
        t, f = np.asarray(self.t, dtype=float), np.asarray(self.f, dtype=float)
        if t.ndim != 1 or t.shape != f.shape or len(t) < 2:
            raise ValueError(
                f"a curve needs t and f of equal shape [n >= 2], got {t.shape} {f.shape}"
            )
        if t[0] != 0 or np.any(np.diff(t) <= 0):
            raise ValueError("a curve's t must start at 0 (the t = 0 evaluation) and increase")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "f", f)

    def at(self, t: np.ndarray) -> np.ndarray:
        """Linear interpolation of f at steps ``t`` (held constant past the last evaluation)."""
        return np.interp(t, self.t, self.f)


@dataclass(frozen=True)
class Value:
    """A per-seed metric value: ``value`` (None when undefined), ``note`` (why None, or a flag
    such as ``lower bound``)."""

    value: float | None
    note: str | None = None


def auc(t: np.ndarray, f: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule (return x steps)."""
    return float(np.trapezoid(f, t))


def time_to_threshold(t: np.ndarray, f: np.ndarray, threshold: float) -> float | None:
    """First evaluated ``t`` with ``f(t) >= threshold``; None when never reached (right-censored
    at t_max)."""
    hit = np.flatnonzero(f >= threshold)
    return float(t[hit[0]]) if len(hit) else None


def normalize(f: np.ndarray, r_min: float, r_max: float, clip: bool = False) -> np.ndarray:
    """``(f - r_min) / (r_max - r_min)``, optionally clipped to [0, 1]."""
    g = (np.asarray(f, dtype=float) - r_min) / (r_max - r_min)
    return np.clip(g, 0.0, 1.0) if clip else g


def normalized_area(t: np.ndarray, f: np.ndarray, r_min: float, r_max: float) -> float:
    """A = mean over [0, t[-1]] of the normalized curve clipped to [0, 1] (Continual World's
    AUC~; the score of forward transfer and of probability of improvement)."""
    return auc(t, normalize(f, r_min, r_max, clip=True)) / float(t[-1])


def _segment_points(
    shift: float, segment: Curve | None, r_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """The segment's points over [0, shift]: its checkpoints compressed in time by
    ``shift / segment.t[-1]`` (1 in total-time accounting), or R_min throughout without one."""
    if segment is None:
        return np.array([0.0, shift]), np.array([r_min, r_min])
    scale = shift / float(segment.t[-1]) if segment.t[-1] > 0 else 0.0
    return segment.t * scale, segment.f


def total_time_curve(
    transfer: Curve,
    grid: np.ndarray,
    shift: float,
    segment: Curve | None,
    r_min: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transfer learner's curve over total env steps (source steps charged), sampled at
    ``grid``, and its own evaluated points.

    Over [0, shift) it is the source's measured zero-shot curve on the target (``segment``:
    its checkpoints during pretraining, t = source steps; compressed in time by
    ``shift / segment.t[-1]`` for the amortized form), then the transfer arm's curve
    f_T(t - shift). Without a segment (an imported source) R_min stands for it, an assumption.

    Returns:
        ``(values at grid, t of the evaluated points, f of the evaluated points)``; the points
        (segment's, then the arm's shifted by ``shift``) locate the time to threshold.
    """
    out = np.empty(len(grid))
    before = grid < shift
    seg_t, seg_f = _segment_points(shift, segment, r_min)
    out[before] = np.interp(grid[before], seg_t, seg_f)
    out[~before] = transfer.at(grid[~before] - shift)
    keep = seg_t < shift
    points_t = np.concatenate([seg_t[keep], transfer.t + shift])
    points_f = np.concatenate([seg_f[keep], transfer.f])
    return out, points_t, points_f


def total_time_exact(
    transfer: Curve, t_max: float, shift: float, segment: Curve | None, r_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """The total-time curve of :func:`total_time_curve` as the breakpoints of its piecewise-linear
    form over [0, t_max], with the jump at ``shift`` kept (two points at t = shift: the
    segment's end, then f_T(0)). Areas integrate these exactly; sampling on scratch's grid
    alone would draw a ramp across the jump and credit the arm with area it never had.

    Returns:
        ``(t, f)``, shape [k] each, t non-decreasing from 0 to ``t_max``.
    """
    seg_t, seg_f = _segment_points(shift, segment, r_min)
    inner = seg_t[(seg_t > 0) & (seg_t < min(shift, t_max))]
    t_before = np.concatenate([[0.0], inner, [min(shift, t_max)]])
    f_before = np.interp(t_before, seg_t, seg_f)
    if shift >= t_max:
        return t_before, f_before
    after = transfer.t[transfer.t + shift < t_max] + shift
    t_after = np.concatenate([after, [t_max]])
    f_after = transfer.at(t_after - shift)
    return np.concatenate([t_before, t_after]), np.concatenate([f_before, f_after])


def seed_metrics(
    transfer: Curve,
    scratch: Curve,
    *,
    threshold: float,
    r_min: float,
    r_max: float,
    eval_every: float,
    source_steps: float,
    source_curve: Curve | None = None,
    n_reuse: int = 1,
    asymptote_window: int = 5,
) -> dict[str, Value]:
    """Every metric for one seed pair, in every accounting.

    Args:
        transfer, scratch: the two arms' curves on the same target (t in target env steps).
        threshold: time-to-threshold level (return).
        r_min, r_max: normalization bounds of the pair (returns).
        eval_every: evaluation interval in steps (delta, the speed-up's resolution).
        source_steps: t_src, env steps spent training the source.
        source_curve: the source's measured curve on the target during its pretraining
            (t = source steps, from 0 to ``source_steps``); None for an imported source, whose
            segment is then assumed at R_min (noted).
        n_reuse: number of target runs that reuse this source (amortized accounting: t_src / N).
        asymptote_window: k, the number of last evaluations averaged for asymptotic gain.

    Returns:
        Metric name (with ``_total_time`` / ``_amortized`` suffix for those accountings) ->
        :class:`Value`. ``normalized_area_gain`` is A_T - A_B, the paired difference that
        verdicts test (same sign as forward transfer, and antisymmetric in the arms).
    """
    grid = scratch.t
    t_max = float(grid[-1])
    out: dict[str, Value] = {}
    fb = scratch.f
    ttt_b = time_to_threshold(grid, fb, threshold)
    out["time_to_threshold_scratch"] = (
        Value(ttt_b) if ttt_b is not None else Value(None, f"not reached within {t_max:g} steps")
    )
    shifts = {
        "target_only": 0.0,
        "total_time": float(source_steps),
        "amortized": float(source_steps) / max(1, n_reuse),
    }
    a_b = normalized_area(grid, fb, r_min, r_max)
    auc_nb = auc(grid, normalize(fb, r_min, r_max))
    for accounting, shift in shifts.items():
        suffix = "" if accounting == "target_only" else f"_{accounting}"
        notes: list[str] = []
        if shift > 0:
            ft, points_t, points_f = total_time_curve(transfer, grid, shift, source_curve, r_min)
            area_t, area_f = total_time_exact(transfer, t_max, shift, source_curve, r_min)
            if source_curve is None:
                notes.append("source segment assumed at R_min (imported source: not measured)")
        else:
            ft, points_t, points_f = transfer.at(grid), transfer.t, transfer.f
            area_t, area_f = grid, ft
        values: dict[str, Value] = {}
        values["jumpstart"] = Value(float(ft[0] - fb[0]))
        k = min(asymptote_window, len(grid))
        values["asymptotic_gain"] = Value(float(ft[-k:].mean() - fb[-k:].mean()))
        values["auc_gain"] = Value(auc(area_t, area_f) - auc(grid, fb))
        auc_nt = auc(area_t, normalize(area_f, r_min, r_max))
        values["transfer_ratio"] = (
            Value((auc_nt - auc_nb) / auc_nb)
            if auc_nb > 0
            else Value(None, "scratch's normalized area is not positive")
        )
        a_t = normalized_area(area_t, area_f, r_min, r_max)
        values["normalized_area_gain"] = Value(a_t - a_b)
        values["forward_transfer"] = (
            Value((a_t - a_b) / (1.0 - a_b))
            if a_b < 1.0
            else Value(None, "scratch is at R_max over the whole budget")
        )
        ttt_t = time_to_threshold(points_t, points_f, threshold)
        if ttt_t is None:
            values["time_to_threshold_transfer"] = Value(
                None, f"not reached within {float(transfer.t[-1]):g} target steps"
            )
        elif shift > 0 and ttt_t < shift:
            values["time_to_threshold_transfer"] = Value(
                ttt_t, "reached while training on the source (its checkpoint on the target)"
            )
        else:
            values["time_to_threshold_transfer"] = Value(ttt_t)
        if ttt_t is None:
            values["time_to_threshold_gain"] = Value(
                None, "transfer arm did not reach the threshold"
            )
            values["time_to_threshold_speedup"] = Value(
                None, "transfer arm did not reach the threshold"
            )
        elif ttt_b is None:
            values["time_to_threshold_gain"] = Value(None, "scratch did not reach the threshold")
            values["time_to_threshold_speedup"] = Value(
                t_max / max(ttt_t, eval_every), "lower bound: scratch censored at t_max"
            )
        else:
            values["time_to_threshold_gain"] = Value(ttt_b - ttt_t)
            values["time_to_threshold_speedup"] = Value(
                max(ttt_b, eval_every) / max(ttt_t, eval_every)
            )
        if shift >= t_max:
            notes.append(
                f"source steps ({shift:g}) >= target budget ({t_max:g}): transfer cannot pay "
                "within the budget"
            )
        if notes:
            for name in ("auc_gain", "forward_transfer", "normalized_area_gain"):
                v = values[name]
                values[name] = Value(v.value, "; ".join(filter(None, [v.note, *notes])))
        for name, v in values.items():
            out[name + suffix] = v
    return out


def curve_from_evaluations(data: Mapping[str, np.ndarray]) -> Curve:
    """A :class:`Curve` from an ``evaluations.npz`` mapping (mean over episodes of ``results``)."""
    return Curve(np.asarray(data["timesteps"]), np.asarray(data["results"]).mean(axis=1))
