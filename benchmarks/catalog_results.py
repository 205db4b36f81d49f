"""Build docs/results.md's measured part from the catalog study's folders.

Reads experiments/catalog.yaml, each experiment's summary.json, sequential.json and
invocations.json under runs/, and envs/budgets.json; rewrites the part of docs/results.md between
its marked regions (the reading around them is written by hand) and copies a few curve plots to
docs/images/. An experiment not run yet, or not finished, is listed as such.

Usage::

    rl-transfer run experiments/catalog.yaml          # the study (resumable)
    python benchmarks/catalog_results.py              # then this
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs import get_pair  # noqa: E402
from envs.catalog import chosen_candidate, measured_budgets  # noqa: E402
from rl_transfer.io import INVOCATIONS_FILE, SEQUENTIAL_FILE, read_json, write_text  # noqa: E402
from rl_transfer.reports.console import fmt_number, fmt_p, metric_cell  # noqa: E402
from rl_transfer.spec import spec_from, study_size  # noqa: E402
from rl_transfer.stats import iqm  # noqa: E402


@dataclass(frozen=True)
class Paths:
    """The study file, the folder its experiments are in, the document and its images folder."""

    study: Path = ROOT / "experiments" / "catalog.yaml"
    runs: Path = ROOT / "runs"
    doc: Path = ROOT / "docs" / "results.md"
    images: Path = ROOT / "docs" / "images"


REGIONS = ("budgets", "estimate", "results")
"""The parts of docs/results.md this script writes, each between ``<!-- begin NAME -->`` and
``<!-- end NAME -->``; the text around them is written by hand."""

PLOTS = (
    "cartpole-long-pole",
    "cartpole-reversed-force",
    "cartpole-sutton-barto-reward",
    "acrobot-heavy-link",
    "pendulum-heavy",
    "pendulum-low-gravity",
)
"""Pairs whose curve plot is copied into docs/images."""

CHANGE = {
    "cartpole-long-pole": "dynamics (near)",
    "cartpole-heavy-pole": "dynamics (near)",
    "cartpole-heavy-cart": "dynamics (near)",
    "cartpole-very-long-pole": "dynamics (far)",
    "cartpole-reversed-force": "dynamics (designed negative)",
    "cartpole-sutton-barto-reward": "reward",
    "mountaincar-strong-engine": "dynamics (near)",
    "mountaincar-to-continuous": "action space",
    "acrobot-heavy-link": "dynamics (near)",
    "acrobot-long-link": "dynamics (near)",
    "pendulum-heavy": "dynamics (near)",
    "pendulum-long": "dynamics (near)",
    "pendulum-low-gravity": "dynamics (far)",
}

ZOO = {
    # rl-baselines3-zoo benchmark.md: one trained agent per (algo, env), deterministic policy,
    # mean +/- std of the episode return over ~150k evaluation steps, after n_timesteps
    ("cartpole", "ppo"): ("CartPole-v1", 500.0, 0.0, "100k"),
    ("cartpole", "dqn"): ("CartPole-v1", 500.0, 0.0, "50k"),
    ("mountaincar", "dqn"): ("MountainCar-v0", -100.849, 9.925, "120k"),
    ("acrobot", "dqn"): ("Acrobot-v1", -76.639, 11.752, "100k"),
    ("pendulum", "sac"): ("Pendulum-v1", -156.995, 88.714, "20k"),
}


def _experiments(paths: Paths) -> list[dict[str, Any]]:
    out = []
    for i in range(study_size(paths.study)):
        spec = spec_from(paths.study, i)
        folder = paths.runs / spec.name
        summary = folder / "summary.json"
        seq = folder / SEQUENTIAL_FILE
        inv = folder / INVOCATIONS_FILE
        out.append(
            {
                "spec": spec,
                "pair": spec.pairs[0],
                "algo": spec.algos[0],
                "folder": folder,
                "summary": read_json(summary) if summary.is_file() else None,
                "sequential": read_json(seq) if seq.is_file() else None,
                "invocations": read_json(inv) if inv.is_file() else [],
            }
        )
    return out


def _state(exp: dict[str, Any]) -> str:
    """``finished`` when every comparison is decided, futile or at max_seeds; else how far."""
    if exp["summary"] is None:
        return "not run yet"
    open_ = [
        r for r in exp["summary"]["results"] if (r.get("sequential") or {}).get("status") == "open"
    ]
    if open_:
        n = max(len(r["seeds"]) for r in exp["summary"]["results"])
        return f"running: {len(open_)} comparison(s) still open at {n} seeds"
    return "finished"


def _cpu_seconds(folders: list[Path], cache: Path) -> float:
    """Sum of the wall times of every target run in ``folders`` and of each source they used
    (in the source cache ``cache``; once, however many experiments share it), seconds."""
    total = 0.0
    sources: set[str] = set()
    for folder in folders:
        for run in folder.glob("*/*/*/seed_*/run.json"):
            info = read_json(run)
            total += info.get("wall_time_s") or 0.0
            if info.get("source_key"):
                sources.add(info["source_key"])
    for key in sources:
        rec = cache / key / "run.json"
        if rec.is_file():
            total += read_json(rec).get("wall_time_s") or 0.0
    return total


def _verdict(r: dict[str, Any], key: str = "verdict") -> str:
    v = r.get(key) or "n/a"
    return f"**{v}**" if v in ("positive", "negative") else v


def _seq(r: dict[str, Any]) -> str:
    seq = r.get("sequential") or {}
    if not seq:
        return f"{len(r['seeds'])} seeds"
    if seq.get("status") != "open" and seq.get("look") is not None:  # stopped at that look
        return f"{seq['status']} at look {seq['look']}, {seq['n']} seeds"
    return f"{seq.get('status', 'open')}, {seq.get('n', len(r['seeds']))} seeds"


def _pair_section(exp: dict[str, Any], images: Path) -> list[str]:
    pair, algo = exp["pair"], exp["algo"]
    p = get_pair(pair)
    b = p.budget(algo)
    lines = [f"#### `{pair}`, {algo.upper()}", ""]
    lines.append(
        f"{p.description}. Kind of change: {CHANGE.get(pair, 'n/a')}. Budget: source "
        f"{b.source_steps:,} steps, target {b.target_steps:,} steps, an evaluation (10 "
        f"episodes) every {b.eval_every:,} steps; threshold {p.threshold:g}. State: "
        f"{_state(exp)}."
    )
    lines.append("")
    s = exp["summary"]
    if s is None:
        return lines
    fam = s.get("family", {})
    lines.append(
        f"Family: the {fam.get('size', '?')} comparison(s) of this table, family-wise error "
        "<= 5% in each accounting."
    )
    lines.append("")
    lines.append(
        "| method | verdict | seeds | forward transfer | p | time-to-threshold speed-up | "
        "jumpstart | verdict, total-time | forward transfer, total-time | p, total-time |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in s["results"]:
        n = len(r["seeds"])
        m = r["metrics"]
        lines.append(
            f"| `{r['method']}` | {_verdict(r)} | {_seq(r)} "
            f"| {metric_cell(m['forward_transfer'], n)} "
            f"| {fmt_p(r.get('p_value'))} | {metric_cell(m['time_to_threshold_speedup'], n)} "
            f"| {metric_cell(m['jumpstart'], n)} | {_verdict(r, 'verdict_total_time')} "
            f"| {metric_cell(m['forward_transfer_total_time'], n)} "
            f"| {fmt_p(r.get('p_value_total_time'))} |"
        )
    if b.source_steps >= b.target_steps and s["results"]:
        lines.append("")
        lines.append(
            f"Total-time columns: the source's pretraining ({b.source_steps:,} steps) fills the "
            f"whole target budget ({b.target_steps:,}), so over it every method's total-time curve "
            "is the source learner's own measured curve on the target: the columns compare the "
            "source's training with scratch's and are the same for each method on the same seeds."
        )
    if s["results"]:
        r = max(s["results"], key=lambda r: len(r["seeds"]))  # scratch's most seeds
        tts = r["metrics"]["time_to_threshold_scratch"]
        lines.append("")
        lines.append(
            f"Scratch reaches {p.threshold:g} at {metric_cell(tts, len(r['seeds']))} target steps."
        )
    png = exp["folder"] / f"curves_{pair}_{algo}.png"
    if pair in PLOTS and png.is_file():
        dest = images / f"catalog_{pair}_{algo}.png"
        shutil.copyfile(png, dest)
        lines += ["", f"![{pair} {algo} curves](images/{dest.name})"]
    lines.append("")
    return lines


def _overview(exps: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| pair | algo | change | positive | negative | undecided | state |",
        "|---|---|---|---|---|---|---|",
    ]
    for exp in exps:
        res = (exp["summary"] or {}).get("results", [])

        def named(v: str, res: list[dict[str, Any]] = res) -> str:
            return ", ".join(f"`{r['method']}`" for r in res if r.get("verdict") == v) or "-"

        lines.append(
            f"| `{exp['pair']}` | {exp['algo']} | {CHANGE.get(exp['pair'], 'n/a')} "
            f"| {named('positive')} | {named('negative')} | {named('inconclusive')} "
            f"| {_state(exp)} |"
        )
    return lines


def _scratch_check() -> list[str]:
    data = measured_budgets()
    lines = [
        "| env | algo | rl-baselines3-zoo (1 agent, mean +/- std) | ours: scratch on the source "
        "variant, 5 seeds: final evaluation, IQM [min, max] | at |",
        "|---|---|---|---|---|",
    ]
    seen = set()
    for entry in data.get("pairs", {}).values():
        src = entry["source"]
        key = (src.get("family"), entry["algo"])
        if key in seen or key not in ZOO or not src.get("chosen"):
            continue
        seen.add(key)
        env, mean, std, steps = ZOO[key]
        cand = chosen_candidate(src)
        finals = sorted(s["final"] for s in cand["seeds"])
        lines.append(
            f"| {env} | {entry['algo']} | {mean:g} +/- {std:g} at {steps} | "
            f"{fmt_number(iqm(finals))} [{fmt_number(finals[0])}, {fmt_number(finals[-1])}] "
            f"| {src['chosen']:,} steps |"
        )
    return lines


def generated(paths: Paths) -> str:
    """The measured part of docs/results.md."""
    exps = _experiments(paths)
    machines, wall, done = set(), 0.0, 0
    for exp in exps:
        for inv in exp["invocations"]:
            machines.add(f"{inv['machine']['cpu']}, {inv['machine']['cores']} cores")
            wall += inv["wall_time_s"]
        done += _state(exp) == "finished"
    ran = [exp["folder"] for exp in exps if exp["summary"] is not None]
    cpu = _cpu_seconds(ran, paths.runs / "sources")
    lines = [
        "```",
        "rl-transfer run experiments/catalog.yaml",
        "python benchmarks/catalog_results.py",
        "```",
        "",
        f"Progress: {done} of {len(exps)} experiments finished. Wall time so far "
        f"{wall / 3600:.2f} h over every invocation (invocations.json), CPU time of the runs "
        f"{cpu / 3600:.2f} h; machine(s): {'; '.join(sorted(machines)) or 'none yet'}.",
        "",
        "### Overview",
        "",
        *_overview(exps),
        "",
        "### Per pair",
        "",
    ]
    for exp in exps:
        lines += _pair_section(exp, paths.images)
    lines += [
        "### Scratch baselines against rl-baselines3-zoo",
        "",
        *_scratch_check(),
    ]
    return "\n".join(lines)


def _region(name: str, paths: Paths) -> str:
    if name == "budgets":
        import search_budgets

        return search_budgets.show(measured_budgets())
    if name == "estimate":
        import catalog_estimate

        return catalog_estimate.table(*catalog_estimate.estimate(paths.study))
    return generated(paths)


def main(argv: list[str] | None = None) -> int:
    import argparse

    default = Paths()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--study", type=Path, default=default.study)
    parser.add_argument("--runs", type=Path, default=default.runs, help="the experiments' folder")
    parser.add_argument("--doc", type=Path, default=default.doc)
    parser.add_argument("--images", type=Path, default=default.images)
    args = parser.parse_args(argv)
    paths = Paths(args.study, args.runs, args.doc, args.images)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    text = paths.doc.read_text()
    for name in REGIONS:
        begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
        if begin not in text or end not in text:
            raise SystemExit(f"error: {paths.doc} has no markers {begin} ... {end}")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{_region(name, paths)}\n{end}{tail}"
    write_text(paths.doc, text)
    print(f"wrote {paths.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
