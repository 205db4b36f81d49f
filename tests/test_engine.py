"""The experiment engine: resume after kill -9, failure isolation, the folder lock, Ray, study
files, the source cache."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ONE_SEED, TINY, cli, cli_forked, read_json

from rl_transfer.errors import FolderLockedError
from rl_transfer.runner import FolderLock

ROOT_ARGS = ["--source-cache", "sources"]


def _results(path: Path):
    return read_json(path / "summary.json")["results"]


# The CLI as a terminal starts it: SIGINT handled. A child inherits ignored signals,
# and a shell without job control starts its background jobs with SIGINT ignored (`cmd &` in a
# script, `nohup cmd &` included); Python then installs no KeyboardInterrupt handler, so a suite
# started that way would send Ctrl-C to a CLI that ignores it, as a user's backgrounded study
# rightly does.
_AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'rl-transfer'; "
    "runpy.run_module('rl_transfer.cli', run_name='__main__')"
)


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _AS_FROM_A_TERMINAL,
            "run",
            *TINY,
            "--out",
            "exp",
            *ROOT_ARGS,
            *extra,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done_runs(exp: Path) -> list[Path]:
    done = []
    for p in exp.glob("*/*/*/seed_*/run.json"):
        try:
            if read_json(p).get("status") == "done":
                done.append(p)
        except ValueError:
            pass
    return done


def _workers(pid: int) -> list[int]:
    """The pool worker processes of the rl-transfer process ``pid``."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    found = []
    for child in out.stdout.split():
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def _eval_steps_in_tensorboard(run_dir: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for f in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f))
        acc.Reload()
        if "eval/mean_reward" in acc.Tags()["scalars"]:
            steps += [e.step for e in acc.Scalars("eval/mean_reward")]
    return steps


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["kill-9", "sigterm", "ctrl-c"]
)
def test_interrupt_mid_grid_then_rerun_equals_uninterrupted(tiny_experiment, tmp_path, sig):
    proc = _start(tmp_path)
    exp = tmp_path / "exp"
    deadline = time.time() + 300
    while time.time() < deadline and len(_done_runs(exp)) < 1 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the experiment finished before it could be killed"
    workers = _workers(proc.pid)
    assert workers, "no worker process found"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    if sig != signal.SIGKILL:
        assert proc.returncode == 130 and "run the same command again" in err, err
        assert "Traceback" not in err
    done_before = len(_done_runs(exp))
    assert 1 <= done_before < 6
    # workers die with their parent (PR_SET_PDEATHSIG), however it ended
    _wait_until(lambda: not any(_alive(w) for w in workers), 30, "the workers are gone")
    if sig == signal.SIGINT:
        # Ctrl-C and SIGTERM end in the same place (SIGTERM's handler raises the
        # KeyboardInterrupt that Ctrl-C raises): resuming is checked after kill -9 and SIGTERM
        return
    again = cli("run", *TINY, "--out", "exp", *ROOT_ARGS, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{done_before} finished run(s) reused" in again.stderr
    assert _results(exp) == _results(tiny_experiment)
    for run_json in _done_runs(exp):
        run_dir = run_json.parent
        with np.load(run_dir / "evaluations.npz") as ev:
            expected = list(ev["timesteps"])
        assert sorted(_eval_steps_in_tensorboard(run_dir)) == expected  # no step twice
    assert not list(exp.rglob(".*.tmp*")) and not list(Path(tmp_path / "sources").glob(".*tmp*"))


def test_kill_9_of_one_worker_is_retried(tiny_experiment, tmp_path):
    """kill -9 of a worker in the middle of a source pretraining (seen from the study's own
    files: the source's temporary folder, named after the worker's pid): the run is retried
    (said on stderr, counted in its run.json) and the results equal an uninterrupted run's."""
    proc = _start(tmp_path)
    sources = tmp_path / "sources"

    def training() -> list[Path]:
        assert proc.poll() is None, "the experiment ended before a source started"
        return sorted(sources.glob(".*.tmp-*")) if sources.is_dir() else []

    _wait_until(training, 120, "a source pretraining has started")
    folder = training()[0]  # .<source key>.tmp-<pid of the worker training it>
    key, pid = folder.name[1:].rsplit(".tmp-", 1)
    assert int(pid) in _workers(proc.pid)
    os.kill(int(pid), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    killed = read_json(sources / key / "run.json")
    label = f"source cartpole-long-pole/ppo/seed_{killed['seed']}"
    assert f"retrying {label} (worker died)" in err, err
    assert killed["attempts"] == 2
    assert not folder.exists()  # the killed attempt's folder was cleaned up
    assert _results(tmp_path / "exp") == _results(tiny_experiment)


def test_failed_run_is_recorded_and_the_rest_go_on(tmp_path):
    """A transfer that fails once its model is built (jsrl with a budget of one rollout leaves
    its guide no step): every jsrl run fails (its error recorded), scratch runs finish, the exit
    status is non-zero."""
    proc = cli(
        "run",
        *TINY,
        "--methods",
        "jsrl",
        "--target-steps",
        "256",  # PPO's CartPole rollout: 32 steps x 8 envs
        "--out",
        "exp",
        *ROOT_ARGS,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "leaves the guide no step" in proc.stderr
    exp = tmp_path / "exp/cartpole-long-pole/ppo"
    for seed in (0, 1):
        assert read_json(exp / f"scratch/seed_{seed}/run.json")["status"] == "done"
        failed = read_json(exp / f"jsrl/seed_{seed}/run.json")
        assert failed["status"] == "failed" and "TransferError" in failed["error"]
    (result,) = _results(tmp_path / "exp")
    assert result["seeds"] == [] and result["failed_seeds"] == [0, 1]


def test_source_model_of_other_spaces_is_refused_before_running(tmp_path):
    from stable_baselines3 import PPO

    PPO("MlpPolicy", "Acrobot-v1", n_steps=64, device="cpu").save(tmp_path / "acrobot.zip")
    proc = cli_forked(
        "run", "--source-model", "acrobot.zip", "--out", "exp", *ROOT_ARGS, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "observation space" in proc.stderr and "differs from the source task" in proc.stderr
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    "model, stats",
    [
        ("CartPole-v1.zip", "CartPole-v1/vecnormalize.pkl"),
        ("best_model.zip", "CartPole-v1/vecnormalize.pkl"),
        ("rl_model_1000_steps.zip", "rl_model_vecnormalize_1000_steps.pkl"),
    ],
)
def test_source_model_with_vecnormalize_statistics_brings_them_to_every_arm(tmp_path, model, stats):
    """A zoo model trained with VecNormalize keeps its statistics where zoo's layout pairs
    them with it; they are found, and every arm normalizes its observations as the model's
    weights expect -- unless the user says otherwise, which is refused before anything runs."""
    import gymnasium
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rl_transfer.spec import spec_from

    run = tmp_path / "zoo" / "CartPole-v1_1"
    (run / stats).parent.mkdir(parents=True, exist_ok=True)
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, device="cpu").save(run / model)
    VecNormalize(DummyVecEnv([lambda: gymnasium.make("CartPole-v1")])).save(str(run / stats))
    given = f"zoo/CartPole-v1_1/{model}"
    spec = spec_from(source_model=tmp_path / given, out=tmp_path / "exp")
    spec.validate()
    in_force = spec.hyperparams_in_force(spec.pair_objects()[0], "ppo")
    for arm in ("scratch", "policy", "value"):
        assert in_force[arm]["normalize"] == {"norm_obs": True, "norm_reward": True}
    proc = cli_forked(
        "run",
        "--source-model",
        given,
        "--hyperparams",
        "normalize:false",
        "--out",
        "exp",
        *ROOT_ARGS,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: --source-model {given} was trained with VecNormalize")
    assert "add normalize: true to the hyperparameters" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "exp").exists()


def test_folder_lock_refuses_a_second_writer(tmp_path):
    exp = tmp_path / "exp"
    with FolderLock(exp):
        proc = cli_forked("run", *TINY, "--out", "exp", *ROOT_ARGS, cwd=tmp_path)
    assert proc.returncode == FolderLockedError.exit_code
    assert proc.stderr.startswith("error: ") and "being written by another" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(os.getpid()) in proc.stderr
    assert [p.name for p in exp.iterdir()] == [".lock"]


def test_sources_are_trained_once_and_reused(tiny_experiment):
    sources = tiny_experiment.parent / "sources"
    # 2 seeds x (policy, value): one source per seed
    assert len([p for p in sources.iterdir() if not p.name.startswith(".")]) == 2
    keys = {read_json(p)["source_key"] for p in tiny_experiment.glob("*/*/*/seed_*/run.json")}
    assert len(keys - {None}) == 2


def test_ray_backend_gives_the_same_results(tiny_experiment, tmp_path):
    pytest.importorskip("ray")
    proc = cli("run", *TINY, "--backend", "ray", "--out", "exp", *ROOT_ARGS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _results(tmp_path / "exp") == _results(tiny_experiment)
    # the driver stores finished scratch runs in the scratch cache, whatever the backend
    exp = tmp_path / "exp/cartpole-long-pole/ppo/scratch"
    keys = sorted(read_json(exp / f"seed_{s}/run.json")["scratch_key"] for s in (0, 1))
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == keys


STUDY = """\
name: tiny-study
pairs: [cartpole-long-pole]
algos: [ppo]
methods: [value]
seeds: 1
source_steps: 256
target_steps: 512
eval_every: 256
eval_episodes: 2
"""


def test_study_file_runs_and_flags_override_it(tmp_path):
    (tmp_path / "study.yaml").write_text(STUDY)
    proc = cli(
        "run", "study.yaml", "--seeds", "2", "--quiet", "--out", "exp", *ROOT_ARGS, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    import yaml

    spec = yaml.safe_load((tmp_path / "exp/experiment.yaml").read_text())
    assert spec["name"] == "tiny-study" and spec["methods"] == ["scratch", "value"]
    assert spec["seeds"] == [0, 1]
    assert spec["pairs"]["cartpole-long-pole"]["budgets"]["ppo"]["target_steps"] == 512


@pytest.mark.parametrize(
    "text, message",
    [
        ("seeds: 3\nmethds: [policy]\n", "unknown key 'methds'; did you mean 'methods'?"),
        ("seeds: -1\n", "seeds: expected a positive integer or 'auto' (got -1)"),
        ("seeds: some\n", "seeds: expected a positive integer or 'auto' (got 'some')"),
        ("max_seeds: 0\n", "max_seeds: Input should be greater than 0 (got 0)"),
        ("seeds: [1\n", "study.yaml:2:1: expected ',' or ']', but got '<stream end>'"),
        ("seeds: [1\n", "is not valid YAML"),
        ("pairs: [cartpole-longpole]\n", "unknown pair 'cartpole-longpole'"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_study_file_one_line_exit_2(tmp_path, text, message):
    (tmp_path / "study.yaml").write_text(text)
    proc = cli_forked("run", "study.yaml", *ROOT_ARGS, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_dqn_end_to_end_tiny(dqn_experiment):
    run = dqn_experiment / "value/seed_0"
    report = read_json(run / "transfer_report.json")
    assert report["copied"] and len(report["synced"]) == len(report["copied"])
    assert report["hyperparameter_overrides"] == {"exploration_initial_eps": 0.04}
    # DQN collects train_freq = 256 steps per rollout: learn(400) takes 512 steps, recorded as such
    info = read_json(run / "run.json")
    assert info["target_steps"] == 512 and info["rollout_steps"] == 256
    assert info["steps_note"].startswith("400 steps requested, 512 taken: SB3 learns in whole")
    with np.load(run / "evaluations.npz") as ev:  # at the first update boundary after 200, 400
        assert list(ev["timesteps"]) == [0, 256, 512]


def test_a_later_experiment_reuses_the_cached_sources_and_scratch_baselines(
    tiny_experiment, tmp_path
):
    """A second experiment on the same pair and seeds with another method trains neither a
    source nor a scratch run: its scratch run folders are the first experiment's, byte for byte,
    hard links of the cache's files (so not trained again), and it says so. Its folder stays
    whole once the scratch cache is deleted: the report rebuilds the same summary."""
    sources = tiny_experiment.parent / "sources"
    before = {
        p.name: (p / "run.json").stat().st_mtime_ns
        for p in sources.iterdir()
        if not p.name.startswith(".")
    }
    # a copy of the first experiment's scratch cache (beside its source cache, the default), so
    # that this test may delete it
    cache = tmp_path / "scratch"
    shutil.copytree(tiny_experiment.parent / "scratch", cache)
    assert len(list(cache.iterdir())) == 2  # one scratch baseline per seed
    proc = cli(
        "run",
        *TINY,
        "--methods",
        "finetune",
        "--out",
        str(tmp_path / "later"),
        "--source-cache",
        str(sources),
        "--scratch-cache",
        str(cache),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 job(s) to run" in proc.stderr  # the two finetune runs, nothing else
    assert f"scratch baselines: 2 reused from the scratch cache ({cache}), 0 to train" in (
        proc.stderr
    )
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        read_json(tiny_experiment / f"cartpole-long-pole/ppo/scratch/seed_{s}/run.json")[
            "scratch_key"
        ]
        for s in (0, 1)
    )
    for seed in (0, 1):
        first = tiny_experiment / f"cartpole-long-pole/ppo/scratch/seed_{seed}"
        later = tmp_path / f"later/cartpole-long-pole/ppo/scratch/seed_{seed}"
        names = sorted(p.name for p in first.iterdir())
        assert sorted(p.name for p in later.iterdir()) == names
        for name in names:
            assert (later / name).read_bytes() == (first / name).read_bytes(), name
        key = read_json(later / "run.json")["scratch_key"]
        for name in names:  # the cache's files, linked: the run was not trained here
            assert (later / name).stat().st_ino == (cache / key / name).stat().st_ino, name
    summary = (tmp_path / "later/summary.json").read_text()
    (result,) = read_json(tmp_path / "later/summary.json")["results"]
    assert result["method"] == "finetune" and result["seeds"] == [0, 1]
    shutil.rmtree(cache)
    report = cli("report", "later", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "later/summary.json").read_text() == summary
    after = {
        p.name: (p / "run.json").stat().st_mtime_ns
        for p in sources.iterdir()
        if not p.name.startswith(".")
    }
    assert after == before  # no source trained again
    keys = {
        read_json(p)["source_key"] for p in (tmp_path / "later").glob("*/*/finetune/*/run.json")
    }
    assert keys == set(before)


def test_source_model_from_elsewhere_is_the_starting_point(tiny_experiment, tmp_path):
    from stable_baselines3 import PPO

    import envs
    from rl_transfer.evaluation import Evaluator

    (src,) = [
        p
        for p in (tiny_experiment.parent / "sources").iterdir()
        if read_json(p / "run.json")["seed"] == 1
    ]
    proc = cli(
        "run",
        *TINY,
        "--methods",
        "policy",
        "--source-model",
        str(src / "model.zip"),
        "--out",
        "exp",
        *ROOT_ARGS,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    returns, _ = Evaluator(envs.get_pair("cartpole-long-pole").make_target, 4).evaluate(
        PPO.load(src / "model.zip", device="cpu")
    )
    for seed in (0, 1):  # every seed starts from the imported model
        run = tmp_path / f"exp/cartpole-long-pole/ppo/policy/seed_{seed}"
        with np.load(run / "evaluations.npz") as ev:
            np.testing.assert_array_equal(ev["results"][0], returns)
        assert read_json(run / "run.json")["source_steps"] == 512
    (imported,) = [p for p in (tmp_path / "sources").iterdir() if not p.name.startswith(".")]
    assert read_json(imported / "run.json")["imported_from"] == str(src / "model.zip")


def test_runs_that_leave_no_result_are_named_and_fail_the_study(tmp_path, monkeypatch):
    """A result lost between a worker and the experiment folder (what a shared-filesystem
    cluster used to do silently) ends the study with MissingRunsError naming the run, after the
    reports of the others; the same call then runs it again."""
    import rl_transfer.experiment as experiment_mod
    from rl_transfer import Experiment
    from rl_transfer.errors import MissingRunsError

    real = experiment_mod.execute_local

    def losing(jobs, *args, **kwargs):  # the real execution, then one result lost
        runs = real(jobs, *args, **kwargs)
        lost = next(t for t in jobs.targets if t.method == "value")
        (lost.dir / "run.json").unlink()
        return runs

    monkeypatch.setattr(experiment_mod, "execute_local", losing)
    spec = dict(
        pairs=["cartpole-long-pole"],
        algo="ppo",
        methods=["value"],
        seeds=1,
        source_steps=256,
        target_steps=256,
        eval_every=256,
        eval_episodes=2,
        workers=1,
        out=tmp_path / "exp",
        source_cache=tmp_path / "src",
    )
    with pytest.raises(MissingRunsError, match="1 run.s. started and left no result") as err:
        Experiment(quiet=True, **spec).run()
    assert "cartpole-long-pole/ppo/value/seed_0" in str(err.value)
    assert err.value.exit_code == 9
    assert (tmp_path / "exp" / "summary.json").is_file()  # the reports of the runs that are there
    monkeypatch.setattr(experiment_mod, "execute_local", real)
    result = Experiment(quiet=True, **spec).run()
    assert result.reused == 1 and not result.failed  # scratch reused, value run again


@pytest.mark.parametrize(
    "address, says",
    [("127.0.0.1:1", "no Ray cluster answers"), ("head-node", "expected HOST:PORT")],
)
def test_a_ray_address_without_a_cluster_is_one_error_line(tmp_path, address, says):
    pytest.importorskip("ray")
    proc = cli_forked(
        "run", *ONE_SEED, "--backend", "ray", "--ray-address", address, "--out", "exp", cwd=tmp_path
    )
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.startswith(f"error: --ray-address {address}: {says}")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "exp").exists()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of one CPU for the tests of what ``ray.get`` raises (started once: a start
    takes seconds)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_ray_task_that_raises_is_recorded_with_its_own_cause(local_ray):
    """What a run records when its Ray task raised is the task's exception, not Ray's wrapper
    (colour codes, the task's name, pid and node address); a class a node cannot import gets
    the explanation the local backend gives."""
    from rl_transfer.runner import _task_error

    def boom(exc: BaseException) -> None:
        raise exc

    remote = local_ray.remote(num_cpus=1, max_retries=0)(boom)
    errors = []
    for exc in (ValueError("the real cause\nmore"), ModuleNotFoundError("No module named 'x'")):
        with pytest.raises(Exception) as raised:
            local_ray.get(remote.remote(exc))
        errors.append(_task_error(raised.value))
    assert errors[0] == "ValueError: the real cause"
    assert "ModuleNotFoundError: No module named 'x'" in errors[1]
    assert "a Ray node cannot load the job" in errors[1] and "installed wherever" in errors[1]


def test_ray_failures_of_worker_node_or_result_are_run_again_a_task_error_is_not(local_ray):
    """Which ``ray.get`` errors make the scheduler run a task again. A worker that ends is real
    here; a finished task's result lost with its node (``ObjectReconstructionFailedError``, seen
    when a worker node died between a task's end and the driver's fetch) and the other
    lost-object errors are Ray's own classes, matched with their subclasses, not by name."""
    ray = local_ray
    from rl_transfer.runner import is_system_failure

    def ends(code: int) -> None:
        if code:
            os._exit(code)
        raise ValueError("the task's own error")

    remote = ray.remote(num_cpus=1, max_retries=0)(ends)
    raised = []
    for code in (1, 0):
        with pytest.raises(Exception) as caught:
            ray.get(remote.remote(code))
        raised.append(caught.value)
    crashed, own = raised
    assert isinstance(crashed, ray.exceptions.WorkerCrashedError)
    assert is_system_failure(ray, crashed)
    assert not is_system_failure(ray, own)
    E, ref = ray.exceptions, "ab" * 20
    for lost in (
        E.ObjectReconstructionFailedError(ref),
        E.OwnerDiedError(ref, None, ""),
        E.ObjectFetchTimedOutError(ref, None, ""),
        E.NodeDiedError("node"),
        E.LocalRayletDiedError(),
        E.OutOfMemoryError("killed by the memory monitor"),
    ):
        assert is_system_failure(ray, lost), type(lost).__name__
    assert not is_system_failure(ray, E.TaskCancelledError())
