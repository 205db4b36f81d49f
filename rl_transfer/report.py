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

from rl_transfer.comparison import (
    UNCHANGED_BY_ACCOUNTING,
    comparison_from_seeds,
    metric_keys,
)
from rl_transfer.errors import SpecError
from rl_transfer.io import (
    SEQUENTIAL_FILE,
    SOURCE_CURVE_FILE,
    atomic_write,
    read_json,
    write_json,
    write_text,
)
from rl_transfer.metrics import (
    Curve,
    curve_from_evaluations,
    normalized_area,
    seed_metrics,
    total_time_curve,
)
from rl_transfer.stats import (
    aggregate,
    decide,
    holm,
    probability_of_improvement,
    seeds_needed,
)

ALPHA = 0.05
VERDICT_RULE = (
    "positive or negative transfer when the paired t-test of the per-seed normalized-area "
    "difference A_T - A_B (the sign of forward transfer) rejects 'no difference' with the "
    "study's family-wise error held at 5%: Holm's procedure over the family (every pair x algo "
    "x method of the study) for a fixed number of seeds; with adaptive seeds, a group-sequential "
    "t-test per hypothesis (Lan-DeMets power-family spending) under the sequential Holm "
    "procedure. Otherwise inconclusive. verdict_total_time applies the same to total-time "
    "accounting (its own family)"
)
TRANSFER_RATIO_FORM = "area: (AUC~_T - AUC~_B) / AUC~_B on normalized curves (Taylor & Stone 2009)"


@dataclass
class RunData:
    info: dict[str, Any]
    curve: Curve | None
    dir: Path
    source_curve: Curve | None = None


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
        curve = source_curve = None
        if info.get("status") == "done":
            with np.load(run_json.parent / "evaluations.npz") as data:
                curve = curve_from_evaluations(data)
            segment = run_json.parent / SOURCE_CURVE_FILE
            if segment.is_file():
                with np.load(segment) as data:
                    source_curve = curve_from_evaluations(data)
        runs.append(RunData(info, curve, run_json.parent, source_curve))
    return spec, runs


def fmt_number(x: float | None) -> str:
    """A number as people write it: 4 significant digits, thousands as k and millions as M
    (28.8k steps, not 2.88e+04)."""
    if x is None:
        return "n/a"
    for scale, unit in ((1e6, "M"), (1e4, "k")):
        if abs(x) >= scale:
            return f"{x / (1e3 if unit == 'k' else 1e6):.3g}{unit}"
    return f"{x:.4g}"


def fmt_cell(entry: dict[str, Any], n: int) -> str:
    """``IQM [lo, hi]`` as shown in report.md and the terminal (``n/a`` when undefined)."""
    if entry["iqm"] is None:
        return "n/a"
    cell = fmt_number(entry["iqm"])
    if entry["ci"] is not None:
        cell += f" [{fmt_number(entry['ci'][0])}, {fmt_number(entry['ci'][1])}]"
    if entry["n_defined"] < n:
        cell += f" ({entry['n_defined']}/{n} seeds)"
    return cell


Loaded = tuple[dict[str, Any], list[RunData]]
"""What :func:`load_experiment` returns: the resolved spec and every run folder's data."""


