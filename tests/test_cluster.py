"""A real Ray cluster whose worker node shares no filesystem with the driver.

The head node has no CPU, so every task runs on the worker node, which is started in its own
mount namespace with a tmpfs over the folder that holds the experiment folder and every cache:
the driver's paths exist there, empty. Each node runs in its own PID namespace
(``unshare -p --fork --kill-child``), so killing its ``unshare`` process ends the whole node,
and nothing outlives the test. Token authentication is set explicitly on every node and on the
driver (Ray's default differs between versions).

Run alone with ``pytest -m cluster``. Skipped where ``unshare`` is not permitted (it needs root
or user namespaces).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ONE_SEED, TINY, cli, read_json

pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

RAY = str(Path(sys.executable).with_name("ray"))
NS = ["unshare", "-p", "--fork", "--kill-child", "--mount-proc"]


def _unshare_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare command"
    proc = subprocess.run(
        [*NS, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return f"unshare is not permitted here: {proc.stderr.strip()}"
    return None


def _die_with_test() -> None:
    """In the child: SIGKILL when the test process dies (and ``--kill-child`` ends the node)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A Ray head (0 CPUs) and worker nodes (2 CPUs each) that cannot see ``hidden``."""

    def __init__(self, hidden: Path, logs: Path) -> None:
        self.hidden = hidden
        self.logs = logs
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: socket paths
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            # a dead node is noticed in seconds, not half a minute
            "RAY_health_check_initial_delay_ms": "1000",
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
        }
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _start(self, argv: list[str], log: str) -> subprocess.Popen:
        with open(self.logs / log, "w") as fh:
            return subprocess.Popen(
                argv, env=self.env, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=_die_with_test
            )

    def start_head(self) -> None:
        self.head = self._start(
            [
                *NS,
                RAY,
                "start",
                "--head",
                f"--port={self.port}",
                "--num-cpus=0",
                f"--temp-dir={self.temp}",
                "--include-dashboard=false",
                "--block",
            ],
            "head.log",
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.head.poll() is None, (self.logs / "head.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the Ray head did not start: " + (self.logs / "head.log").read_text())

    def start_worker(self) -> None:
        """A worker node in its own mount namespace: a tmpfs over ``hidden``."""
        n = len(self.workers)
        log = self.logs / f"worker{n}.log"
        script = (
            f"mount -t tmpfs tmpfs {self.hidden} && exec {RAY} start "
            f"--address={self.address} --num-cpus=2 --block"
        )
        self.workers.append(self._start([*NS, "sh", "-c", script], log.name))
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert self.workers[-1].poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

    def worker_sees(self, path: Path) -> list[str]:
        """The names in ``path`` as the running worker node sees them."""
        init = int(
            subprocess.check_output(["pgrep", "-P", str(self.workers[-1].pid)], text=True).split()[
                0
            ]
        )
        out = subprocess.check_output(["nsenter", "-t", str(init), "-m", "ls", "-A", str(path)])
        return out.decode().split()

    def kill_worker(self) -> None:
        """SIGKILL the worker node's ``unshare``: ``--kill-child`` ends every process of it."""
        proc = self.workers[-1]
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for proc in [*self.workers, self.head]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the module's tests (each writes under a folder of its own in
    ``hidden``); the node-failure test, which replaces the worker node, is the last to use it,
    and the test of a stray local Ray runs before it starts."""
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    logs = tmp_path_factory.mktemp("cluster")
    hidden = logs / "hidden"
    hidden.mkdir()
    c = Cluster(hidden, logs)
    try:
        c.start_head()
        c.start_worker()
        yield c
    finally:
        c.stop()


def _hidden(c: Cluster, tmp_path: Path) -> Path:
    """This test's folder in the one the worker node cannot see."""
    return c.hidden / tmp_path.name


def _args(c: Cluster, tmp_path: Path) -> list[str]:
    return [
        *TINY,
        "--backend",
        "ray",
        "--ray-address",
        c.address,
        "--out",
        str(_hidden(c, tmp_path) / "exp"),
        "--source-cache",
        str(_hidden(c, tmp_path) / "sources"),
    ]


def _results(exp: Path):
    return read_json(exp / "summary.json")["results"]


