"""The measured catalog: study files of several experiments, the invocation log, the budget
search (benchmarks/search_budgets.py) and the budgets it wrote (envs/budgets.json)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import ONE_SEED, cli, cli_forked, read_json

from envs import get_pair, list_pairs, register_pair, unregister_pair
from envs.catalog import BUDGETS_FILE, CATALOG, apply_measured, measured_budgets
from envs.pairs import Budget
from rl_transfer.errors import SpecError
from rl_transfer.spec import load_study, spec_from, study_size

ROOT = Path(__file__).resolve().parents[1]

STUDY = """\
seeds: 1
source_steps: 256
target_steps: 256
eval_every: 256
eval_episodes: 2
workers: 2
experiments:
  - {name: long, pair: cartpole-long-pole, methods: [policy]}
  - {name: heavy, pair: cartpole-heavy-pole, methods: [value], eval_episodes: 3}
"""


def test_a_study_of_several_experiments_runs_each_in_its_folder(tmp_path):
    (tmp_path / "study.yaml").write_text(STUDY)
    proc = cli("run", "study.yaml", "--source-cache", "src", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "experiment 1 of 2" in proc.stderr and "experiment 2 of 2" in proc.stderr
    for name, pair, method, episodes in (
        ("long", "cartpole-long-pole", "policy", 2),
        ("heavy", "cartpole-heavy-pole", "value", 3),
    ):
        exp = tmp_path / "runs" / name
        run = read_json(exp / pair / "ppo" / method / "seed_0" / "run.json")
        assert run["status"] == "done" and run["eval_episodes"] == episodes
        assert (exp / "summary.json").is_file()
        (log,) = read_json(exp / "invocations.json")
        assert log["outcome"] == "finished" and log["workers"] == 2
        assert log["machine"]["cores"] >= 1 and log["machine"]["cpu"]
    # the same command resumes: nothing is trained again, one more invocation is logged
    again = cli("run", "study.yaml", "--source-cache", "src", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("0 job(s) to run") == 2
    assert len(read_json(tmp_path / "runs" / "long" / "invocations.json")) == 2
    # docs/results.md's generator reads the study's folders
    doc = tmp_path / "results.md"
    regions = ("budgets", "estimate", "results")
    doc.write_text(
        "# hand\n" + "".join(f"<!-- begin {r} -->\nSTALE TEXT\n<!-- end {r} -->\n" for r in regions)
    )
    module = _load("catalog_results")
    args = ["--study", str(tmp_path / "study.yaml"), "--runs", str(tmp_path / "runs")]
    assert module.main([*args, "--doc", str(doc), "--images", str(tmp_path)]) == 0
    text = doc.read_text()
    assert text.startswith("# hand\n") and "STALE TEXT" not in text
    assert "Progress: 2 of 2 experiments finished" in text
    assert "| `policy` |" in text and "| `value` |" in text
    assert "### `cartpole-heavy-pole`, PPO" in text
    assert (tmp_path / "catalog_cartpole-long-pole_ppo.png").is_file()  # a plotted pair


def test_a_study_goes_on_after_failed_runs_and_exits_1(tmp_path):
    """jsrl with a budget of one PPO rollout (32 steps x 8 envs) leaves its guide no step: the
    first experiment's runs fail, the second still runs, the exit status is 1 and each
    experiment's invocations.json says how it went."""
    study = STUDY.replace("methods: [policy]", "methods: [jsrl]").replace(
        "workers: 2", "workers: 1"
    )
    (tmp_path / "study.yaml").write_text(study)
    proc = cli("run", "study.yaml", "--source-cache", "src", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "leaves the guide no step" in proc.stderr and "experiment 2 of 2" in proc.stderr
    (failed,) = read_json(tmp_path / "runs" / "long" / "invocations.json")
    assert failed["outcome"] == "finished: 1 run(s) failed", failed
    (done,) = read_json(tmp_path / "runs" / "heavy" / "invocations.json")
    assert done["outcome"] == "finished", done


@pytest.mark.parametrize(
    "text, extra, message",
    [
        (
            STUDY.replace("methods: [value]", "methods: [value], colour: red"),
            [],
            "experiments[1]: unknown key 'colour'",
        ),
        # a top-level key is named at the top level, not in the first experiment
        ("colour: red\n" + STUDY, [], "study file study.yaml: unknown key 'colour'"),
        # the checks of an experiment's spec and pair name the experiment
        (
            STUDY.replace("cartpole-heavy-pole", "cartpole-heavy-poles"),
            [],
            "study file study.yaml: experiments[1]: ",
        ),
        (
            STUDY.replace("eval_episodes: 3", "eval_episodes: 3, eval_every: 1000"),
            [],
            "study file study.yaml: experiments[1]: --eval-every 1000 is larger than",
        ),
        (STUDY, ["--out", "x"], "--out names one experiment's folder"),
        (
            STUDY.replace("name: heavy", "name: long"),
            [],
            "experiments[0] and experiments[1] would both write",
        ),
        ("experiments: []\n", [], "expected a non-empty list of mappings"),
    ],
)
def test_a_bad_experiment_in_a_study_stops_it_before_anything_runs(tmp_path, text, extra, message):
    (tmp_path / "study.yaml").write_text(text)
    proc = cli_forked("run", "study.yaml", "--source-cache", "src", *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_study_entries_from_python(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    assert study_size(study) == 2
    assert load_study(study, 1)["pairs"] == ["cartpole-heavy-pole"]
    spec = spec_from(study, 1, seeds=4)  # keywords override every entry
    assert (spec.name, spec.eval_episodes, spec.seeds) == ("heavy", 3, 4)
    # mappings are merged key by key, the entry winning
    study.write_text(
        STUDY.replace(
            "seeds: 1", "seeds: 1\nknobs: {shaping: {scale: 0.5}, kickstart: {weight: 2}}"
        ).replace(
            "methods: [value]", "methods: [shaping, kickstart], knobs: {kickstart: {weight: 3}}"
        )
    )
    assert spec_from(study, 1).knobs == {"shaping": {"scale": 0.5}, "kickstart": {"weight": 3}}
    study.write_text(STUDY)
    with pytest.raises(SpecError, match="holds 2 experiments: pick one with entry=0..1"):
        load_study(study)
    single = tmp_path / "one.yaml"
    single.write_text("seeds: 2\n")
    assert study_size(single) == 0
    with pytest.raises(SpecError, match="holds one experiment"):
        load_study(single, 0)


def test_the_catalog_study_file_is_valid():
    study = ROOT / "experiments" / "catalog.yaml"
    n = study_size(study)
    specs = [spec_from(study, i) for i in range(n)]
    for spec in specs:
        spec.validate()
        (pair,) = spec.pair_objects()
        (algo,) = spec.algos
        assert spec.seeds == "auto" and spec.max_seeds == 10
        # every experiment runs at the pair's measured budget
        assert "measured" in pair.budget(algo).basis, pair.name
    measured = set(measured_budgets()["pairs"])
    assert {s.pairs[0] for s in specs} <= measured


def _load(name: str):
    """A script of benchmarks/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _search_module():
    return _load("search_budgets")


def _steps(b: Budget) -> tuple[int, int, int]:
    return b.source_steps, b.target_steps, b.eval_every


def test_budget_search_records_the_evidence_and_the_catalog_reads_it(tmp_path, monkeypatch):
    search = _load("search_budgets")
    # a real search, scaled down: 256-step candidates cannot reach CartPole's 475
    monkeypatch.setattr(
        search,
        "SEARCH",
        {"cartpole-long-pole": search.Search("ppo", 256, (256,), (256,), 475.0, "test")},
    )
    out = tmp_path / "budgets.json"
    args = ["--out", str(tmp_path / "s"), "--write", str(out), "--workers", "2"]
    args += ["--source-cache", str(tmp_path / "src"), "--scratch-cache", str(tmp_path / "scr")]
    assert search.main(args) == 0
    # the search's source-check pair is its own: gone from the registry afterwards
    assert not [p for p in list_pairs() if p.name.startswith("source-check-")]
    data = read_json(out)
    entry = data["pairs"]["cartpole-long-pole"]
    (cand,) = entry["target"]["candidates"]
    assert entry["target"]["chosen"] is None and cand["passed"] is False
    assert [s["seed"] for s in cand["seeds"]] == [0, 1, 2, 3, 4]
    assert cand["reached"] == sum(s["time_to_threshold"] is not None for s in cand["seeds"])
    assert data["machine"]["cpu"] and "search_budgets.py" in data["command"]
    # the runs (5 on the target, 5 on the source variant) went to the scratch cache, where a
    # later experiment at the same budget finds them
    assert len(list((tmp_path / "scr").iterdir())) == 10
    recommended = {"ppo": Budget(30_000, 100_000, 2_000, "zoo")}
    budgets = apply_measured("cartpole-long-pole", recommended, data)
    assert _steps(budgets["ppo"]) == (30_000, 100_000, 2_000)
    assert "did not reach the threshold" in budgets["ppo"].basis
    # a passing candidate puts the measured numbers in force
    entry["target"] = {"candidates": [{**cand, "passed": True, "reached": 5}], "chosen": 256}
    entry["source"]["chosen"] = 256
    budgets = apply_measured("cartpole-long-pole", recommended, data)
    assert _steps(budgets["ppo"]) == (256, 256, 256) and "measured" in budgets["ppo"].basis


def test_committed_budgets_follow_the_rule():
    data = json.loads(BUDGETS_FILE.read_text())
    assert data["rule"] and data["machine"]["cpu"]
    for name, entry in data["pairs"].items():
        for part in (entry["source"], entry["target"]):
            steps = [c["steps"] for c in part["candidates"]]
            assert steps == sorted(steps), name
            for c in part["candidates"]:
                assert c["reached"] == sum(s["time_to_threshold"] is not None for s in c["seeds"])
                assert c["passed"] == (c["reached"] >= 4)
                for s in c["seeds"]:
                    t = s["time_to_threshold"]
                    assert c["steps"] <= s["steps_taken"]  # whole rollouts: rounded up
                    assert t is None or (0 <= t <= s["steps_taken"] and s["best"] >= c["threshold"])
            # the smallest passing candidate is chosen; the search stopped there
            passed = [c["steps"] for c in part["candidates"] if c["passed"]]
            assert part["chosen"] == (passed[0] if passed else None), name
            assert not passed or passed == [steps[-1]], name
        budget = get_pair(name).budget(entry["algo"])
        if entry["source"]["chosen"] and entry["target"]["chosen"]:
            assert budget.source_steps == entry["source"]["chosen"]
            assert budget.target_steps == entry["target"]["chosen"]
            assert budget.eval_every == entry["eval_every"]
            assert budget.basis.startswith("measured")


def test_every_catalog_budget_says_where_it_comes_from():
    for pair in CATALOG:
        for algo, budget in pair.budgets.items():
            assert budget.basis, (pair.name, algo)
    shown = get_pair("hopper-heavy").to_dict()["budgets"]["ppo"]
    assert "beyond the reference machine" in shown["basis"]


def _part(threshold: float, *candidates: tuple[int, int], chosen: int | None = None) -> dict:
    """One half of a pair's entry in envs/budgets.json: candidates (steps, seeds reached)."""
    return {
        "threshold": threshold,
        "chosen": chosen,
        "candidates": [
            {"steps": steps, "reached": reached, "passed": reached >= 4, "seeds": [{}] * 5}
            for steps, reached in candidates
        ],
    }


def test_a_measured_budget_says_what_the_search_saw():
    recommended = {"ppo": Budget(30_000, 100_000, 2_000, "zoo")}
    entry = {
        "algo": "ppo",
        "eval_every": 1_000,
        "source": _part(475, (20_000, 2), (30_000, 5), chosen=30_000),
        "target": _part(475, (50_000, 4), chosen=50_000),
    }
    budget = apply_measured("p", recommended, {"pairs": {"p": entry}})["ppo"]
    assert _steps(budget) == (30_000, 50_000, 1_000)
    assert "scratch reached the threshold on 4/5 seeds at 50,000 steps; " in budget.basis
    assert (
        "the source reached 475 on the source variant on 2/5 seeds at 20,000 steps, 5/5 seeds "
        "at 30,000 steps" in budget.basis
    )
    # a source that passed no candidate: the recommended budget stays, and its basis says why
    entry["source"] = _part(475, (20_000, 2), (30_000, 3))
    budget = apply_measured("p", recommended, {"pairs": {"p": entry}})["ppo"]
    assert _steps(budget) == (30_000, 100_000, 2_000)
    assert "the source did not reach the threshold on 4 of 5 seeds" in budget.basis
    assert "not confirmed by the search" in budget.basis


def test_the_estimate_charges_each_shared_source_once_in_both_cases(tmp_path):
    """Two experiments on pairs with the same source variant (CartPole, pole half-length 0.5 m)
    share its sources: each case (max_seeds, 5 seeds) charges them once, to the first."""
    estimate = _load("catalog_estimate").estimate
    study = tmp_path / "study.yaml"
    study.write_text(
        "seeds: auto\nmax_seeds: 10\nalgo: ppo\nmethods: [policy]\nexperiments:\n"
        "  - {name: a, pair: cartpole-long-pole}\n  - {name: b, pair: cartpole-heavy-pole}\n"
    )

    def seeds(wall: float) -> list[dict]:
        return [{"wall_time_s": wall, "eval_time_s": 0.0} for _ in range(5)]

    def entry() -> dict:
        return {
            "algo": "ppo",
            "eval_every": 1_000,
            "source": {
                "variant": "source-check-cartpole-default",
                "chosen": 2_000,
                "candidates": [{"steps": 2_000, "seeds": seeds(100.0)}],
            },
            "target": {"chosen": 4_000, "candidates": [{"steps": 4_000, "seeds": seeds(1.0)}]},
        }

    measured = {"pairs": {"cartpole-long-pole": entry(), "cartpole-heavy-pole": entry()}}
    (a, b), totals = estimate(study, measured)
    # target runs: seeds x 1 method at 1 s, scratch beyond the 5 searched seeds at 1 s
    assert (a["worst_s"], b["worst_s"]) == (10 + 5 + 10 * 100.0, 10 + 5)
    assert (a["five_s"], b["five_s"]) == (5 + 5 * 100.0, 5)
    assert totals == {"worst_s": 1030.0, "five_s": 510.0}


def test_the_results_count_a_shared_source_once_and_name_the_look_of_each_decision(tmp_path):
    results = _load("catalog_results")
    for name in ("a", "b"):  # two experiments whose transfer runs used the same source
        run = tmp_path / name / "cartpole-long-pole" / "ppo" / "policy" / "seed_0"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"wall_time_s": 10.0, "source_key": "k"}))
    (tmp_path / "sources" / "k").mkdir(parents=True)
    (tmp_path / "sources" / "k" / "run.json").write_text(json.dumps({"wall_time_s": 100.0}))
    assert results._cpu_seconds([tmp_path / "a", tmp_path / "b"], tmp_path / "sources") == 120.0
    decided = {"seeds": [0, 1, 2], "sequential": {"status": "positive", "look": 1, "n": 3}}
    assert results._seq(decided) == "positive at look 1, 3 seeds"
    still_open = {"seeds": [0, 1, 2], "sequential": {"status": "open", "look": None, "n": 3}}
    assert results._seq(still_open) == "open, 3 seeds"


