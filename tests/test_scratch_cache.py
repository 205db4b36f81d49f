"""The scratch cache: scratch baselines keyed by content, reused by later experiments, stored
only when finished."""

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from conftest import cli_forked, read_json

import envs
from rl_transfer import records
from rl_transfer.runner import Plan, execute_local, plan
from rl_transfer.scratch_cache import link_tree
from rl_transfer.spec import scratch_key, spec_from

PAIR = envs.get_pair("cartpole-long-pole")
HP = {"n_steps": 32, "n_envs": 8, "learning_rate": "lin_0.001"}
BASE = dict(pair=PAIR, algo="ppo", hyperparams=HP, seed=0, target_steps=768, eval_every=256)


def _key(**changes) -> str:
    args = {**BASE, "eval_episodes": 4, **changes}
    return scratch_key(**args)


@pytest.mark.parametrize(
    "change",
    [
        {"eval_episodes": 5},
        {"eval_every": 512},
        {"target_steps": 1024},
        {"seed": 1},
        {"algo": "a2c"},
        {"hyperparams": {**HP, "learning_rate": "lin_0.0005"}},
        {"knobs": {"some_knob": 1}},
        {
            "pair": dataclasses.replace(
                PAIR, target=dataclasses.replace(PAIR.target, params={"length": 1.5})
            )
        },
        {"pair": dataclasses.replace(PAIR, name="another-name")},
    ],
    ids=[
        "eval_episodes",
        "eval_every",
        "target_steps",
        "seed",
        "algo",
        "hyperparams",
        "knobs",
        "target variant",
        "pair name",
    ],
)
def test_every_input_of_a_scratch_run_changes_its_key(change):
    assert _key() == _key()
    assert _key(**change) != _key()


def test_the_results_format_and_package_versions_are_in_the_key(monkeypatch):
    """A change in evaluation (RESULTS_FORMAT bumped) or in a package the results depend on
    gives another key; what does not change a scratch run (the threshold, R_min, the pair's
    source) does not."""
    key = _key()
    source_changed = dataclasses.replace(
        PAIR,
        threshold=100.0,
        r_min=1.0,
        source=dataclasses.replace(PAIR.source, params={"length": 0.25}),
    )
    assert _key(pair=source_changed) == key
    monkeypatch.setattr(records, "RESULTS_FORMAT", records.RESULTS_FORMAT + 1)
    assert _key() != key
    monkeypatch.undo()
    import rl_transfer.versions as versions

    real = versions.package_versions
    monkeypatch.setattr(versions, "package_versions", lambda: {**real(), "torch": "0.0"})
    assert _key() != key
    monkeypatch.setattr(versions, "package_versions", lambda: {**real(), "rl-transfer": "0.0"})
    assert _key() == key  # rl_transfer's own version is not (as for sources): RESULTS_FORMAT is


TINY_SPEC = dict(
    source_steps=512, target_steps=768, eval_every=256, eval_episodes=4, seeds=2, workers=2
)


def test_a_change_of_evaluation_trains_the_scratch_runs_anew(
    tiny_experiment, tmp_path, monkeypatch
):
    """Planned beside the tiny experiment's caches: the same settings take both scratch runs
    from the scratch cache; another eval_episodes, or another results format, trains both."""
    root = tiny_experiment.parent

    def planned(name: str, **changes) -> Plan:
        spec = spec_from(
            **{**TINY_SPEC, **changes},
            out=tmp_path / name,
            source_cache=root / "sources",
        )
        spec.validate()
        assert spec.scratch_dir() == root / "scratch"  # the default: beside the source cache
        return plan(spec, tmp_path / name)

    same = planned("same")
    assert len(same.from_scratch_cache) == 2 and same.scratch_to_train == 0
    assert {i["seed"] for i in same.from_scratch_cache} == {0, 1}
    assert all(t.method != "scratch" for t in same.targets)
    other = planned("episodes", eval_episodes=5)
    assert other.from_scratch_cache == [] and other.scratch_to_train == 2
    monkeypatch.setattr(records, "RESULTS_FORMAT", records.RESULTS_FORMAT + 1)
    newer = planned("format")
    assert newer.from_scratch_cache == [] and newer.scratch_to_train == 2
    assert not (tmp_path / "format/cartpole-long-pole/ppo/scratch").exists()


