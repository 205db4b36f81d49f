"""Calibration of the verdict: false-verdict rates on A/A comparisons, power, and the study-level
procedures (Holm for fixed seeds, alpha spending for adaptive seeds), by simulation through
``rl_transfer.compare`` -- the code path of the reports.

Each simulated seed is a logistic learning curve on a 51-point grid over 100k steps,
f(t) = R_min + (R_max - R_min) * sigmoid((t - m) / 8k) + evaluation noise (sd 15), R_min = 20,
R_max = 500. The midpoint m = 40k + 10k * X, with X drawn per seed and per arm from one of:

- ``normal``: standard normal;
- ``t3``: Student t with 3 degrees of freedom (heavy tails);
- ``lognormal``: exp(N(0, 1)) - e^0.5 (skewed, mean 0).

In an A/A comparison both arms draw X from the same distribution, so every verdict is false. For
power the transfer arm's midpoint is moved earlier by ``effect`` x 10k steps.

Run by hand (about 5 minutes on one core with the defaults):

    python benchmarks/bench_calibration.py                  # A/A rates and power
    python benchmarks/bench_calibration.py --family         # + Holm and adaptive seeds
    python benchmarks/bench_calibration.py --real-only --real DIR   # halves of real scratch runs

Results and the exact commands are in docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import rl_transfer
from rl_transfer.stats import holm, look_schedule, paired_t_test, sequential_holm_look

GRID = np.linspace(0, 100_000, 51)
R_MIN, R_MAX, THRESHOLD = 20.0, 500.0, 475.0
SEED_COUNTS = (3, 4, 5, 6, 8, 10, 15, 20, 30)
DISTRIBUTIONS = ("normal", "t3", "lognormal")


def draw(rng: np.random.Generator, dist: str, size: int) -> np.ndarray:
    if dist == "normal":
        return rng.standard_normal(size)
    if dist == "t3":
        return rng.standard_t(3, size)
    if dist == "lognormal":
        return np.exp(rng.standard_normal(size)) - np.exp(0.5)
    raise ValueError(dist)


def curves(rng: np.random.Generator, dist: str, n: int, shift: float = 0.0) -> np.ndarray:
    """Shape [n, 51]: n seeds' learning curves."""
    mid = 40_000 + 10_000 * (draw(rng, dist, n) - shift)
    z = (GRID[None, :] - mid[:, None]) / 8_000
    f = R_MIN + (R_MAX - R_MIN) / (1 + np.exp(-z))
    return f + rng.normal(0, 15, size=f.shape)


def compare(transfer: np.ndarray, scratch: np.ndarray) -> rl_transfer.Comparison:
    return rl_transfer.compare(
        GRID, transfer, scratch, threshold=THRESHOLD, r_min=R_MIN, r_max=R_MAX
    )


def aa_rates(reps: int, rng: np.random.Generator, old_reps: int) -> list[dict]:
    """False-verdict rate of the verdict rule (and, on fewer reps, of the old rules: the
    percentile bootstrap interval of forward transfer excluding 0, and a t-test on per-seed
    forward transfer) under A/A, per distribution and seed count."""
    rows = []
    for dist in DISTRIBUTIONS:
        for n in SEED_COUNTS:
            false = old_boot = old_t = 0
            for r in range(reps):
                c = compare(curves(rng, dist, n), curves(rng, dist, n))
                false += c.verdict != "inconclusive"
                if r < old_reps:
                    ft = c.metrics["forward_transfer"]
                    old_boot += ft.ci is not None and (ft.ci[0] > 0 or ft.ci[1] < 0)
                    p = paired_t_test([v for v in ft.per_seed if v is not None])
                    old_t += p is not None and p < 0.05
            rate = false / reps
            rows.append(
                {
                    "dist": dist,
                    "n": n,
                    "false_verdicts": rate,
                    "mc_se": float(np.sqrt(0.05 * 0.95 / reps)),
                    "old_bootstrap_rule": old_boot / old_reps,
                    "t_test_on_ft": old_t / old_reps,
                }
            )
            print(
                f"A/A {dist:9s} n={n:2d}: false verdicts {rate:.3f} "
                f"(MC se {rows[-1]['mc_se']:.3f}); old bootstrap rule {old_boot / old_reps:.3f}; "
                f"t-test on FT {old_t / old_reps:.3f}",
                flush=True,
            )
    return rows


