"""Measure the step budgets of the classic-control catalog pairs (writes envs/budgets.json).

For each pair, one algorithm (the cheapest the catalog supports whose scratch reaches the pair's
threshold, chosen from rl-baselines3-zoo's benchmark; see ``SEARCH``):

- **target budget**: the smallest candidate at which scratch, trained on the target for that
  many env steps, reaches the pair's threshold (at least one evaluation at or above it) on at
  least 4 of 5 seeds;
- **source budget**: the smallest candidate at which the same learner, trained on the *source*
  variant, reaches the source variant's threshold on at least 4 of 5 seeds (pairs that share a
  source variant and algorithm share this search).

Each candidate is its own run of ``learn(candidate)``: the ``lin_`` schedules of zoo's
hyperparameters span one ``learn()`` call, so a run of 100k steps stopped at 50k is not a 50k run.
Candidates are tried smallest first; the search of a pair stops at the first one that passes.
A pair whose scratch does not pass at its largest candidate is recorded as not reached.

Every candidate is an experiment of the engine (scratch only, 5 seeds) under ``--out``: the same
command again resumes where it stopped (finished runs are reused), and scratch runs land in the
scratch cache, where the catalog study (experiments/catalog.yaml) finds them at the chosen budget.
``envs/budgets.json`` is rewritten (atomically) after every candidate, with the per-seed evidence,
wall times, the machine and the command; ``envs/catalog.py`` reads it.

Usage::

    python benchmarks/search_budgets.py                       # every pair in SEARCH
    python benchmarks/search_budgets.py --pairs cartpole-long-pole,pendulum-heavy
    python benchmarks/search_budgets.py --show                # print envs/budgets.json's table

Measured speeds on the reference machine (2 cores, AMD EPYC, one torch thread per run), for
sizing: PPO with zoo's CartPole entry about 1,700 env steps/s, DQN about 700, SAC about 40.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs import get_pair, register_pair, unregister_pair  # noqa: E402
from rl_transfer.io import read_json, write_json  # noqa: E402
from rl_transfer.metrics import time_to_threshold  # noqa: E402
from rl_transfer.versions import machine  # noqa: E402

BUDGETS_FILE = ROOT / "envs" / "budgets.json"
SEEDS = 5
NEEDED = 4
"""A candidate passes when scratch reaches the threshold on at least NEEDED of SEEDS seeds."""


@dataclass(frozen=True)
class Search:
    """What to try for one pair.

    Attributes:
        algo: the learner (its entry in agents/hyperparams/<algo>.yml is used unchanged).
        eval_every: target env steps between evaluations (10 episodes each).
        target: candidate target budgets, smallest first (env steps).
        source: candidate source budgets, smallest first (env steps).
        source_threshold: the level the source must reach on the source variant (return per
            episode): the source env's own reward threshold where gymnasium has one.
        why: why this algorithm (rl-baselines3-zoo's benchmark figures, n_timesteps).
    """

    algo: str
    eval_every: int
    target: tuple[int, ...]
    source: tuple[int, ...]
    source_threshold: float
    why: str


_CP_WHY = (
    "PPO with zoo's CartPole entry (8 envs, ~1,700 steps/s here) reaches 500 within 30k steps; "
    "zoo: ppo CartPole-v1 500 +/- 0 at 100k"
)
_CP = Search("ppo", 2_000, (50_000, 100_000, 200_000), (20_000, 30_000, 50_000), 475.0, _CP_WHY)
_PEND = Search(
    "sac",
    500,
    (5_000, 10_000, 20_000),
    (5_000, 10_000, 20_000),
    -200.0,
    "SAC reaches -200 within 5k-10k steps (zoo: sac Pendulum-v1 -157 +/- 89 at 20k); PPO needs "
    "100k with zoo's entry and reaches -172 +/- 104 there",
)
_ACRO = Search(
    "dqn",
    5_000,
    (50_000, 100_000),
    (50_000, 100_000),
    -100.0,
    "zoo: dqn Acrobot-v1 -76.6 +/- 11.8 at 100k, against ppo 1M and a2c 500k",
)
_MC = Search(
    "dqn",
    5_000,
    (60_000, 120_000),
    (60_000, 120_000),
    -110.0,
    "zoo: dqn MountainCar-v0 -100.8 +/- 9.9 at 120k, against ppo -110.4 at 1M",
)

SEARCH: dict[str, Search] = {
    "cartpole-long-pole": _CP,
    "cartpole-heavy-pole": _CP,
    "cartpole-heavy-cart": _CP,
    "cartpole-very-long-pole": _CP,
    "cartpole-reversed-force": _CP,
    "cartpole-sutton-barto-reward": _CP,
    "pendulum-heavy": _PEND,
    "pendulum-long": _PEND,
    "pendulum-low-gravity": _PEND,
    "acrobot-heavy-link": _ACRO,
    "acrobot-long-link": _ACRO,
    "mountaincar-strong-engine": _MC,
    "mountaincar-to-continuous": Search(
        "dqn",
        5_000,
        (60_000, 120_000),
        (60_000, 120_000),
        -110.0,
        "the agent acts in MountainCar-v0's Discrete(3) through the pair's mapping, so DQN with "
        "zoo's MountainCar-v0 entry; zoo's ppo MountainCarContinuous-v0 reaches 88.3 +/- 2.6 "
        "at 20k, below the threshold 90",
    ),
}
"""The classic-control pairs and what is tried for each."""

BEYOND: dict[str, str] = {
    "lunarlander-low-gravity": "LunarLander: zoo's n_timesteps (ppo 1M, dqn 100k)",
    "lunarlander-windy": "LunarLander: zoo's n_timesteps (ppo 1M, dqn 100k)",
    "hopper-heavy": "Hopper (MuJoCo): zoo's n_timesteps (ppo 1M)",
}
"""Pairs not searched: beyond the reference machine; their budgets stay zoo-derived."""


def _source_check_pair(pair_name: str, search: Search) -> str:
    """Register (once) a pair whose target is ``pair_name``'s source variant, so that a scratch
    run on it is a source's training evaluated on the source variant; return its name."""
    pair = get_pair(pair_name)
    src = pair.source
    params = "-".join(f"{k}={v}" for k, v in sorted(src.params.items())) or "default"
    name = f"source-check-{src.family}-{params}"
    family = src.env_family
    r_max = family.r_max_at(src.horizon)
    register_pair(
        name,
        src,
        src,
        threshold=search.source_threshold,
        r_max=r_max if r_max is not None else pair.r_max,
        description=f"the source variant of {pair_name} as a target (budget search)",
        overwrite=True,
    )
    return name


@dataclass(frozen=True)
class Where:
    """Where the search writes: experiment folders, caches, workers."""

    out: Path
    source_cache: Path
    scratch_cache: Path
    workers: int


def _run_candidate(
    pair: str, search: Search, steps: int, where: Where, label: str
) -> dict[str, Any]:
    """Train scratch for ``steps`` env steps on ``pair``'s target, SEEDS seeds; the evidence."""
    from rl_transfer import Experiment

    folder = where.out / pair / f"{search.algo}-{steps}"
    started = time.time()
    result = Experiment(
        pairs=[pair],
        algo=search.algo,
        methods=["scratch"],
        seeds=SEEDS,
        target_steps=steps,
        eval_every=search.eval_every,
        out=folder,
        source_cache=where.source_cache,
        scratch_cache=where.scratch_cache,
        workers=where.workers,
        quiet=True,
    ).run()
    threshold = get_pair(pair).threshold
    seeds: list[dict[str, Any]] = []
    for seed in range(SEEDS):
        run = folder / pair / search.algo / "scratch" / f"seed_{seed}"
        info = read_json(run / "run.json")
        if info.get("status") != "done":
            raise SystemExit(f"error: {run} failed: {info.get('error')}")
        ev = np.load(run / "evaluations.npz")
        t, f = ev["timesteps"], ev["results"].mean(axis=1)
        ttt = time_to_threshold(t, f, threshold)
        seeds.append(
            {
                "seed": seed,
                "time_to_threshold": None if ttt is None else int(ttt),
                # the budget in force: SB3 learns in whole rollouts (rounded up)
                "steps_taken": info.get("target_steps"),
                "best": round(float(f.max()), 3),
                "final": round(float(f[-1]), 3),
                "wall_time_s": info.get("wall_time_s"),
                "eval_time_s": info.get("eval_time_s"),
            }
        )
    reached = sum(s["time_to_threshold"] is not None for s in seeds)
    print(
        f"{label}: {pair} {search.algo} {steps} steps: threshold {threshold:g} reached on "
        f"{reached}/{SEEDS} seeds ({time.time() - started:.0f} s this call, "
        f"{result.reused} run(s) reused)",
        flush=True,
    )
    return {
        "steps": steps,
        "threshold": threshold,
        "reached": reached,
        "passed": reached >= NEEDED,
        "seeds": seeds,
        "cpu_time_s": round(sum(s["wall_time_s"] or 0 for s in seeds), 1),
    }


def _search(
    pair: str,
    search: Search,
    candidates: tuple[int, ...],
    where: Where,
    label: str,
) -> dict[str, Any]:
    """Try ``candidates`` smallest first on ``pair`` until one passes (a candidate already run
    under ``out`` is read back by the engine's resume, not trained again)."""
    tried: list[dict[str, Any]] = []
    chosen = None
    for steps in candidates:
        evidence = _run_candidate(pair, search, steps, where, label)
        tried.append(evidence)
        if evidence["passed"]:
            chosen = steps
            break
    return {"candidates": tried, "chosen": chosen}


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def show(data: dict[str, Any]) -> str:
    """The measured budgets as a markdown table."""
    lines = [
        "| pair | algo | source steps | target steps | eval every | scratch reached (seeds) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in data.get("pairs", {}).items():
        tgt, src = entry.get("target", {}), entry.get("source", {})

        def cell(part: dict[str, Any]) -> str:
            if part.get("chosen"):
                return f"{part['chosen']:,}"
            if part.get("candidates"):
                return f"not reached at {part['candidates'][-1]['steps']:,}"
            return "pending"

        reached = ", ".join(f"{c['steps']:,}: {c['reached']}/5" for c in tgt.get("candidates", []))
        lines.append(
            f"| `{name}` | {entry['algo']} | {cell(src)} | {cell(tgt)} | {entry['eval_every']:,} "
            f"| {reached or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--pairs", default=",".join(SEARCH), help="pairs to search (comma-separated)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "budget-search")
    parser.add_argument(
        "--source-cache",
        type=Path,
        default=ROOT / "runs" / "sources",
        help="the engine's source cache (default: runs/sources)",
    )
    parser.add_argument(
        "--scratch-cache",
        type=Path,
        default=ROOT / "runs" / "scratch",
        help="the engine's scratch cache, where the catalog study finds the runs (runs/scratch)",
    )
    parser.add_argument(
        "--write", type=Path, default=BUDGETS_FILE, help="the output (envs/budgets.json)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--show", action="store_true", help="print the table of budgets.json")
    args = parser.parse_args(argv)
    data = read_json(args.write) if args.write.exists() else {"pairs": {}}
    where = Where(args.out, args.source_cache, args.scratch_cache, args.workers)
    if args.show:
        print(show(data))
        return 0
    names = [p for p in args.pairs.split(",") if p]
    unknown = [p for p in names if p not in SEARCH]
    if unknown:
        parser.error(f"not a searched pair: {', '.join(unknown)}; searched: {', '.join(SEARCH)}")
    data["rule"] = (
        f"target budget: the smallest candidate at which scratch reaches the pair's threshold "
        f"(one evaluation of 10 episodes at or above it) on at least {NEEDED} of {SEEDS} seeds; "
        "source budget: the same on the source variant, at the source env's threshold; each "
        "candidate its own learn() call"
    )
    data["machine"] = machine()
    data["command"] = "python benchmarks/search_budgets.py " + shlex.join(argv or sys.argv[1:])
    data["commit"] = _commit()
    data["beyond_the_reference_machine"] = BEYOND
    sources: dict[tuple[str, str, float], dict[str, Any]] = {}
    checks: set[str] = set()
    try:
        for i, name in enumerate(names, 1):
            search = SEARCH[name]
            label = f"[{i}/{len(names)}]"
            check = _source_check_pair(name, search)
            checks.add(check)
            skey = (check, search.algo, search.source_threshold)
            if skey not in sources:
                sources[skey] = _search(check, search, search.source, where, label)
            entry = {
                "algo": search.algo,
                "why": search.why,
                "eval_every": search.eval_every,
                "source": {
                    "variant": check,
                    "family": get_pair(name).source.family,
                    "params": dict(get_pair(name).source.params),
                    "threshold": search.source_threshold,
                    **sources[skey],
                },
                "target": _search(name, search, search.target, where, label),
            }
            data["pairs"][name] = entry
            write_json(args.write, data)
    finally:  # the source-check pairs were this search's own: leave the registry as it was
        for check in checks:
            unregister_pair(check)
    print(show(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