def test_a_failed_scratch_run_is_not_cached_and_a_finished_one_is(tmp_path):
    """Through the local backend's driver: a scratch run that fails (hyperparameters
    stable-baselines3 refuses, past the spec's check) leaves the cache empty; the same run
    unbroken is stored, as hard links of its files. A finished run the cache lost is stored
    again at the next plan."""
    spec = spec_from(
        methods=["policy"],
        seeds=1,
        source_steps=256,
        target_steps=256,
        eval_every=256,
        eval_episodes=2,
        out=tmp_path / "exp",
        source_cache=tmp_path / "src",
    )
    spec.validate()
    cache = spec.scratch_dir()
    (job,) = [t for t in plan(spec, tmp_path / "exp").targets if t.method == "scratch"]
    assert job.scratch_key is not None
    broken = dataclasses.replace(job, hyperparams={**job.hyperparams, "n_steps": 0})
    (info,) = execute_local(Plan([], [broken], scratch_cache=cache), workers=1, quiet=True)
    assert info["status"] == "failed" and read_json(job.dir / "run.json")["status"] == "failed"
    assert not cache.exists() or list(cache.iterdir()) == []

    (info,) = execute_local(Plan([], [job], scratch_cache=cache), workers=1, quiet=True)
    assert info["status"] == "done" and info["scratch_key"] == job.scratch_key
    assert sorted(p.name for p in cache.iterdir()) == [job.scratch_key]
    stored = cache / job.scratch_key
    for path in job.dir.iterdir():
        assert (stored / path.name).stat().st_ino == path.stat().st_ino, path.name

    shutil.rmtree(stored)  # the driver stopped before storing it, say
    again = plan(spec, tmp_path / "exp")
    assert [i["method"] for i in again.reused] == ["scratch"]
    assert read_json(stored / "run.json") == read_json(job.dir / "run.json")
    assert not list(cache.glob(".*"))  # no temporary folder left


def test_linking_copies_the_files_across_filesystems(tmp_path):
    """Where a hard link cannot be made (another filesystem) the files are copied."""
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    src = tmp_path / "run"
    src.mkdir()
    (src / "run.json").write_text('{"status": "done"}')
    dst = other / f"rl-transfer-test-{os.getpid()}" / "run"
    try:
        link_tree(src, dst)
        assert (dst / "run.json").read_text() == '{"status": "done"}'
        assert (dst / "run.json").stat().st_ino != (src / "run.json").stat().st_ino
        assert sorted(p.name for p in dst.parent.iterdir()) == ["run"]
    finally:
        shutil.rmtree(dst.parent, ignore_errors=True)


def test_a_scratch_cache_that_cannot_be_a_folder_is_one_error_line(tmp_path):
    (tmp_path / "f").write_text("")
    proc = cli_forked("run", "--scratch-cache", "f/cache", "--out", "exp", cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"error: --scratch-cache f/cache is not usable: {tmp_path}/f is a file, not a folder\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_store_replaces_only_what_is_not_a_finished_entry(tmp_path):
    """A folder at the key that is not a finished run under it (left unfinished) is replaced;
    a finished entry another experiment stored is kept, never deleted."""
    from rl_transfer.scratch_cache import cached, store

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"status": "done", "scratch_key": "k1"}')
    (run / "model.zip").write_bytes(b"ours")
    cache = tmp_path / "cache"
    (cache / "k1").mkdir(parents=True)
    (cache / "k1" / "model.zip").write_bytes(b"half")  # unfinished: no run.json
    assert store(run, cache, "k1") and cached(cache, "k1")
    assert (cache / "k1" / "model.zip").read_bytes() == b"ours"
    theirs = cache / "k1" / "model.zip"
    theirs.unlink()
    theirs.write_bytes(b"theirs")  # a finished entry, stored by someone else
    assert not store(run, cache, "k1")
    assert theirs.read_bytes() == b"theirs"
    assert not list(cache.glob(".*"))  # no temporary folder left
