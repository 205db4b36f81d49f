"""Engine benchmarks (run by hand; results with their command lines go in docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_engine.py overhead   # workbench scratch run vs plain SB3
    .venv/bin/python benchmarks/bench_engine.py scaling    # 4 equal runs, --workers 2 vs 1
    .venv/bin/python benchmarks/bench_engine.py reuse      # sources trained once per seed
    .venv/bin/python benchmarks/bench_engine.py evalcost   # evaluation share of a run's wall time

Each prints one line per measurement. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RL = [sys.executable, "-m", "rl_transfer.cli"]


def overhead(steps: int, repeats: int) -> None:
    """A scratch run through the workbench (train_target: build, evaluate at t = 0 and every
    2,000 steps on 10 fixed episodes, learn, write every file) against the same training written
    directly with stable-baselines3 (same hyperparameters, steps, evaluation schedule: an
    evaluation at t = 0 with evaluate_policy, then EvalCallback every 2,000 steps on 10 episodes of
    a 10-env DummyVecEnv). One process, one torch thread, alternated."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    import envs
    from agents import get_adapter
    from agents.base import _linear
    from rl_transfer.train import TargetJob, train_target

    torch.set_num_threads(1)
    pair = envs.get_pair("cartpole-long-pole")
    adapter = get_adapter("ppo")
    hp = adapter.hyperparams("cartpole")

    def workbench(seed: int, out: Path) -> float:
        job = TargetJob(
            pair=pair,
            algo="ppo",
            method="scratch",
            seed=seed,
            target_steps=steps,
            eval_every=2000,
            eval_episodes=10,
            hyperparams=hp,
            dir=out / f"wb{seed}",
        )
        t = time.perf_counter()
        train_target(job)
        return time.perf_counter() - t

    def plain(seed: int, out: Path) -> float:
        t = time.perf_counter()
        kw = {k: v for k, v in hp.items() if k not in ("n_envs", "policy")}
        kw["learning_rate"] = _linear(0.001)
        kw["clip_range"] = _linear(0.2)
        env = make_vec_env(pair.make_target, n_envs=8, seed=seed)
        eval_env = make_vec_env(pair.make_target, n_envs=10, seed=10_000)
        model = PPO(
            "MlpPolicy",
            env,
            seed=seed,
            device="cpu",
            verbose=0,
            tensorboard_log=str(out / f"plain{seed}"),
            **kw,
        )
        evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
        cb = EvalCallback(
            eval_env,
            n_eval_episodes=10,
            eval_freq=2000 // 8,
            log_path=str(out / f"plain{seed}"),
            deterministic=True,
            verbose=0,
        )
        model.learn(steps, callback=cb)
        model.save(out / f"plain{seed}" / "model.zip")
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        wb, pl = [], []
        for r in range(repeats):
            pl.append(plain(r, out))
            wb.append(workbench(r, out))
            print(f"repeat {r}: plain SB3 {pl[-1]:.1f} s, workbench {wb[-1]:.1f} s")
        print(
            f"overhead: workbench / plain SB3 = {np.mean(wb):.1f} / {np.mean(pl):.1f} s = "
            f"{np.mean(wb) / np.mean(pl):.3f} ({steps} steps, {repeats} repeats)"
        )


def _timed(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(RL + args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t


def scaling(steps: int) -> None:
    """4 equal scratch runs (seeds 0-3) with --workers 1 and --workers 2."""
    with tempfile.TemporaryDirectory() as d:
        common = [
            "run",
            "--methods",
            "scratch",
            "--seeds",
            "4",
            "--target-steps",
            str(steps),
            "--quiet",
            "--source-cache",
            "src",
        ]
        t1 = _timed([*common, "--workers", "1", "--out", "w1"], Path(d))
        t2 = _timed([*common, "--workers", "2", "--out", "w2"], Path(d))
        same = json.loads(
            (Path(d) / "w1/cartpole-long-pole/ppo/scratch/seed_3/run.json").read_text()
        )["target_steps"]
        print(
            f"scaling: 4 runs x {same} steps: --workers 1 {t1:.1f} s, --workers 2 {t2:.1f} s, "
            f"speed-up {t1 / t2:.2f}x"
        )


def reuse(steps: int) -> None:
    """A study with every transfer method: how many sources are trained."""
    from agents import get_adapter
    from rl_transfer.methods import METHODS

    ppo = get_adapter("ppo")
    methods = [m for m, spec in METHODS.items() if m != "scratch" and not spec.missing(ppo)]
    with tempfile.TemporaryDirectory() as d:
        _timed(
            [
                "run",
                "--methods",
                ",".join(methods),
                "--seeds",
                "3",
                "--source-steps",
                "2048",
                "--target-steps",
                str(steps),
                "--eval-every",
                "1024",
                "--quiet",
                "--out",
                "exp",
                "--source-cache",
                "src",
            ],
            Path(d),
        )
        trained = [p for p in (Path(d) / "src").iterdir() if not p.name.startswith(".")]
        runs = list((Path(d) / "exp").glob("*/*/*/seed_*/run.json"))
        print(
            f"reuse: {len(methods)} transfer methods ({', '.join(methods)}) x 3 seeds = "
            f"{len(runs)} target runs; sources trained: {len(trained)} (one per seed)"
        )


def evalcost() -> None:
    """Evaluation share of wall time in the default experiment's runs (reads run.json)."""
    with tempfile.TemporaryDirectory() as d:
        _timed(["run", "--seeds", "1", "--quiet", "--out", "exp", "--source-cache", "src"], Path(d))
        for p in sorted((Path(d) / "exp").glob("*/*/*/seed_*/run.json")):
            info = json.loads(p.read_text())
            print(
                f"evalcost: {info['method']}: {info['n_evaluations']} evaluations x 10 episodes, "
                f"{info['eval_time_s']:.1f} s of {info['wall_time_s']:.1f} s = "
                f"{100 * info['eval_time_s'] / info['wall_time_s']:.1f}%"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("overhead", "scaling", "reuse", "evalcost"))
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    a = parser.parse_args()
    if a.what == "overhead":
        overhead(a.steps, a.repeats)
    elif a.what == "scaling":
        scaling(a.steps)
    elif a.what == "reuse":
        reuse(a.steps)
    else:
        evalcost()


if __name__ == "__main__":
    main()
