"""Shared fixtures: one tiny end-to-end experiment through the CLI, reused by several tests."""

import json
import os
import select
import subprocess
import sys
import tempfile
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


_FORK_SERVER = r"""
import json, os, sys, traceback
from rl_transfer.cli import main
import rl_transfer.experiment  # what `run` imports before it checks its input: done once here

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the command's own process, as `python -m rl_transfer.cli ARGS` would be
        code = 1
        try:
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            for fd, name, flags in (
                (0, os.devnull, os.O_RDONLY),
                (1, request["stdout"], os.O_WRONLY),
                (2, request["stderr"], os.O_WRONLY),
            ):
                os.dup2(os.open(name, flags), fd)
            sys.argv = [sys.modules["rl_transfer.cli"].__file__, *request["args"]]
            try:
                code = main(request["args"])
            except SystemExit as exc:
                code = exc.code
            if code is None:
                code = 0
            elif not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class _ForkServer:
    """One interpreter that has imported the CLI, forking one process per command."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = _startup(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.files = Path(tempfile.mkdtemp(prefix="rl-transfer-fork-"))

    def run(
        self, args: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        out, err = self.files / "stdout", self.files / "stderr"
        out.write_text("")
        err.write_text("")
        request = {
            "args": args,
            "cwd": str(cwd),
            "env": env,
            "stdout": str(out),
            "stderr": str(err),
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()  # a server still waiting for that command serves no other
            self.proc.wait()
            raise AssertionError(f"rl-transfer {' '.join(args)} did not end within {timeout} s")
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return subprocess.CompletedProcess(
            ["rl-transfer", *args], int(line), out.read_text(), err.read_text()
        )

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:  # the server is gone already
            pass
        self.proc.wait(timeout=60)
        for f in self.files.iterdir():
            f.unlink()
        self.files.rmdir()


_fork_server: _ForkServer | None = None


def _startup(env: dict[str, str]) -> dict[str, str]:
    """The environment but for what pytest changes from test to test (read by no command)."""
    return {k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"}


def cli_forked(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``cli(*args, cwd=cwd)`` for a command that ends before it trains (bad input, a refusal):
    the command runs in a process of its own with the usual environment, its stdin empty, its
    exit status and output captured, but forked from a waiting interpreter that has already
    imported the CLI and the engine, which saves each such test the seconds of importing torch,
    stable-baselines3 and scipy."""
    global _fork_server
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if (
        _fork_server is None
        or _fork_server.proc.poll() is not None
        or _fork_server.env != _startup(env)
    ):
        if _fork_server is not None:
            _fork_server.close()
        _fork_server = _ForkServer(env)
    return _fork_server.run(list(args), cwd, env, timeout)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _fork_server is not None:
        _fork_server.close()


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


@pytest.fixture(scope="session")
def dqn_experiment(tmp_path_factory) -> Path:
    """A finished tiny DQN experiment: cartpole-long-pole, value and reuse vs scratch, 1 seed, a
    400-step target budget (two 256-step rollouts); its ``cartpole-long-pole/dqn`` folder."""
    root = tmp_path_factory.mktemp("dqn")
    proc = run_exp(
        root,
        "--algo",
        "dqn",
        "--methods",
        "value,reuse",
        "--seeds",
        "1",
        "--source-steps",
        "300",
        "--target-steps",
        "400",
        "--eval-every",
        "200",
        "--eval-episodes",
        "2",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    return root / "exp" / "cartpole-long-pole" / "dqn"
