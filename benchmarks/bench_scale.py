"""Studies of thousands of runs: planning and the report at 200 to 2,000 runs (run by hand;
results with their command line go in docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_scale.py --runs 200,500,1000,2000 --out /tmp/bench_scale

For each N it writes a finished experiment of N synthetic but well-formed run folders (run.json
and transfer_report.json through the project's record classes, evaluations.npz and
source_on_target.npz in the evaluator's layout, experiment.yaml from the spec) and then, in a
fresh process per N, measures:

- planning: ``rl_transfer.runner.plan`` on the spec over an empty folder (every job to run) and
  over the filled one (every run found finished, as on a resume);
- the report, step by step as ``rl_transfer.reports.write_reports`` does it (loading the runs,
  summary.json with metrics.csv, the terminal tables, the arms' IQM curves, the PNG charts,
  report.md, the TensorBoard views), wall time per step and the process's peak resident memory
  (``resource.getrusage``: ru_maxrss) before and after.

The study: N / 100 pairs (synthetic CartPole variants, pole half-lengths 0.55 m, 0.60 m, ...,
registered with a given R_min so nothing is simulated), PPO and A2C, methods policy, value,
finetune and feature beside scratch, 10 seeds: 2 x 5 x 10 = 100 runs per pair. Curves are
logistic rises from R_min to the 500-step limit, each method with its own jumpstart and speed,
each seed with its own jitter, plus evaluation noise, on 51 evaluations (t = 0 and every 2,000
of 100,000 target steps) of 10 episodes.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
METHODS = ["policy", "value", "finetune", "feature"]
ALGOS = ["ppo", "a2c"]
SEEDS = 10
RUNS_PER_PAIR = len(ALGOS) * (len(METHODS) + 1) * SEEDS
TARGET_STEPS, EVAL_EVERY, EPISODES = 100_000, 2_000, 10
R_MIN, R_MAX = 22.0, 500.0
EFFECT = {  # method -> (jumpstart in [0, 1] of the range, speed-up of the rise)
    "scratch": (0.0, 1.0),
    "policy": (0.5, 1.3),
    "value": (0.0, 1.6),
    "finetune": (0.6, 1.1),
    "feature": (0.2, 0.9),
}


def pair_names(n_pairs: int) -> list[str]:
    return [f"scale-cartpole-{k:03d}" for k in range(n_pairs)]


def register(n_pairs: int) -> None:
    """Register the study's pairs (synthetic CartPole variants; R_min given, not measured)."""
    from rl_transfer import register_pair

    for k, name in enumerate(pair_names(n_pairs)):
        register_pair(
            name,
            source=("cartpole", {}),
            target=("cartpole", {"length": round(0.55 + 0.05 * k, 4)}),
            threshold=475.0,
            r_min=R_MIN,
            overwrite=True,
        )


def make_spec(root: Path, n_pairs: int):  # noqa: ANN201  (ExperimentSpec)
    from rl_transfer.spec import spec_from

    return spec_from(
        pairs=pair_names(n_pairs),
        algos=ALGOS,
        methods=METHODS,
        seeds=SEEDS,
        source_steps=30_000,
        target_steps=TARGET_STEPS,
        eval_every=EVAL_EVERY,
        eval_episodes=EPISODES,
        out=root,
        source_cache=root.parent / "sources",
        name=root.name,
    )


def curve(rng: np.random.Generator, method: str, k: int) -> np.ndarray:
    """Episode returns, shape [n_evals, EPISODES]: a noisy logistic rise."""
    t = np.arange(0, TARGET_STEPS + 1, EVAL_EVERY, dtype=float)
    jump, speed = EFFECT[method]
    half = (35_000 + 3_000 * (k % 7)) / speed * rng.uniform(0.8, 1.25)
    rise = 1.0 / (1.0 + np.exp(-(t - half) / 6_000.0))
    level = jump + (1.0 - jump) * rise
    mean = R_MIN + (R_MAX - R_MIN) * level
    noisy = mean[:, None] + rng.normal(0.0, 40.0, size=(len(t), EPISODES))
    return np.clip(noisy, 8.0, R_MAX)