def test_without_an_address_a_stray_local_ray_is_left_alone(tmp_path):
    """A Ray already running on the machine (recorded in Ray's temporary folder, where a bare
    ``ray.init()`` would attach to it) is not used: the study starts a Ray of its own."""
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    if record.exists():
        pytest.skip(f"{record} exists: a Ray cluster of someone else's is recorded here")
    stray = Cluster(tmp_path / "unused", tmp_path)
    stray.head = stray._start(
        [*NS, RAY, "start", "--head", f"--port={stray.port}", "--num-cpus=1", "--block"],
        "stray.log",
    )
    try:
        deadline = time.monotonic() + 90
        while not record.exists():
            assert stray.head.poll() is None, (tmp_path / "stray.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "stray.log").read_text()
            time.sleep(0.2)
        env = {**stray.env, "RAY_gcs_server_port_wait_time_s": "3"}
        proc = cli("run", *ONE_SEED, "--backend", "ray", "--out", "exp", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert read_json(tmp_path / "exp" / "summary.json")["results"]
    finally:
        stray.stop()
        record.unlink(missing_ok=True)


def test_a_study_on_nodes_that_cannot_see_the_driver_files(cluster, tiny_experiment, tmp_path):
    proc = cli("run", *_args(cluster, tmp_path), cwd=tmp_path, env=cluster.env)
    assert proc.returncode == 0, proc.stderr
    exp = _hidden(cluster, tmp_path) / "exp"
    # the worker node ran every task (the head has no CPU) and saw none of the driver's files
    assert cluster.worker_sees(cluster.hidden) == []
    # the driver wrote every run, in the local backend's layout, with the same results
    assert _results(exp) == _results(tiny_experiment)
    local = sorted(p.relative_to(tiny_experiment) for p in tiny_experiment.rglob("run.json"))
    assert sorted(p.relative_to(exp) for p in exp.rglob("run.json")) == local
    for run in exp.glob("*/*/*/seed_*"):
        assert read_json(run / "run.json")["status"] == "done"
        assert (run / "model.zip").is_file() and (run / "evaluations.npz").is_file()
    # sources landed in the driver's cache, and transfer reports name the driver's folders
    sources = _hidden(cluster, tmp_path) / "sources"
    report = read_json(exp / "cartpole-long-pole/ppo/value/seed_0/transfer_report.json")
    assert Path(report["source"]["dir"]).parent == sources
    assert (Path(report["source"]["dir"]) / "model.zip").is_file()


def test_a_cluster_without_the_token_is_one_error_line(cluster, tmp_path):
    env = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # another cluster's token
    env["RAY_gcs_server_port_wait_time_s"] = "3"  # Ray's connection attempts: 3, not 20
    proc = cli("run", *_args(cluster, tmp_path), cwd=tmp_path, env=env)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(f"error: --ray-address {cluster.address}: cannot connect")
    assert "RAY_AUTH_TOKEN" in proc.stderr
    assert not _hidden(cluster, tmp_path).exists()  # nothing written


def _driver(cluster: Cluster, tmp_path: Path) -> subprocess.Popen:
    """``rl-transfer run`` on the cluster in the background, its stderr in ``driver.err``."""
    with open(tmp_path / "driver.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "rl_transfer.cli", "run", *_args(cluster, tmp_path)],
            cwd=tmp_path,
            env={**cluster.env, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _wait_for_a_run(driver: subprocess.Popen, exp: Path, tmp_path: Path, done: bool) -> None:
    """Wait until the study has written a target run.json (one saying done, if ``done``): a
    trigger from the study's own progress, not a sleep."""
    deadline = time.monotonic() + 300
    while not any(
        not done or read_json(p).get("status") == "done" for p in exp.glob("*/*/*/seed_*/run.json")
    ):
        assert driver.poll() is None, (tmp_path / "driver.err").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_study_survives_its_worker_node_dying(cluster, tiny_experiment, tmp_path):
    driver = _driver(cluster, tmp_path)
    try:
        exp = _hidden(cluster, tmp_path) / "exp"
        _wait_for_a_run(driver, exp, tmp_path, done=True)
        runs = list(exp.glob("*/*/*/seed_*/run.json"))
        cluster.kill_worker()
        cluster.start_worker()
        assert driver.wait(timeout=300) == 0, (tmp_path / "driver.err").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    assert len(runs) < 6  # runs were still going when the node died (2 seeds x 3 arms)
    assert _results(exp) == _results(tiny_experiment)
    records = [read_json(p) for p in exp.glob("*/*/*/seed_*/run.json")]
    assert all(r["status"] == "done" for r in records)
    # the runs the dying node held were run again, and say so (as with the local backend)
    retried = [r for r in records if r.get("attempts") == 2]
    said = (tmp_path / "driver.err").read_text()
    assert "retrying" in said and "(worker died)" in said
    assert retried or "retrying source" in said


def test_losing_the_head_ends_the_study_in_one_line(cluster, tmp_path):
    """Runs last: it kills the head. The driver notices that the cluster stopped answering and
    ends with one error line (exit 5) rather than Ray's own log lines a minute later; the runs
    that finished are kept."""
    driver = _driver(cluster, tmp_path)
    try:
        exp = _hidden(cluster, tmp_path) / "exp"
        _wait_for_a_run(driver, exp, tmp_path, done=False)
        cluster.head.kill()
        cluster.head.wait()
        code = driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    said = (tmp_path / "driver.err").read_text()
    assert code == 5, said
    assert "Traceback" not in said
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the Ray cluster" in errors[0], said
    assert all(read_json(p)["status"] == "done" for p in exp.glob("*/*/*/seed_*/run.json"))
