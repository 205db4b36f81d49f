"""Reports rebuilt from what is on disk: summary.json, metrics.csv, report.md, curves PNGs, and
the terminal table.

Everything here reads the experiment folder (experiment.yaml and each run's run.json and
evaluations.npz), so ``rl-transfer report DIR`` gives the same numbers as the run that wrote it.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rl_transfer.errors import SpecError
from rl_transfer.io import atomic_write, read_json, write_json, write_text
from rl_transfer.metrics import (
    ACCOUNTINGS,
    METRIC_NAMES,
    Curve,
    curve_from_evaluations,
    normalized_area,
    seed_metrics,
)
from rl_transfer.stats import aggregate, probability_of_improvement, verdict

VERDICT_RULE = (
    "negative transfer when the 95% bootstrap interval of normalized forward transfer lies wholly "
    "below 0, positive when wholly above, otherwise inconclusive; verdict_total_time applies the "
    "same rule to forward transfer in total-time accounting (source steps charged)"
)
TRANSFER_RATIO_FORM = "area: (AUC~_T - AUC~_B) / AUC~_B on normalized curves (Taylor & Stone 2009)"

_UNCHANGED_BY_ACCOUNTING = {"time_to_threshold_scratch"}


def metric_keys() -> list[tuple[str, str, str]]:
    """(summary key, metric name, accounting) for every metric in summary.json."""
    keys = []
    for accounting in ACCOUNTINGS:
        for name in METRIC_NAMES:
            if accounting != "target_only" and name in _UNCHANGED_BY_ACCOUNTING:
                continue
            suffix = "" if accounting == "target_only" else f"_{accounting}"
            keys.append((name + suffix, name, accounting))
    return keys


@dataclass
class RunData:
    info: dict[str, Any]
    curve: Curve | None
    dir: Path


def load_experiment(root: Path) -> tuple[dict[str, Any], list[RunData]]:
    """Read experiment.yaml and every run folder under ``root``.

    Raises:
        SpecError: ``root`` holds no experiment.yaml.
    """
    spec_path = root / "experiment.yaml"
    if not spec_path.is_file():
        raise SpecError(f"{root} is not an experiment folder (no experiment.yaml in it)")
    with open(spec_path) as fh:
        spec = yaml.safe_load(fh)
    runs = []
    for run_json in sorted(root.glob("*/*/*/seed_*/run.json")):
        try:
            info = read_json(run_json)
        except ValueError:
            continue
        curve = None
        if info.get("status") == "done":
            with np.load(run_json.parent / "evaluations.npz") as data:
                curve = curve_from_evaluations(data)
        runs.append(RunData(info, curve, run_json.parent))
    return spec, runs


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def fmt_cell(entry: dict[str, Any], n: int) -> str:
    """``IQM [lo, hi]`` as shown in report.md and the terminal (``n/a`` when undefined)."""
    if entry["iqm"] is None:
        return "n/a"
    cell = _fmt(entry["iqm"])
    if entry["ci"] is not None:
        cell += f" [{_fmt(entry['ci'][0])}, {_fmt(entry['ci'][1])}]"
    if entry["n_defined"] < n:
        cell += f" ({entry['n_defined']}/{n} seeds)"
    return cell


Loaded = tuple[dict[str, Any], list[RunData]]
"""What :func:`load_experiment` returns: the resolved spec and every run folder's data."""