def write_study(root: Path, n_pairs: int) -> int:
    """Write a finished experiment of ``n_pairs * RUNS_PER_PAIR`` runs at ``root``; return N."""
    from rl_transfer.io import atomic_write
    from rl_transfer.records import TargetRecord, TransferReport
    from rl_transfer.runner import plan, write_spec

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    spec = make_spec(root, n_pairs)
    write_spec(spec, root)
    jobs = plan(spec, root).targets
    rng = np.random.default_rng(0)
    t = np.arange(0, TARGET_STEPS + 1, EVAL_EVERY, dtype=np.int64)
    for job in jobs:
        k = int(job.pair.name.rsplit("-", 1)[1])
        returns = curve(rng, job.method, k)
        job.dir.mkdir(parents=True)

        def save(path: Path, timesteps: np.ndarray, results: np.ndarray) -> None:
            atomic_write(
                path,
                lambda p: np.savez(
                    p,
                    timesteps=timesteps,
                    results=results,
                    ep_lengths=np.rint(results).astype(np.int64),
                ),
            )

        save(job.dir / "evaluations.npz", t, returns)
        src_steps = 0
        if job.source is not None:
            src_steps = job.source.steps
            src_t = np.arange(0, src_steps + 1, 5_000, dtype=np.int64)
            src = np.clip(R_MIN + rng.normal(0.0, 20.0, (len(src_t), EPISODES)), 8.0, R_MAX)
            src += np.linspace(0.0, 0.8 * (R_MAX - R_MIN), len(src_t))[:, None]
            save(job.dir / "source_on_target.npz", src_t, np.clip(src, 8.0, R_MAX))
        report = TransferReport(method=job.method, doc=job.transfer.doc)
        if job.source is not None:
            report.source = {"key": job.source.key, "dir": str(job.source.dir), "steps": src_steps}
            report.source_segment = "measured"
        report.write(job.dir)
        TargetRecord(
            pair=job.pair.name,
            algo=job.algo,
            method=job.method,
            seed=job.seed,
            status="done",
            source_steps=src_steps,
            target_steps=TARGET_STEPS,
            requested_target_steps=TARGET_STEPS,
            eval_every=EVAL_EVERY,
            eval_episodes=EPISODES,
            source_key=job.source.key if job.source is not None else None,
            hyperparams=dict(job.hyperparams),
            n_evaluations=len(t),
        ).write(job.dir)
    return len(jobs)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure(root: Path, n_pairs: int) -> dict[str, float]:
    """Plan and report the experiment at ``root`` (in this process); wall times in seconds."""
    from rich.console import Console

    from rl_transfer.io import write_text
    from rl_transfer.records import Summary
    from rl_transfer.reports import (
        arm_bands,
        load_experiment,
        metrics_csv,
        plot_curves,
        plot_forward_transfer,
        plot_performance_profile,
        print_tables,
        report_md,
        summarize,
        write_tensorboard_views,
    )
    from rl_transfer.runner import plan

    register(n_pairs)
    out: dict[str, float] = {"rss_start_mib": rss_mib()}
    spec = make_spec(root, n_pairs)
    empty = root.parent / f"{root.name}-empty"
    shutil.rmtree(empty, ignore_errors=True)
    clock = time.perf_counter()
    p = plan(spec, empty)
    out["plan_empty_s"] = time.perf_counter() - clock
    out["planned_jobs"] = len(p.targets) + len(p.sources)
    clock = time.perf_counter()
    p = plan(spec, root)
    out["plan_resume_s"] = time.perf_counter() - clock
    out["reused"] = len(p.reused)
    out["rss_before_report_mib"] = rss_mib()

    steps: list[tuple[str, object]] = []
    start = time.perf_counter()

    def step(name: str, fn):  # noqa: ANN001, ANN202
        clock = time.perf_counter()
        result = fn()
        out[f"{name}_s"] = time.perf_counter() - clock
        steps.append((name, result))
        return result

    loaded = step("load", lambda: load_experiment(root))
    summary = step("summary", lambda: summarize(root, loaded))
    step(
        "write_summary",
        lambda: (
            Summary(**summary).write(root),
            write_text(root / "metrics.csv", metrics_csv(summary)),
        ),
    )
    step("tables", lambda: print_tables(summary, Console(file=io.StringIO(), width=100)))
    bands = step("bands", lambda: arm_bands(loaded[1]))
    step(
        "plots",
        lambda: (
            plot_curves(root, summary, loaded, bands),
            plot_forward_transfer(root, summary),
            plot_performance_profile(root, summary, loaded),
        ),
    )
    step("report_md", lambda: write_text(root / "report.md", report_md(summary, loaded[0])))
    step("tensorboard", lambda: write_tensorboard_views(root, summary, loaded, bands))
    out["report_total_s"] = time.perf_counter() - start
    out["rss_peak_mib"] = rss_mib()
    out["runs"] = len(loaded[1])
    out["pngs"] = len(list(root.glob("*.png")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="200,500,1000,2000", help="study sizes N, comma-separated")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_scale"))
    ap.add_argument("--measure", nargs=2, metavar=("DIR", "PAIRS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]))))
        return
    rows = []
    for n in (int(x) for x in args.runs.split(",")):
        if n % RUNS_PER_PAIR:
            sys.exit(f"error: N = {n} is not a multiple of {RUNS_PER_PAIR} (runs per pair)")
        n_pairs = n // RUNS_PER_PAIR
        register(n_pairs)
        root = args.out / f"study-{n}"
        clock = time.perf_counter()
        written = write_study(root, n_pairs)
        made = time.perf_counter() - clock
        proc = subprocess.run(
            [sys.executable, str(HERE), "--measure", str(root), str(n_pairs)],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        m.update(N=written, write_study_s=made)
        rows.append(m)
        print(json.dumps(m), flush=True)
    keys = [
        "plan_empty_s",
        "plan_resume_s",
        "load_s",
        "summary_s",
        "tables_s",
        "bands_s",
        "plots_s",
        "report_md_s",
        "tensorboard_s",
        "report_total_s",
        "rss_before_report_mib",
        "rss_peak_mib",
    ]
    print("| N | " + " | ".join(k.removesuffix("_s") for k in keys) + " | report s per 1k runs |")
    print("|---" * (len(keys) + 2) + "|")
    for m in rows:
        cells = [f"{m[k]:.2f}" if k.endswith("_s") else f"{m[k]:.0f}" for k in keys]
        per_k = 1000 * m["report_total_s"] / m["N"]
        print(f"| {m['N']} | " + " | ".join(cells) + f" | {per_k:.2f} |")


if __name__ == "__main__":
    main()
