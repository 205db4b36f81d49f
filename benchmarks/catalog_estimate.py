"""Estimate the CPU-hours of the catalog study (experiments/catalog.yaml) before running it.

The speeds are the ones measured on this machine by the budget search (envs/budgets.json): the
mean wall time of a scratch run at the chosen target budget (training and its evaluations), and
of a run on the source variant at the chosen source budget (a source's training). A transfer run
also evaluates the source's checkpoints on the target (total-time accounting: one evaluation per
``eval_every`` source steps), charged at the scratch run's mean time per evaluation.

Counts, per experiment (one pair and algorithm): seeds x (methods + scratch) target runs, minus
the scratch runs the search left in the scratch cache (seeds 0-4); sources are shared by every
experiment with the same source variant, algorithm, hyperparameters and source budget. Two
cases: every comparison runs to ``max_seeds`` (the most the study can cost), and every one is
decided at 5 seeds.

Usage::

    python benchmarks/catalog_estimate.py [experiments/catalog.yaml]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs.catalog import chosen_candidate, measured_budgets  # noqa: E402
from rl_transfer.spec import spec_from, study_size  # noqa: E402

SEARCHED_SEEDS = 5
"""Scratch seeds 0..4 at the chosen budget are in the scratch cache after the budget search."""


class NotMeasuredError(Exception):
    """An experiment of the study has no measured budget to estimate from."""


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def estimate(
    study: Path, measured: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per experiment: runs and CPU seconds in the worst case (max_seeds) and at 5 seeds;
    ``measured`` is envs/budgets.json's content (read when None)."""
    measured = (measured if measured is not None else measured_budgets())["pairs"]
    rows: list[dict[str, Any]] = []
    # per case, the seeds of each source already charged to an earlier experiment
    sources_seen: dict[str, dict[tuple, int]] = {"worst": {}, "five": {}}
    totals = {"worst_s": 0.0, "five_s": 0.0}
    for i in range(study_size(study)):
        spec = spec_from(study, i)
        (pair,) = spec.pair_objects()
        (algo,) = spec.algos
        entry = measured.get(pair.name) or {}
        if entry.get("algo") != algo or not all(
            (entry.get(part) or {}).get("chosen") for part in ("source", "target")
        ):
            raise NotMeasuredError(
                f"{study}: experiments[{i}] ({pair.name}, {algo}) has no measured budget in "
                "envs/budgets.json; run `make budgets` (benchmarks/search_budgets.py) first, or "
                "remove the experiment"
            )
        tgt, src = chosen_candidate(entry["target"]), chosen_candidate(entry["source"])
        t_target = _mean([s["wall_time_s"] for s in tgt["seeds"]])
        per_eval = _mean([s["eval_time_s"] for s in tgt["seeds"]]) / (
            tgt["steps"] / entry["eval_every"] + 1
        )
        t_source = _mean([s["wall_time_s"] for s in src["seeds"]])
        checkpoints = src["steps"] / entry["eval_every"] + 1
        t_transfer = t_target + checkpoints * per_eval
        methods = [m for m in spec.methods if m != "scratch"]
        row = {"name": spec.name, "pair": pair.name, "algo": algo, "methods": methods}
        for case, seeds in (("worst", spec.max_seeds), ("five", 5)):
            key = (entry["source"]["variant"], algo, src["steps"])
            seen = sources_seen[case]
            new_sources = max(0, seeds - seen.get(key, 0))
            seen[key] = max(seen.get(key, 0), seeds)
            scratch = max(0, seeds - SEARCHED_SEEDS)
            cpu = seeds * len(methods) * t_transfer + scratch * t_target + new_sources * t_source
            row[f"{case}_runs"] = seeds * len(methods) + scratch
            row[f"{case}_s"] = cpu
            totals[f"{case}_s"] += cpu
        row["target_run_s"] = t_target
        row["source_run_s"] = t_source
        rows.append(row)
    return rows, totals


def table(rows: list[dict[str, Any]], totals: dict[str, float]) -> str:
    lines = [
        "| experiment | methods | scratch run | source run | runs (10 seeds) | CPU-h (10 seeds) "
        "| CPU-h (5 seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['pair']}` {r['algo']} | {', '.join(r['methods'])} | {r['target_run_s']:.0f} s "
            f"| {r['source_run_s']:.0f} s | {r['worst_runs']} | {r['worst_s'] / 3600:.2f} "
            f"| {r['five_s'] / 3600:.2f} |"
        )
    lines.append(
        f"| **total** | | | | | **{totals['worst_s'] / 3600:.1f}** | "
        f"**{totals['five_s'] / 3600:.1f}** |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    study = Path(args[0]) if args else ROOT / "experiments" / "catalog.yaml"
    try:
        rows, totals = estimate(study)
    except NotMeasuredError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(rows, totals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