def power(reps: int, rng: np.random.Generator, effects: tuple[float, ...]) -> list[dict]:
    """Share of correct positive verdicts with the transfer arm's midpoint moved earlier by
    ``effect`` sd of X (normal X)."""
    rows = []
    for effect in effects:
        for n in SEED_COUNTS:
            hits = sum(
                compare(curves(rng, "normal", n, effect), curves(rng, "normal", n)).verdict
                == "positive"
                for _ in range(reps)
            )
            rows.append({"effect": effect, "n": n, "power": hits / reps})
            print(f"power effect={effect} n={n:2d}: {hits / reps:.3f}", flush=True)
    return rows


def family(reps: int, rng: np.random.Generator, m: int, max_seeds: int) -> list[dict]:
    """A study of m methods sharing one scratch arm per seed: family-wise error under the global
    null, and power and seeds used under alternatives, for Holm at max_seeds fixed seeds against
    adaptive seeds (looks of :func:`look_schedule`, sequential Holm with alpha spending)."""
    looks = look_schedule(3, max_seeds)
    rows = []
    for effect in (0.0, 0.5, 1.0, 2.0):
        fixed_any = seq_any = 0
        fixed_hits = seq_hits = 0
        seeds_used, runs_used = [], []
        for _ in range(reps):
            scratch = curves(rng, "normal", max_seeds)
            arms = [curves(rng, "normal", max_seeds, effect) for _ in range(m)]
            # fixed design: every seed, Holm over the m p-values
            comps = [compare(a, scratch) for a in arms]
            adjusted = holm([c.p_value for c in comps])
            verdicts = ["inconclusive" if p >= 0.05 else c.verdict for c, p in zip(comps, adjusted)]
            fixed_any += any(v != "inconclusive" for v in verdicts)
            fixed_hits += sum(v == "positive" for v in verdicts)
            # adaptive: looks at 3, 5, ... seeds, sequential Holm over the m comparisons
            ds = {
                str(j): np.array(
                    [v for v in comps[j].metrics["normalized_area_gain"].per_seed if v is not None]
                )
                for j in range(m)
            }
            open_, final, n_rejected = set(ds), {}, 0
            for k, n in enumerate(looks):
                looked = sequential_holm_look(
                    {h: ds[h][:n] for h in open_}, k, looks, max_seeds, 0.05, m, n_rejected
                )
                for h, look in looked.items():
                    if look.status != "continue":
                        final[h] = look
                        open_.discard(h)
                        n_rejected += look.status in ("positive", "negative")
                if not open_:
                    break
            rejected = any(v.status in ("positive", "negative") for v in final.values())
            seq_hits += sum(v.status == "positive" for v in final.values())
            used = max(v.n for v in final.values())
            runs = sum(v.n for v in final.values())
            seq_any += rejected
            seeds_used.append(used)
            runs_used.append(runs + used)  # transfer runs + the scratch runs they need
        row = {
            "effect": effect,
            "m": m,
            "max_seeds": max_seeds,
            "looks": looks,
            "fixed_fwer" if effect == 0 else "fixed_power": (
                fixed_any / reps if effect == 0 else fixed_hits / (reps * m)
            ),
            "adaptive_fwer" if effect == 0 else "adaptive_power": (
                seq_any / reps if effect == 0 else seq_hits / (reps * m)
            ),
            "adaptive_mean_seeds": float(np.mean(seeds_used)),
            "fixed_seeds": max_seeds,
            "adaptive_mean_runs": float(np.mean(runs_used)),
            "fixed_runs": (m + 1) * max_seeds,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def real_halves(root: Path, draws: int, rng: np.random.Generator) -> list[dict]:
    """A real A/A check: the scratch runs of one experiment folder (for example 20 seeds of
    cartpole-long-pole), split at random into two disjoint groups of n seeds (n = 3, 5 and half)
    fed to ``rl_transfer.compare`` as 'transfer' and 'scratch'. Indicative only: the splits
    reuse the same runs, so the rate comes from the simulation above."""
    from rl_transfer.reports import load_experiment

    spec, runs = load_experiment(root)
    scratch = [r for r in runs if r.info["method"] == "scratch" and r.curve is not None]
    pair = spec["pairs"][scratch[0].info["pair"]]
    grid = scratch[0].curve.t
    f = np.stack([r.curve.at(grid) for r in scratch])
    rows = []
    for n in sorted({3, 5, len(f) // 2}):
        false = 0
        for _ in range(draws):
            idx = rng.permutation(len(f))
            c = rl_transfer.compare(
                grid,
                f[idx[:n]],
                f[idx[n : 2 * n]],
                threshold=pair["threshold"],
                r_min=pair["r_min"],
                r_max=pair["r_max"],
            )
            false += c.verdict != "inconclusive"
        rows.append({"seeds": len(f), "n": n, "draws": draws, "rate": false / draws})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(result: dict) -> str:
    """The tables of docs/metrics.md from a result JSON."""
    out = []
    if "aa" in result:
        out += [
            "| seeds | normal | t (3 df) | lognormal | old rule: bootstrap interval excludes 0 "
            "(normal / t3 / lognormal) | t-test on per-seed FT (normal) |",
            "|---|---|---|---|---|---|",
        ]
        for n in SEED_COUNTS:
            rows = {r["dist"]: r for r in result["aa"] if r["n"] == n}
            old = " / ".join(f"{rows[d]['old_bootstrap_rule']:.3f}" for d in DISTRIBUTIONS)
            out.append(
                f"| {n} | "
                + " | ".join(f"{rows[d]['false_verdicts']:.3f}" for d in DISTRIBUTIONS)
                + f" | {old} | {rows['normal']['t_test_on_ft']:.3f} |"
            )
        out.append("")
    if "power" in result:
        effects = sorted({r["effect"] for r in result["power"]})
        out += [
            "| seeds | " + " | ".join(f"effect {e:g} sd" for e in effects) + " |",
            "|---" * (len(effects) + 1) + "|",
        ]
        for n in SEED_COUNTS:
            cells = [
                next(
                    f"{r['power']:.3f}" for r in result["power"] if r["n"] == n and r["effect"] == e
                )
                for e in effects
            ]
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out.append("")
    if "family" in result:
        out += [
            "| effect (sd) | fixed 10 seeds, Holm: FWER or power | adaptive: FWER or power "
            "| adaptive: mean seeds of the study | adaptive: mean target runs |",
            "|---|---|---|---|---|",
        ]
        for r in result["family"]:
            key = "fwer" if r["effect"] == 0 else "power"
            out.append(
                f"| {r['effect']:g} | {r['fixed_' + key]:.3f} | {r['adaptive_' + key]:.3f} "
                f"| {r['adaptive_mean_seeds']:.2f} (fixed: {r['fixed_seeds']}) "
                f"| {r.get('adaptive_mean_runs', float('nan')):.1f} (fixed: "
                f"{r.get('fixed_runs', 'n/a')}) |"
            )
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=4000, help="A/A comparisons per cell")
    ap.add_argument("--old-reps", type=int, default=500, help="reps for the old rules")
    ap.add_argument("--power-reps", type=int, default=1000)
    ap.add_argument("--family", action="store_true", help="also Holm vs adaptive seeds")
    ap.add_argument("--family-reps", type=int, default=1000)
    ap.add_argument("--family-only", action="store_true", help="only the family simulation")
    ap.add_argument("--real", type=Path, help="experiment folder with many scratch seeds")
    ap.add_argument("--real-only", action="store_true", help="only the --real check")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_calibration.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", type=Path, help="print the tables of a result JSON and exit")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(a.markdown.read_text())))
        return
    rng = np.random.default_rng(a.seed)
    started = time.time()
    result: dict = {}
    if a.family_only:
        a.family = True
    elif not a.real_only:
        result["aa"] = aa_rates(a.reps, rng, a.old_reps)
        result["power"] = power(a.power_reps, rng, (0.5, 1.0, 2.0))
    if a.family:
        result["family"] = family(a.family_reps, rng, m=3, max_seeds=10)
    if a.real:
        result["real"] = real_halves(a.real, 2000, rng)
    result["wall_time_s"] = round(time.time() - started, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out} in {result['wall_time_s']} s")


if __name__ == "__main__":
    main()
