"""The report's PNG charts: learning curves per (pair, algo), forward transfer per comparison,
and the performance profile over pairs.

Drawn with matplotlib's object-oriented API only: each chart is its own
``matplotlib.figure.Figure``, saved by ``Figure.savefig`` (which picks the Agg renderer for a
.png file by itself). pyplot is never imported, no backend is chosen and no rcParams are changed,
so a program that set up matplotlib its own way keeps its set-up after a report. Files are
written atomically (temporary name, then rename).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rl_transfer.io import atomic_write
from rl_transfer.metrics import normalized_area, total_time_exact
from rl_transfer.reports.summary import (
    Loaded,
    RunData,
    forward_transfer_file,
    forward_transfer_pages,
    load_experiment,
)
from rl_transfer.stats import iqm_band

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 90
"""Resolution of every PNG (dots per inch)."""


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A new Figure (not registered with pyplot) and its axes, shape [nrows, ncols]."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _label(
    ax: Axes,
    title: str,
    xlabel: str,
    ylabel: str | None = None,
    grid_axis: str = "both",
    legend_loc: str = "best",
) -> None:
    """Title, axis labels, a light grid and, when something is labelled, a small legend."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(axis=grid_axis, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend_loc, fontsize=8)


def _save(fig: Figure, path: Path) -> Path:
    """Lay ``fig`` out and write it to ``path`` (PNG, :data:`DPI`) atomically; return ``path``."""
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=DPI))
    return path


@dataclass(frozen=True)
class Band:
    """An arm's aggregate learning curve: IQM over its seeds at each step of a grid and the 95%
    percentile bootstrap band around it (:func:`rl_transfer.stats.iqm_band`).

    Attributes:
        t: the grid, shape [k] (target env steps; env steps, source included, on a total-time
            axis).
        iqm, lower, upper: mean evaluation return, shape [k] each; lower <= iqm <= upper.
        n: seeds (runs) aggregated.
    """

    t: np.ndarray
    iqm: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: int

    @classmethod
    def of(cls, t: np.ndarray, ys: np.ndarray) -> Band:
        """The band of the curves ``ys`` (shape [n_runs, len(t)]) sampled at ``t``."""
        centre, lo, hi = iqm_band(ys)
        return cls(np.asarray(t, dtype=float), centre, lo, hi, len(ys))


Arm = tuple[str, str, str]
"""(pair, algo, method) of an arm; scratch is the arm ``method == "scratch"``."""


def _draw_band(ax: Axes, band: Band, label: str, color: str) -> None:
    ax.plot(band.t, band.iqm, color=color, label=f"{label} (n={band.n})")
    ax.fill_between(band.t, band.lower, band.upper, color=color, alpha=0.2)


def arm_bands(
    runs: Sequence[RunData], groups: Iterable[tuple[str, str]] | None = None
) -> dict[Arm, Band]:
    """The target-only aggregate curve of every arm (scratch included) with a finished run: each
    run's curve interpolated on its (pair, algo)'s grid (the first finished scratch run's
    steps, as the metrics compare arms; else the first arm's first run's), then IQM and 95%
    bootstrap band at each step. The curves PNG and the TensorBoard margin charts both draw
    these.

    Args:
        runs: the experiment's runs (:func:`~rl_transfer.reports.summary.load_experiment`).
        groups: (pair, algo) to compute (default: all).
    """
    arms = _arms(runs)
    wanted = None if groups is None else set(groups)
    grids: dict[tuple[str, str], np.ndarray] = {}
    for pair, algo, method in sorted(arms, key=lambda arm: arm[2] != "scratch"):
        grids.setdefault((pair, algo), arms[(pair, algo, method)][0].curve.t)
    bands = {}
    for (pair, algo, method), arm_runs in sorted(arms.items()):
        if wanted is not None and (pair, algo) not in wanted:
            continue
        grid = grids[(pair, algo)]
        bands[(pair, algo, method)] = Band.of(grid, np.stack([r.curve.at(grid) for r in arm_runs]))
    return bands