def summarize(root: Path, loaded: Loaded | None = None) -> dict[str, Any]:
    """Compute summary.json's content for the experiment at ``root`` (nothing is written);
    ``loaded`` saves reading the folder again."""
    spec, runs = loaded or load_experiment(root)
    pairs = spec["pairs"]
    by_key: dict[tuple[str, str, str], dict[int, RunData]] = defaultdict(dict)
    for run in runs:
        i = run.info
        by_key[(i["pair"], i["algo"], i["method"])][int(i["seed"])] = run
    reuse: dict[str, int] = defaultdict(int)
    for run in runs:
        if run.info.get("source_key"):
            reuse[run.info["source_key"]] += 1
    results = []
    for (pair_name, algo, method), seeds_runs in sorted(by_key.items()):
        if method == "scratch":
            continue
        pair = pairs[pair_name]
        threshold = spec["threshold"] if spec.get("threshold") is not None else pair["threshold"]
        scratch_runs = by_key.get((pair_name, algo, "scratch"), {})
        seeds, failed, per_seed = [], [], []
        source_steps = []
        pi_t, pi_b = [], []
        for seed in sorted(seeds_runs):
            run, base = seeds_runs[seed], scratch_runs.get(seed)
            if run.curve is None or base is None or base.curve is None:
                failed.append(seed)
                continue
            seeds.append(seed)
            src = int(run.info.get("source_steps", 0))
            source_steps.append(src)
            per_seed.append(
                seed_metrics(
                    run.curve,
                    base.curve,
                    threshold=threshold,
                    r_min=pair["r_min"],
                    r_max=pair["r_max"],
                    eval_every=float(run.info["eval_every"]),
                    source_steps=src,
                    n_reuse=reuse.get(run.info.get("source_key") or "", 1),
                    asymptote_window=int(spec.get("asymptote_window", 5)),
                )
            )
            grid = base.curve.t
            pi_t.append(normalized_area(grid, run.curve.at(grid), pair["r_min"], pair["r_max"]))
            pi_b.append(normalized_area(grid, base.curve.f, pair["r_min"], pair["r_max"]))
        metrics = {}
        for key, _, _ in metric_keys():
            vals = [m[key].value for m in per_seed]
            agg = aggregate(vals)
            notes = {str(s): m[key].note for s, m in zip(seeds, per_seed) if m[key].note}
            metrics[key] = {
                "iqm": agg.iqm,
                "ci": list(agg.ci) if agg.ci else None,
                "per_seed": vals,
                "n_defined": agg.n_defined,
                "notes": notes,
            }
        entry = {
            "pair": pair_name,
            "algo": algo,
            "method": method,
            "seeds": seeds,
            "failed_seeds": failed,
            "threshold": threshold,
            "source_steps": source_steps,
            "verdict": verdict(_ci(metrics["forward_transfer"])),
            "verdict_total_time": verdict(_ci(metrics["forward_transfer_total_time"])),
            "verdict_amortized": verdict(_ci(metrics["forward_transfer_amortized"])),
            "probability_of_improvement": (
                probability_of_improvement(pi_t, pi_b) if seeds else None
            ),
            "metrics": metrics,
        }
        results.append(entry)
    return {
        "experiment": spec.get("name"),
        "verdict_rule": VERDICT_RULE,
        "transfer_ratio_form": TRANSFER_RATIO_FORM,
        "probability_of_improvement_score": (
            "per-seed normalized area (mean of the clipped normalized curve over the budget), "
            "target-only; P(transfer > scratch) over seeds, ties 1/2 (rliable)"
        ),
        "results": results,
    }


def _ci(entry: dict[str, Any]) -> tuple[float, float] | None:
    return tuple(entry["ci"]) if entry["ci"] is not None else None  # type: ignore[return-value]


def metrics_csv(summary: dict[str, Any]) -> str:
    """Tidy CSV: one row per (pair, algo, method, seed, metric, accounting)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pair", "algo", "method", "seed", "metric", "accounting", "value", "note"])
    keys = metric_keys()
    for r in summary["results"]:
        for key, name, accounting in keys:
            m = r["metrics"][key]
            for seed, value in zip(r["seeds"], m["per_seed"]):
                w.writerow(
                    [
                        r["pair"],
                        r["algo"],
                        r["method"],
                        seed,
                        name,
                        accounting,
                        "" if value is None else repr(float(value)),
                        m["notes"].get(str(seed), ""),
                    ]
                )
    return buf.getvalue()


TABLE_METRICS = (
    ("jumpstart", "jumpstart"),
    ("asymptotic_gain", "asymptotic gain"),
    ("auc_gain", "AUC gain"),
    ("transfer_ratio", "transfer ratio (area)"),
    ("time_to_threshold_transfer", "time to threshold, transfer"),
    ("time_to_threshold_scratch", "time to threshold, scratch"),
    ("time_to_threshold_gain", "time-to-threshold gain"),
    ("time_to_threshold_speedup", "speed-up"),
    ("forward_transfer", "forward transfer (normalized)"),
)


def table_rows(entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, target-only cell, total-time cell) for one result."""
    n = len(entry["seeds"])
    rows = []
    for key, label in TABLE_METRICS:
        target = fmt_cell(entry["metrics"][key], n)
        tt_key = key if key in _UNCHANGED_BY_ACCOUNTING else key + "_total_time"
        rows.append((label, target, fmt_cell(entry["metrics"][tt_key], n)))
    return rows