def summarize(root: Path, loaded: Loaded | None = None) -> dict[str, Any]:
    """Compute summary.json's content for the experiment at ``root`` (nothing is written);
    ``loaded`` saves reading the folder again.

    Each (pair, algo, method) is compared with scratch over its paired seeds through
    :func:`rl_transfer.comparison.comparison_from_seeds` (the path of ``rl_transfer.compare``);
    its verdicts are then decided for the study's family (:func:`family_verdicts`)."""
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
        segments = []
        for seed in sorted(seeds_runs):
            run, base = seeds_runs[seed], scratch_runs.get(seed)
            if run.curve is None or base is None or base.curve is None:
                failed.append(seed)
                continue
            seeds.append(seed)
            src = int(run.info.get("source_steps", 0))
            source_steps.append(src)
            segments.append(
                "measured"
                if run.source_curve is not None
                else ("assumed at R_min" if src else "none")
            )
            per_seed.append(
                seed_metrics(
                    run.curve,
                    base.curve,
                    threshold=threshold,
                    r_min=pair["r_min"],
                    r_max=pair["r_max"],
                    eval_every=float(run.info["eval_every"]),
                    source_steps=src,
                    source_curve=run.source_curve,
                    n_reuse=reuse.get(run.info.get("source_key") or "", 1),
                    asymptote_window=int(spec.get("asymptote_window", 5)),
                )
            )
            grid = base.curve.t
            pi_t.append(normalized_area(grid, run.curve.at(grid), pair["r_min"], pair["r_max"]))
            pi_b.append(normalized_area(grid, base.curve.f, pair["r_min"], pair["r_max"]))
        comp = comparison_from_seeds(per_seed, ALPHA)
        metrics = {}
        for key, _, _ in metric_keys():
            m = comp.metrics[key]
            metrics[key] = {
                "iqm": m.iqm,
                "ci": list(m.ci) if m.ci else None,
                "p_value": m.p_value,
                "per_seed": m.per_seed,
                "n_defined": m.n_defined,
                "notes": {str(seeds[i]): note for i, note in m.notes.items()},
            }
        entry = {
            "pair": pair_name,
            "algo": algo,
            "method": method,
            "seeds": seeds,
            "failed_seeds": failed,
            "threshold": threshold,
            "source_steps": source_steps,
            "source_segment": sorted(set(segments)),
            "p_value": comp.p_value,
            "p_value_total_time": comp.p_value_total_time,
            "p_value_amortized": comp.p_value_amortized,
            "p_value_sign_flip": comp.p_value_sign_flip,
            "verdict_unadjusted": comp.verdict,
            "seeds_needed": comp.seeds_needed,
            "probability_of_improvement": (
                probability_of_improvement(pi_t, pi_b) if seeds else None
            ),
            "metrics": metrics,
        }
        results.append(entry)
    sequential = _read_sequential(root)
    family = family_verdicts(results, sequential)
    return {
        "experiment": spec.get("name"),
        "verdict_rule": VERDICT_RULE,
        "family": family,
        "transfer_ratio_form": TRANSFER_RATIO_FORM,
        "probability_of_improvement_score": (
            "per-seed normalized area (mean of the clipped normalized curve over the budget), "
            "target-only; P(transfer > scratch) over seeds, ties 1/2 (rliable)"
        ),
        "results": results,
    }


def _read_sequential(root: Path) -> dict[str, Any] | None:
    path = root / SEQUENTIAL_FILE
    return read_json(path) if path.is_file() else None


def hypothesis_id(entry: dict[str, Any]) -> str:
    """``pair/algo/method``: one hypothesis of a study's family."""
    return f"{entry['pair']}/{entry['algo']}/{entry['method']}"


