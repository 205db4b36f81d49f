"""Shared fixtures: one tiny end-to-end experiment through the CLI, reused by several tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "--source-steps",
    "512",
    "--target-steps",
    "768",
    "--eval-every",
    "256",
    "--eval-episodes",
    "4",
    "--seeds",
    "2",
    "--workers",
    "2",
    "--quiet",
]

ONE_SEED = [
    "--seeds",
    "1",
    "--source-steps",
    "256",
    "--target-steps",
    "256",
    "--eval-every",
    "256",
    "--eval-episodes",
    "2",
    "--workers",
    "1",
    "--quiet",
]
"""One seed, one rollout-sized budget, one process: a run through the CLI in seconds."""


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``rl-transfer`` as a user would (a subprocess of the installed entry point), with
    ``env`` as the environment if given."""
    env = {**(env or os.environ), "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "rl_transfer.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory) -> Path:
    """A finished tiny experiment: cartpole-long-pole, PPO, policy + value vs scratch, 2 seeds."""
    root = tmp_path_factory.mktemp("e2e")
    proc = cli("run", *TINY, "--out", "exp", "--source-cache", "sources", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "exp"


def read_json(path: Path):
    return json.loads(path.read_text())


def run_exp(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``rl-transfer run ARGS --out exp --source-cache src`` in ``cwd``."""
    return cli("run", *args, "--out", "exp", "--source-cache", "src", cwd=cwd)