FEW_SEEDS = 5
FEW_SEEDS_NOTE = (
    "a percentile bootstrap over fewer than 5 values gives narrow intervals (with 3 seeds, "
    "a verdict needs every seed on one side of 0); read verdicts as indicative and run more "
    "seeds to confirm."
)


def plain_line(entry: dict[str, Any]) -> str:
    """One plain-language sentence about a method's result."""
    m = entry["metrics"]
    who = f"{entry['method']} transfer"
    speed = m["time_to_threshold_speedup"]
    ft = m["forward_transfer"]
    parts = []
    if speed["iqm"] is not None:
        parts.append(f"reached the threshold {speed['iqm']:.3g}x sooner than scratch (IQM)")
    else:
        parts.append("did not give a defined time-to-threshold speed-up")
    parts.append(f"forward transfer {fmt_cell(ft, len(entry['seeds']))}: {entry['verdict']}")
    parts.append(f"counting the source's steps: {entry['verdict_total_time']}")
    return f"{who} " + "; ".join(parts) + "."


def report_md(summary: dict[str, Any], spec: dict[str, Any]) -> str:
    lines = [f"# Transfer report: {spec.get('name')}", ""]
    lines.append(f"Verdict rule: {VERDICT_RULE}.")
    lines.append(f"Transfer ratio: {TRANSFER_RATIO_FORM}.")
    lines.append("Cells: interquartile mean over seeds [95% percentile bootstrap interval].")
    few = sorted({len(r["seeds"]) for r in summary["results"] if len(r["seeds"]) < FEW_SEEDS})
    if few:
        lines.append(f"**Few seeds** ({', '.join(map(str, few))}): {FEW_SEEDS_NOTE}")
    lines.append("")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in summary["results"]:
        groups[(r["pair"], r["algo"])].append(r)
    for (pair, algo), entries in groups.items():
        lines += [f"## {pair} / {algo}", ""]
        for e in entries:
            lines.append(f"- {plain_line(e)}")
        lines.append("")
        cols = [label for _, label in TABLE_METRICS]
        lines.append(
            "| method | " + " | ".join(cols) + " | forward transfer, total-time | verdict "
            "| verdict, total-time |"
        )
        lines.append("|---" * (len(cols) + 4) + "|")
        for e in entries:
            n = len(e["seeds"])
            cells = [fmt_cell(e["metrics"][key], n) for key, _ in TABLE_METRICS]
            cells.append(fmt_cell(e["metrics"]["forward_transfer_total_time"], n))
            lines.append(
                f"| {e['method']} | "
                + " | ".join(cells)
                + f" | {e['verdict']} | {e['verdict_total_time']} |"
            )
        lines.append("")
        for e in entries:
            lines.append(
                f"### {e['method']} vs scratch (seeds {e['seeds']}; verdict **{e['verdict']}**, "
                f"total-time **{e['verdict_total_time']}**; P(transfer > scratch) = "
                f"{_fmt(e['probability_of_improvement'])})"
            )
            lines += ["", "| metric | target-only | total-time |", "|---|---|---|"]
            for label, a, b in table_rows(e):
                lines.append(f"| {label} | {a} | {b} |")
            lines.append("")
        lines.append(f"![learning curves](curves_{pair}_{algo}.png)")
        lines.append("")
    lines += [
        "## Forward transfer per method and pair",
        "",
        "![forward transfer](forward_transfer.png)",
        "",
    ]
    if len({r["pair"] for r in summary["results"]}) > 1:
        lines += [
            "## Performance profile",
            "",
            "![performance profile](performance_profile.png)",
            "",
        ]
    return "\n".join(lines)