def family_verdicts(
    results: list[dict[str, Any]], sequential: dict[str, Any] | None, alpha: float = ALPHA
) -> dict[str, Any]:
    """Set each result's ``verdict``, ``verdict_total_time`` and ``verdict_amortized`` with the
    family-wise error of the study at ``alpha``; return how (summary.json's ``family``).

    Fixed seeds: Holm's step-down procedure over the family's p-values (one family per
    accounting), adjusted p-values in ``p_value_adjusted`` (and ``_total_time``,
    ``_amortized``). Adaptive seeds (``sequential``, written by the runner at each look): the
    target-only verdict is the one taken at the look that decided it; total-time and amortized
    verdicts use Holm on the final seeds (their family is decided after stopping, which the
    stopping rule did not look at)."""
    n_looks = len(sequential.get("looks") or [1]) if sequential is not None else 1
    for suffix in ("", "_total_time", "_amortized"):
        raw = [r["p_value" + suffix] for r in results]
        if suffix and n_looks > 1:
            # adaptive seeds stopped on target-only data, which shares its noise with these:
            # Bonferroni over the looks at which it could have stopped, then Holm
            raw = [None if p is None else min(1.0, n_looks * p) for p in raw]
        adjusted = holm(raw, alpha)
        for r, p in zip(results, adjusted):
            r["p_value_adjusted" + suffix] = p
            gains = r["metrics"]["normalized_area_gain" + suffix]["per_seed"]
            d = [v for v in gains if v is not None]
            r["verdict" + suffix] = decide(p, float(np.mean(d)) if d else None, alpha)
    info: dict[str, Any] = {
        "size": len(results),
        "members": [hypothesis_id(r) for r in results],
        "error": f"family-wise error rate <= {alpha:g}",
        "procedure": "Holm (1979) step-down over the family's paired t-test p-values",
        "design": "fixed seeds",
    }
    m = max(1, len(results))
    for r in results:
        if r["verdict"] == "inconclusive":
            d = [v for v in r["metrics"]["normalized_area_gain"]["per_seed"] if v is not None]
            r["seeds_needed"] = seeds_needed(d, alpha / m)
    if sequential is not None:
        decisions = sequential.get("decisions", {})
        for r in results:
            r["p_value_adjusted"] = None  # the sequential levels decide, not Holm
            d = decisions.get(hypothesis_id(r))
            if d is None:  # an adaptive experiment stopped before this comparison's decision
                r["verdict"] = "inconclusive"
                r["sequential"] = {"status": "open", "n": len(r["seeds"]), "look": None}
                continue
            r["verdict"] = d["verdict"]
            r["sequential"] = d
            r["seeds_needed"] = d.get("seeds_needed") if d["verdict"] == "inconclusive" else None
        info.update(
            {
                "design": "adaptive seeds",
                "procedure": (
                    "sequential Holm (Maurer & Bretz 2013): each hypothesis not yet rejected "
                    "holds alpha / (m - rejected), spent over its looks as "
                    "share * (n / max_seeds)^2 (Lan-DeMets spending, Kim-DeMets power family); "
                    "a look rejects when its paired t-test p-value is at most the look's "
                    "group-sequential level (set by simulating the t statistics' joint null "
                    "law); a hypothesis stops when decided, or as futile when the seeds it "
                    "would need exceed twice max_seeds (non-binding)"
                ),
                "looks": sequential.get("looks"),
                "total_time": (
                    "Holm over the family after Bonferroni over the looks (p x number of looks): "
                    "the stopping rule saw the target-only differences, which share their noise"
                ),
                "max_seeds": sequential.get("max_seeds"),
            }
        )
    return info


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
        tt_key = key if key in UNCHANGED_BY_ACCOUNTING else key + "_total_time"
        rows.append((label, target, fmt_cell(entry["metrics"][tt_key], n)))
    return rows


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def decision_line(entry: dict[str, Any]) -> str:
    """How the verdict was reached: the test's p-value (and Holm-adjusted), the sign-flip check,
    and, when undecided, how many seeds would decide it."""
    parts = [f"paired t-test p = {_p(entry['p_value'])}"]
    if entry.get("sequential"):
        seq = entry["sequential"]
        if seq["status"] == "open":
            parts.append(
                f"sequential: not decided yet at {seq['n']} seeds (the adaptive experiment "
                "stopped early; run the same command again to go on)"
            )
        else:
            parts.append(
                f"sequential: {seq['status']} at look {seq['look']} ({seq['n']} seeds, level "
                f"{_p(seq['level'])})"
            )
    elif entry.get("p_value_adjusted") is not None:
        parts.append(f"Holm-adjusted p = {_p(entry['p_value_adjusted'])}")
    if entry.get("p_value_sign_flip") is not None:
        parts.append(f"sign-flip p = {_p(entry['p_value_sign_flip'])}")
    if entry["verdict"] == "inconclusive":
        need = entry.get("seeds_needed")
        if need:
            parts.append(
                f"about {need} seeds would decide it (a fixed-seed t-test with 80% power at the "
                "observed effect, at this family's level); to go on, run a new experiment "
                f"(another --name or --out; sources are cached) with --seeds {need} or "
                "--seeds auto and a larger --max-seeds"
            )
        elif entry.get("sequential", {}).get("status") != "failed":
            parts.append(
                "the observed effect is too small for any affordable number of seeds to decide"
            )
    return "; ".join(parts)


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
    parts.append(decision_line(entry))
    parts.append(f"counting the source's steps: {entry['verdict_total_time']}")
    return f"{who} " + "; ".join(parts) + "."