def test_an_invocation_log_that_is_not_a_list_is_started_again(tmp_path):
    from rl_transfer.experiment import _record_invocation

    (tmp_path / "invocations.json").write_text('{"started": "by hand"}\n')
    _record_invocation(tmp_path, spec_from(workers=1), 0.0, "finished")
    (log,) = read_json(tmp_path / "invocations.json")
    assert log["outcome"] == "finished" and log["workers"] == 1


def test_a_scratch_only_experiment_does_not_depend_on_the_source_budget(tmp_path):
    """No source is trained without a method that uses one: a new source budget of the pair
    (the budget search's candidates outlive a change of envs/budgets.json) resumes the folder."""
    args = ["run", *ONE_SEED, "--methods", "scratch", "--out", "exp", "--source-cache", "src"]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli(*args, "--source-steps", "999", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 job(s) to run, 1 finished run(s) reused" in again.stderr

    # with a method that uses a source, the source budget is part of the experiment
    def identity(methods: list[str], steps: int) -> dict:
        return spec_from(methods=methods, seeds=1, source_steps=steps).identity()

    assert identity(["scratch"], 1000) == identity(["scratch"], 2000)
    assert identity(["policy"], 1000) != identity(["policy"], 2000)


def test_a_budget_as_pairs_show_prints_it_loads_back():
    shown = get_pair("cartpole-long-pole").to_dict()
    try:
        pair = register_pair(
            "catalog-test-copy",
            shown["source"],
            shown["target"],
            threshold=shown["threshold"],
            r_min=shown["r_min"],
            budgets=shown["budgets"],
            overwrite=True,
        )
    finally:  # other tests list the registered pairs and run each through the CLI
        unregister_pair("catalog-test-copy")
    assert pair.budget("ppo") == get_pair("cartpole-long-pole").budget("ppo")
    assert pair.budget("ppo").basis.startswith("measured")