def plot_curves(root: Path, summary: dict[str, Any], loaded: Loaded | None = None) -> list[Path]:
    """One PNG per (pair, algo): IQM curve with a 95% bootstrap band per method vs scratch, in
    target-only (top) and total-time (bottom) x-axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec, runs = loaded or load_experiment(root)
    curves: dict[tuple[str, str, str], list[Curve]] = defaultdict(list)
    src_steps: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for run in runs:
        if run.curve is not None:
            k = (run.info["pair"], run.info["algo"], run.info["method"])
            curves[k].append(run.curve)
            src_steps[k].append(int(run.info.get("source_steps", 0)))
    written = []
    groups = sorted({(p, a) for p, a, _ in curves})
    for pair, algo in groups:
        methods = sorted(m for p, a, m in curves if (p, a) == (pair, algo) and m != "scratch")
        scratch = curves.get((pair, algo, "scratch"), [])
        if not methods or not scratch:
            continue
        fig, axes = plt.subplots(2, len(methods), figsize=(5 * len(methods), 7), squeeze=False)
        grid = scratch[0].t
        threshold = (
            spec["threshold"]
            if spec.get("threshold") is not None
            else spec["pairs"][pair]["threshold"]
        )
        for col, method in enumerate(methods):
            for row, total in enumerate((False, True)):
                ax = axes[row][col]
                shift = float(np.median(src_steps[(pair, algo, method)])) if total else 0.0
                _band(ax, grid, [c.at(grid) for c in scratch], "scratch", "tab:gray")
                _band(
                    ax,
                    grid + shift,
                    [c.at(grid) for c in curves[(pair, algo, method)]],
                    method,
                    "tab:blue",
                )
                if total and shift > 0:
                    ax.axvspan(0, shift, color="tab:blue", alpha=0.07, label="source training")
                    held = float(np.median([c.f[0] for c in scratch]))
                    ax.plot(
                        [0, shift],
                        [held, held],
                        color="tab:blue",
                        ls=":",
                        lw=1,
                        label="transfer arm held at scratch's f(0)",
                    )
                ax.axhline(threshold, color="tab:red", ls="--", lw=1, label="threshold")
                ax.set_title(f"{method} vs scratch ({'total-time' if total else 'target-only'})")
                ax.set_xlabel("target env steps" if not total else "env steps, source included")
                ax.set_ylabel("mean evaluation return")
                ax.grid(alpha=0.3)
                ax.legend(loc="lower right", fontsize=8)
        fig.suptitle(f"{pair} / {algo}: IQM over seeds, 95% bootstrap band")
        fig.tight_layout()
        path = root / f"curves_{pair}_{algo}.png"
        atomic_write(path, lambda p, fig=fig: fig.savefig(p, dpi=90))
        plt.close(fig)
        written.append(path)
    return written


def plot_forward_transfer(root: Path, summary: dict[str, Any]) -> Path | None:
    """Interval chart: forward transfer IQM with its 95% interval per (pair, algo, method), in
    target-only and total-time accounting; written as forward_transfer.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = summary["results"]
    if not results:
        return None
    fig, ax = plt.subplots(figsize=(9, max(2.6, 1.2 + 0.6 * len(results))))
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
                label = ax.text(
                    0.01,
                    y,
                    f"{name}: n/a ({reason})",
                    va="center",
                    fontsize=7,
                    color=color,
                    transform=ax.get_yaxis_transform(),
                    clip_on=True,
                )
                label.set_in_layout(False)
                continue
            if m["ci"] is not None:
                ax.plot(m["ci"], [y, y], color=color, lw=3, alpha=0.6)
            ax.plot([m["iqm"]], [y], "o", color=color, label=name if i == 0 else None)
    ax.axvline(0.0, color="black", lw=1)
    ax.set_yticks(range(len(results)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("normalized forward transfer: IQM and 95% bootstrap interval (< 0: negative)")
    ax.set_title("forward transfer per method and pair")
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = root / "forward_transfer.png"
    atomic_write(path, lambda p: fig.savefig(p, dpi=90))
    plt.close(fig)
    return path


def run_scores(root: Path, loaded: Loaded | None = None) -> dict[str, list[float]]:
    """Per method, every finished run's normalized area A (mean of its clipped normalized curve
    over its budget), pooled over pairs and seeds."""
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
    pairs, as performance_profile.png."""
    if len({r["pair"] for r in summary["results"]}) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = np.linspace(0.0, 1.0, 101)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, values in sorted(run_scores(root, loaded).items()):
        v = np.asarray(values)
        ax.plot(taus, [(v > tau).mean() for tau in taus], label=f"{method} (n={len(v)})")
    ax.set_xlabel("normalized area tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title("performance profile over pairs and seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = root / "performance_profile.png"
    atomic_write(path, lambda p: fig.savefig(p, dpi=90))
    plt.close(fig)
    return path


def _band(ax, t: np.ndarray, ys: list[np.ndarray], label: str, color: str) -> None:  # noqa: ANN001
    y = np.stack(ys)
    aggs = [aggregate(list(col)) for col in y.T]  # one bootstrap per evaluation step
    centre = np.array([a.iqm for a in aggs])
    lo = np.array([a.ci[0] if a.ci else a.iqm for a in aggs])
    hi = np.array([a.ci[1] if a.ci else a.iqm for a in aggs])
    ax.plot(t, centre, color=color, label=f"{label} (n={len(ys)})")
    ax.fill_between(t, lo, hi, color=color, alpha=0.2)


FINAL_METRICS = (
    "jumpstart",
    "asymptotic_gain",
    "time_to_threshold_speedup",
    "forward_transfer",
    "forward_transfer_total_time",
)


def write_tensorboard_views(
    root: Path, summary: dict[str, Any], loaded: Loaded | None = None
) -> None:
    """Per-run hparams and comparison curves, and the custom-scalars layout (see
    :mod:`rl_transfer.tensorboard`)."""
    from rl_transfer.tensorboard import write_layout, write_run_views

    _, runs = loaded or load_experiment(root)
    per_seed: dict[tuple[str, str, str, int], dict[str, float | None]] = {}
    for r in summary["results"]:
        for i, seed in enumerate(r["seeds"]):
            per_seed[(r["pair"], r["algo"], r["method"], seed)] = {
                k: r["metrics"][k]["per_seed"][i] for k in FINAL_METRICS
            }
    for run in runs:
        if run.curve is None:
            continue
        i = run.info
        final: dict[str, float | None] = {"mean_reward": float(run.curve.f[-1])}
        final.update(per_seed.get((i["pair"], i["algo"], i["method"], int(i["seed"])), {}))
        write_run_views(run.dir, i, run.curve.t, run.curve.f, final)
    done = [r.info for r in runs if r.curve is not None]
    if not done:
        return
    values = {k: sorted({i[k] for i in done}) for k in ("pair", "algo", "method", "seed")}
    write_layout(
        root,
        sorted({(i["pair"], i["algo"]) for i in done}),
        values,
        ("mean_reward", *FINAL_METRICS),
    )


def write_reports(root: Path) -> dict[str, Any]:
    """Compute and write summary.json, metrics.csv, report.md, the PNG plots and the TensorBoard
    views; return the summary.

    Raises:
        SpecError: ``root`` is not an experiment folder.
    """
    loaded = load_experiment(root)  # read once, used by every writer below
    spec = loaded[0]
    summary = summarize(root, loaded)
    write_json(root / "summary.json", summary)
    write_text(root / "metrics.csv", metrics_csv(summary))
    plot_curves(root, summary, loaded)
    plot_forward_transfer(root, summary)
    plot_performance_profile(root, summary, loaded)
    write_text(root / "report.md", report_md(summary, spec))
    write_tensorboard_views(root, summary, loaded)
    return summary


def compare_table(summaries: dict[str, dict[str, Any]]) -> Any:
    """A rich table comparing experiment folders: per (pair, algo, method), forward transfer
    (IQM [95% interval]) and verdict in each folder."""
    from rich.table import Table

    t = Table(title="forward transfer (IQM [95% CI]) and verdict, per experiment folder")
    t.add_column("pair / algo / method")
    for name in summaries:
        t.add_column(name)
    keys = sorted(
        {(r["pair"], r["algo"], r["method"]) for s in summaries.values() for r in s["results"]}
    )
    for key in keys:
        cells = []
        for s in summaries.values():
            match = [r for r in s["results"] if (r["pair"], r["algo"], r["method"]) == key]
            if not match:
                cells.append("-")
                continue
            r = match[0]
            cells.append(
                f"{fmt_cell(r['metrics']['forward_transfer'], len(r['seeds']))}: {r['verdict']}"
            )
        t.add_row(" / ".join(key), *cells)
    return t


def print_tables(summary: dict[str, Any], console: Any = None) -> None:
    """Print one table per (pair, algo, method) with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if any(len(e["seeds"]) < FEW_SEEDS for e in summary["results"]):
        console.print(f"note: few seeds: {FEW_SEEDS_NOTE}")
    for e in summary["results"]:
        t = Table(
            title=f"{e['pair']} / {e['algo']} / {e['method']} vs scratch  (seeds {e['seeds']})",
            caption=(
                f"verdict: {e['verdict']}  |  total-time verdict: {e['verdict_total_time']}"
                f"  |  P(transfer > scratch) = {_fmt(e['probability_of_improvement'])}"
            ),
        )
        t.add_column("metric (IQM [95% CI])")
        t.add_column("target-only", justify="right")
        t.add_column("total-time", justify="right")
        for row in table_rows(e):
            t.add_row(*row)
        console.print(t)