def report_md(summary: dict[str, Any], spec: dict[str, Any]) -> str:
    lines = [f"# Transfer report: {spec.get('name')}", ""]
    lines.append(f"Verdict rule: {VERDICT_RULE}.")
    lines.append(f"Transfer ratio: {TRANSFER_RATIO_FORM}.")
    fam = summary.get("family", {})
    if fam:
        lines.append(
            f"Family: {fam['size']} comparison(s), {fam['design']}, {fam['error']} "
            f"({fam['procedure']})."
        )
    lines.append(
        "Cells: interquartile mean over seeds [95% percentile bootstrap interval], for reading; "
        "verdicts come from the tests."
    )
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
            "| method | " + " | ".join(cols) + " | forward transfer, total-time | p (adjusted) "
            "| verdict | verdict, total-time |"
        )
        lines.append("|---" * (len(cols) + 5) + "|")
        for e in entries:
            n = len(e["seeds"])
            cells = [fmt_cell(e["metrics"][key], n) for key, _ in TABLE_METRICS]
            cells.append(fmt_cell(e["metrics"]["forward_transfer_total_time"], n))
            lines.append(
                f"| {e['method']} | "
                + " | ".join(cells)
                + f" | {_p(e['p_value'])} ({_p(e.get('p_value_adjusted'))})"
                + f" | {e['verdict']} | {e['verdict_total_time']} |"
            )
        lines.append("")
        for e in entries:
            lines.append(
                f"### {e['method']} vs scratch (seeds {e['seeds']}; verdict **{e['verdict']}**, "
                f"total-time **{e['verdict_total_time']}**; P(transfer > scratch) = "
                f"{fmt_number(e['probability_of_improvement'])})"
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
    arms: dict[tuple[str, str, str], list[RunData]] = defaultdict(list)
    for run in runs:
        if run.curve is not None:
            arms[(run.info["pair"], run.info["algo"], run.info["method"])].append(run)
    written = []
    groups = sorted({(p, a) for p, a, _ in arms})
    for pair, algo in groups:
        methods = sorted(m for p, a, m in arms if (p, a) == (pair, algo) and m != "scratch")
        scratch = [r.curve for r in arms.get((pair, algo, "scratch"), [])]
        if not methods or not scratch:
            continue
        fig, axes = plt.subplots(2, len(methods), figsize=(5 * len(methods), 7), squeeze=False)
        grid = scratch[0].t
        r_min = spec["pairs"][pair]["r_min"]
        threshold = (
            spec["threshold"]
            if spec.get("threshold") is not None
            else spec["pairs"][pair]["threshold"]
        )
        for col, method in enumerate(methods):
            method_runs = arms[(pair, algo, method)]
            for row, total in enumerate((False, True)):
                ax = axes[row][col]
                shift = (
                    float(np.median([int(r.info.get("source_steps", 0)) for r in method_runs]))
                    if total
                    else 0.0
                )
                _band(ax, grid, [c.at(grid) for c in scratch], "scratch", "tab:gray")
                if shift > 0:
                    # what the total-time metrics compare: the source's measured segment on the
                    # target over [0, t_src], then the arm's curve shifted by t_src
                    ys = [
                        total_time_curve(r.curve, grid, shift, r.source_curve, r_min)[0]
                        for r in method_runs
                    ]
                    _band(ax, grid, ys, method, "tab:blue")
                    measured = all(r.source_curve is not None for r in method_runs)
                    ax.axvspan(
                        0,
                        min(shift, float(grid[-1])),
                        color="tab:blue",
                        alpha=0.07,
                        label="source training ("
                        + ("measured on the target" if measured else "assumed at R_min")
                        + ")",
                    )
                else:
                    _band(ax, grid, [r.curve.at(grid) for r in method_runs], method, "tab:blue")
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
    fam = summary.get("family")
    if fam and fam["size"] > 1:
        console.print(f"verdicts: {fam['error']} over {fam['size']} comparisons ({fam['design']})")
    for e in summary["results"]:
        t = Table(
            title=f"{e['pair']} / {e['algo']} / {e['method']} vs scratch  (seeds {e['seeds']})",
            caption=(
                f"verdict: {e['verdict']}  |  total-time verdict: {e['verdict_total_time']}"
                f"  |  P(transfer > scratch) = {fmt_number(e['probability_of_improvement'])}\n"
                f"{decision_line(e)}"
            ),
        )
        t.add_column("metric (IQM [95% CI])")
        t.add_column("target-only", justify="right")
        t.add_column("total-time", justify="right")
        for row in table_rows(e):
            t.add_row(*row)
        console.print(t)