def total_time_points(
    runs: Sequence[RunData], grid: np.ndarray, shift: float, r_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """The total-time curves of transfer runs on one x-axis, as the total-time metrics compare
    them: over [0, shift] the source's segment on the target (its measured checkpoints, the
    last one held up to ``shift``; R_min throughout for a run without one), then the run's own
    curve shifted by ``shift``, sampled at ``grid`` (as the target-only panel is).

    Args:
        runs: finished transfer runs (``curve`` set; ``source_curve`` None when not measured).
        grid: scratch's evaluation steps, shape [n_evals]; the x-axis ends at ``grid[-1]``.
        shift: source steps charged, > 0.
        r_min: the pair's R_min (return).

    Returns:
        ``(t, ys)``: env steps, shape [k], non-decreasing from 0 to ``min(shift, grid[-1])`` or
        ``grid[-1]``; mean returns, shape [len(runs), k]. When ``shift < grid[-1]``, ``t``
        holds ``shift`` twice: the segment's end, then the run's f(0), so the jump is drawn
        upright rather than as a ramp between two evaluations.
    """
    t_max = float(grid[-1])
    end = min(shift, t_max)
    pieces = [total_time_exact(r.curve, t_max, shift, r.source_curve, r_min) for r in runs]
    lefts = []
    for t, f in pieces:
        k = int(np.searchsorted(t, end, side="left"))  # the first point at ``end``
        lefts.append((t[: k + 1], f[: k + 1]))
    t_left = np.unique(np.concatenate([grid[grid < end], *(t for t, _ in lefts)]))
    ys_left = np.stack([np.interp(t_left, t, f) for t, f in lefts])
    if shift >= t_max:
        return t_left, ys_left
    t_right = np.concatenate([[shift], grid[grid > shift]])
    ys_right = np.stack([r.curve.at(t_right - shift) for r in runs])
    return np.concatenate([t_left, t_right]), np.hstack([ys_left, ys_right])


def _segment_label(runs: Sequence[RunData]) -> str:
    measured = sum(r.source_curve is not None for r in runs)
    if measured == len(runs):
        how = "measured on the target"
    elif measured == 0:
        how = "assumed at R_min"
    else:
        how = f"measured on the target for {measured} of {len(runs)} runs, else R_min"
    return f"source training ({how})"


def _arms(runs: Sequence[RunData]) -> dict[Arm, list[RunData]]:
    """Finished runs per arm, in the order of ``runs``."""
    arms: dict[Arm, list[RunData]] = defaultdict(list)
    for run in runs:
        if run.curve is not None:
            arms[(run.info["pair"], run.info["algo"], run.info["method"])].append(run)
    return arms


MAX_COLUMNS = 4
"""Methods side by side in one curves PNG; more methods wrap onto further rows (two rows,
target-only and total-time, per line of methods), so a figure stays at most 20 in wide."""


def curves_figure(
    spec: dict[str, Any],
    runs: Sequence[RunData],
    pair: str,
    algo: str,
    bands: dict[Arm, Band] | None = None,
) -> Figure:
    """The curves chart of one (pair, algo): per method a panel pair with the IQM curve and its
    95% bootstrap band beside scratch's, target-only (upper panel: :func:`arm_bands`) and
    total-time (lower panel: the source's segment over [0, t_src], drawn by
    :func:`total_time_points`). At most :data:`MAX_COLUMNS` methods side by side; more wrap.

    Args:
        spec: experiment.yaml's content.
        runs: the experiment's runs (:func:`~rl_transfer.reports.summary.load_experiment`).
        pair, algo: which chart.
        bands: :func:`arm_bands`' result, to save computing it again.

    Raises:
        ValueError: (pair, algo) has no finished scratch run or no finished transfer run.
    """
    return _curves_figure(spec, _arms(runs), pair, algo, bands)


def _curves_figure(
    spec: dict[str, Any],
    arms: dict[Arm, list[RunData]],
    pair: str,
    algo: str,
    bands: dict[Arm, Band] | None,
) -> Figure:
    methods = sorted(m for p, a, m in arms if (p, a) == (pair, algo) and m != "scratch")
    if not methods or (pair, algo, "scratch") not in arms:
        raise ValueError(f"{pair} / {algo}: no finished scratch and transfer runs to draw")
    if bands is None or (pair, algo, "scratch") not in bands:
        bands = arm_bands([r for m in ("scratch", *methods) for r in arms[(pair, algo, m)]])
    ncols = min(len(methods), MAX_COLUMNS)
    lines = -(-len(methods) // ncols)
    fig, axes = _figure(2 * lines, ncols, (5 * ncols, 3.5 * 2 * lines))
    scratch = bands[(pair, algo, "scratch")]
    grid = scratch.t
    r_min = spec["pairs"][pair]["r_min"]
    threshold = (
        spec["threshold"] if spec.get("threshold") is not None else spec["pairs"][pair]["threshold"]
    )
    for k, method in enumerate(methods):
        method_runs = arms[(pair, algo, method)]
        line, col = divmod(k, ncols)
        for row, total in enumerate((False, True)):
            ax = axes[2 * line + row][col]
            shift = (
                float(np.median([int(r.info.get("source_steps", 0)) for r in method_runs]))
                if total
                else 0.0
            )
            _draw_band(ax, scratch, "scratch", "tab:gray")
            if shift > 0:
                t, ys = total_time_points(method_runs, grid, shift, r_min)
                _draw_band(ax, Band.of(t, ys), method, "tab:blue")
                ax.axvspan(
                    0,
                    min(shift, float(grid[-1])),
                    color="tab:blue",
                    alpha=0.07,
                    label=_segment_label(method_runs),
                )
            else:
                _draw_band(ax, bands[(pair, algo, method)], method, "tab:blue")
            ax.axhline(threshold, color="tab:red", ls="--", lw=1, label="threshold")
            _label(
                ax,
                f"{method} vs scratch ({'total-time' if total else 'target-only'})",
                "env steps, source included" if total else "target env steps",
                "mean evaluation return",
                legend_loc="lower right",
            )
    for k in range(len(methods), lines * ncols):  # the last line's empty places
        line, col = divmod(k, ncols)
        axes[2 * line][col].set_visible(False)
        axes[2 * line + 1][col].set_visible(False)
    fig.suptitle(f"{pair} / {algo}: IQM over seeds, 95% bootstrap band")
    return fig


def plot_curves(
    root: Path,
    summary: dict[str, Any],
    loaded: Loaded | None = None,
    bands: dict[Arm, Band] | None = None,
) -> list[Path]:
    """Write one PNG per (pair, algo) with finished scratch and transfer runs,
    ``curves_<pair>_<algo>.png`` (:func:`curves_figure`); return the paths written. Each
    figure holds one (pair, algo): the number of panels per image is bounded by the methods of
    the study, whatever the number of pairs, algorithms and seeds.

    Args:
        root: the experiment folder.
        summary: its summary (unused; kept for a uniform signature with the other plots).
        loaded: :func:`~rl_transfer.reports.summary.load_experiment`'s result, to save reading
            the folder again.
        bands: :func:`arm_bands`' result, to save computing it again.
    """
    spec, runs = loaded or load_experiment(root)
    arms = _arms(runs)
    bands = arm_bands(runs) if bands is None else bands
    methods: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p, a, m in arms:
        methods[(p, a)].add(m)
    written = []
    for (pair, algo), present in sorted(methods.items()):
        if "scratch" not in present or len(present) < 2:
            continue
        fig = _curves_figure(spec, arms, pair, algo, bands)
        written.append(_save(fig, root / f"curves_{pair}_{algo}.png"))
    return written


def forward_transfer_figure(
    summary: dict[str, Any], results: list[dict[str, Any]] | None = None, title: str = ""
) -> Figure | None:
    """Interval chart: forward transfer IQM with its 95% interval per (pair, algo, method), in
    target-only and total-time accounting; None when there is no result.

    Args:
        summary: summary.json's content.
        results: the comparisons to draw (one page: :func:`forward_transfer_pages`); default
            every result of ``summary``.
        title: added to the chart's title (``page 2 of 3``).
    """
    results = summary["results"] if results is None else results
    if not results:
        return None
    fig, axes = _figure(1, 1, (9, max(2.6, 1.2 + 0.6 * len(results))))
    ax = axes[0][0]
    labels = [f"{r['pair']} / {r['algo']} / {r['method']}" for r in results]
    for offset, key, color, name in (
        (-0.15, "forward_transfer", "tab:blue", "target-only"),
        (0.15, "forward_transfer_total_time", "tab:orange", "total-time"),
    ):
        for i, r in enumerate(results):
            m = r["metrics"][key]
            y = i + offset
            if m["iqm"] is None:
                reason = next(iter(m["notes"].values()), "undefined")
                text = ax.text(
                    0.01,
                    y,
                    f"{name}: n/a ({reason})",
                    va="center",
                    fontsize=7,
                    color=color,
                    transform=ax.get_yaxis_transform(),
                    clip_on=True,
                )
                text.set_in_layout(False)
                continue
            if m["ci"] is not None:
                ax.plot(m["ci"], [y, y], color=color, lw=3, alpha=0.6)
            ax.plot([m["iqm"]], [y], "o", color=color, label=name if i == 0 else None)
    ax.axvline(0.0, color="black", lw=1)
    ax.set_yticks(range(len(results)), labels)
    ax.invert_yaxis()
    _label(
        ax,
        "forward transfer per method and pair" + (f" ({title})" if title else ""),
        "normalized forward transfer: IQM and 95% bootstrap interval (< 0: negative)",
        grid_axis="x",
    )
    return fig


def plot_forward_transfer(root: Path, summary: dict[str, Any]) -> list[Path]:
    """Write :func:`forward_transfer_figure` page by page (:func:`forward_transfer_pages`: at
    most 30 comparisons per image): ``forward_transfer.png``, then ``forward_transfer_<i>.png``;
    pages of an earlier, larger report are removed. Return the paths written (none when the
    summary has no result)."""
    pages = forward_transfer_pages(summary["results"])
    written = []
    for i, page in enumerate(pages, start=1):
        title = f"page {i} of {len(pages)}" if len(pages) > 1 else ""
        fig = forward_transfer_figure(summary, page, title)
        written.append(_save(fig, root / forward_transfer_file(i)))
    for old in root.glob("forward_transfer_*.png"):
        if old not in written and old.stem.removeprefix("forward_transfer_").isdigit():
            old.unlink()
    return written


def run_scores(root: Path, loaded: Loaded | None = None) -> dict[str, list[float]]:
    """Per method, every finished run's normalized area A (mean of its clipped normalized curve
    over its budget, in [0, 1]), pooled over pairs and seeds."""
    spec, runs = loaded or load_experiment(root)
    scores: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.curve is not None:
            pair = spec["pairs"][run.info["pair"]]
            scores[run.info["method"]].append(
                normalized_area(run.curve.t, run.curve.f, pair["r_min"], pair["r_max"])
            )
    return dict(scores)


def plot_performance_profile(
    root: Path, summary: dict[str, Any], loaded: Loaded | None = None
) -> Path | None:
    """Performance profile (Agarwal et al. 2021): per method, the fraction of runs whose
    normalized area exceeds tau, for tau in [0, 1]; written when the experiment has several
    pairs, as performance_profile.png (return its path; None, and nothing written, otherwise)."""
    if len({r["pair"] for r in summary["results"]}) < 2:
        return None
    taus = np.linspace(0.0, 1.0, 101)
    fig, axes = _figure(1, 1, (6, 4))
    ax = axes[0][0]
    for method, values in sorted(run_scores(root, loaded).items()):
        v = np.asarray(values)
        ax.plot(taus, [(v > tau).mean() for tau in taus], label=f"{method} (n={len(v)})")
    _label(
        ax,
        "performance profile over pairs and seeds",
        "normalized area tau",
        "fraction of runs with score > tau",
    )
    return _save(fig, root / "performance_profile.png")
