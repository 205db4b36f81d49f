"""The report's numbers and text, rebuilt from what is on disk: the experiment's runs
(:func:`load_experiment`), summary.json's content (:func:`summarize`, with the study's family
of verdicts, :func:`family_verdicts`), metrics.csv (:func:`metrics_csv`) and report.md
(:func:`report_md`).

Everything here reads the experiment folder (experiment.yaml and each run's run.json and
evaluations.npz), so ``rl-transfer report DIR`` gives the same numbers as the run that wrote it.
Nothing here writes a file.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_transfer.comparison import comparison_from_seeds, metric_keys
from rl_transfer.errors import RecordError, SchemaVersionError, SpecError
from rl_transfer.io import SEQUENTIAL_FILE, SOURCE_CURVE_FILE, read_json
from rl_transfer.metrics import Curve, curve_from_evaluations, normalized_area, seed_metrics
from rl_transfer.records import ExperimentRecord, TargetRecord
from rl_transfer.reports.console import (
    TABLE_METRICS,
    censored_footnote,
    decision_line,
    fmt_cell,
    fmt_number,
    fmt_p,
    lower_bound_seeds,
    metric_cell,
    table_rows,
)
from rl_transfer.stats import decide, holm, probability_of_improvement, seeds_needed

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
    """One run folder as read from disk.

    Attributes:
        info: its run.json content.
        curve: its evaluation curve (target steps, mean return); None unless ``status`` is done.
        dir: the run folder.
        source_curve: a transfer run's source checkpoints evaluated on its target (t = source
            steps); None for scratch runs and imported sources.
    """

    info: dict[str, Any]
    curve: Curve | None
    dir: Path
    source_curve: Curve | None = None


def load_experiment(root: Path) -> tuple[dict[str, Any], list[RunData]]:
    """Read experiment.yaml and every run folder ``<pair>/<algo>/<method>/seed_<k>`` under
    ``root`` (a run.json that cannot be read is skipped: the run is unfinished).

    Returns:
        ``(spec, runs)``: experiment.yaml's content and one :class:`RunData` per run folder,
        sorted by path.

    Raises:
        SpecError: ``root`` holds no experiment.yaml.
    """
    spec_path = root / "experiment.yaml"
    if not spec_path.is_file():
        raise SpecError(f"{root} is not an experiment folder (no experiment.yaml in it)")
    spec = ExperimentRecord.read(spec_path).to_dict()
    runs = []
    for run_json in sorted(root.glob("*/*/*/seed_*/run.json")):
        try:
            info = TargetRecord.read(run_json).to_dict()
        except SchemaVersionError:
            raise
        except RecordError:  # not written through (run.json is written last): not a run yet
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


def plain_line(entry: dict[str, Any]) -> str:
    """One plain-language sentence about a method's result."""
    m = entry["metrics"]
    who = f"{entry['method']} transfer"
    speed = m["time_to_threshold_speedup"]
    ft = m["forward_transfer"]
    parts = []
    if speed["iqm"] is not None:
        least = "at least " if lower_bound_seeds(speed) else ""
        parts.append(f"reached the threshold {least}{speed['iqm']:.3g}x sooner than scratch (IQM)")
    else:
        parts.append("did not give a defined time-to-threshold speed-up")
    parts.append(f"forward transfer {fmt_cell(ft, len(entry['seeds']))}: {entry['verdict']}")
    parts.append(decision_line(entry))
    parts.append(f"counting the source's steps: {entry['verdict_total_time']}")
    return f"{who} " + "; ".join(parts) + "."


FORWARD_TRANSFER_ROWS = 30
"""Comparisons per forward-transfer chart: a study with more gets several pages (whole
(pair, algo) groups together where they fit), so every image stays readable."""


def forward_transfer_pages(results: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """summary.json's results cut into the pages of the forward-transfer chart: in order, at most
    :data:`FORWARD_TRANSFER_ROWS` per page, a (pair, algo) group kept on one page when it fits
    on one. Page 1 is ``forward_transfer.png``, page i > 1 ``forward_transfer_<i>.png``
    (:func:`forward_transfer_file`); no result, no page."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["pair"], r["algo"])].append(r)
    pages: list[list[dict[str, Any]]] = []
    for entries in groups.values():
        if pages and len(pages[-1]) + len(entries) <= FORWARD_TRANSFER_ROWS:
            pages[-1].extend(entries)
            continue
        for i in range(0, len(entries), FORWARD_TRANSFER_ROWS):
            pages.append(list(entries[i : i + FORWARD_TRANSFER_ROWS]))
    return pages


def forward_transfer_file(page: int) -> str:
    """The file name of page ``page`` (from 1) of the forward-transfer chart."""
    return "forward_transfer.png" if page == 1 else f"forward_transfer_{page}.png"


def report_md(summary: dict[str, Any], spec: dict[str, Any]) -> str:
    """report.md's text: the verdict rule and family, then per (pair, algo) one plain line per
    method, one table of every method, one table per method (target-only and total-time) and
    the curves PNG; then the forward-transfer chart and, with several pairs, the performance
    profile.

    Args:
        summary: :func:`summarize`'s result.
        spec: experiment.yaml's content (its ``name`` titles the report).
    """
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
            cells = [metric_cell(e["metrics"][key], n) for key, _ in TABLE_METRICS]
            cells.append(metric_cell(e["metrics"]["forward_transfer_total_time"], n))
            lines.append(
                f"| {e['method']} | "
                + " | ".join(cells)
                + f" | {fmt_p(e['p_value'])} ({fmt_p(e.get('p_value_adjusted'))})"
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
            note = censored_footnote(e)
            if note:
                lines += ["", f"{note[0].upper()}{note[1:]}."]
            lines.append("")
        lines.append(f"![learning curves](curves_{pair}_{algo}.png)")
        lines.append("")
    lines += ["## Forward transfer per method and pair", ""]
    pages = forward_transfer_pages(summary["results"])
    for i in range(1, len(pages) + 1):
        lines += [f"![forward transfer]({forward_transfer_file(i)})", ""]
    if len({r["pair"] for r in summary["results"]}) > 1:
        lines += [
            "## Performance profile",
            "",
            "![performance profile](performance_profile.png)",
            "",
        ]
    return "\n".join(lines)
