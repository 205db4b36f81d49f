"""The CLI end to end, run as a subprocess on real files."""

import csv
import dataclasses
import inspect
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY, cli, cli_forked, read_json, run_exp

from rl_transfer.comparison import metric_keys
from rl_transfer.evaluation import Evaluator
from rl_transfer.reports import fmt_cell, table_rows
from rl_transfer.stats import look_levels, paired_t_test

RUN_FILES = {"run.json", "evaluations.npz", "transfer_report.json", "model.zip"}


def test_run_writes_every_file(tiny_experiment):
    root = tiny_experiment
    for name in (
        "experiment.yaml",
        "summary.json",
        "metrics.csv",
        "report.md",
        "curves_cartpole-long-pole_ppo.png",
    ):
        assert (root / name).is_file(), name
    for method in ("scratch", "policy", "value"):
        for seed in (0, 1):
            d = root / "cartpole-long-pole" / "ppo" / method / f"seed_{seed}"
            assert RUN_FILES <= {p.name for p in d.iterdir()}
            assert any(p.name.startswith("events.out.tfevents") for p in d.iterdir())
            info = read_json(d / "run.json")
            assert info["status"] == "done"
            assert (info["pair"], info["algo"], info["method"], info["seed"]) == (
                "cartpole-long-pole",
                "ppo",
                method,
                seed,
            )
            # PPO rounds learn() up to whole rollouts of n_steps * n_envs = 256
            assert info["target_steps"] == 768
            assert info["source_steps"] == (0 if method == "scratch" else 512)
            with np.load(d / "evaluations.npz") as ev:
                assert list(ev["timesteps"]) == [0, 256, 512, 768]
                assert ev["results"].shape == (4, 4) and ev["ep_lengths"].shape == (4, 4)
    assert not list(root.rglob(".*.tmp*")), "temporary files left behind"


def test_summary_agrees_with_evaluations_csv_and_report(tiny_experiment):
    root = tiny_experiment
    summary = read_json(root / "summary.json")
    assert {(r["method"]) for r in summary["results"]} == {"policy", "value"}
    rows = list(csv.DictReader(open(root / "metrics.csv")))
    report = (root / "report.md").read_text()
    for r in summary["results"]:
        assert r["seeds"] == [0, 1]
        assert r["verdict"] in {"positive", "negative", "inconclusive"}
        assert r["verdict_total_time"] in {"positive", "negative", "inconclusive"}
        # P(transfer > scratch) by hand: each seed's normalized area, pairs compared, ties 1/2
        pair = yaml.safe_load((root / "experiment.yaml").read_text())["pairs"][r["pair"]]

        def area(path, pair=pair):
            with np.load(path) as ev:
                t, f = ev["timesteps"].astype(float), ev["results"].mean(axis=1)
            g = np.clip((f - pair["r_min"]) / (pair["r_max"] - pair["r_min"]), 0, 1)
            return float(np.trapezoid(g, t) / t[-1])

        runs_dir = root / r["pair"] / r["algo"]
        xs = [area(runs_dir / r["method"] / f"seed_{s}" / "evaluations.npz") for s in r["seeds"]]
        ys = [area(runs_dir / "scratch" / f"seed_{s}" / "evaluations.npz") for s in r["seeds"]]
        wins = sum((x > y) + 0.5 * (x == y) for x in xs for y in ys)
        assert r["probability_of_improvement"] == pytest.approx(wins / (len(xs) * len(ys)))
        for key in (
            "jumpstart",
            "asymptotic_gain",
            "auc_gain",
            "transfer_ratio",
            "time_to_threshold_gain",
            "time_to_threshold_speedup",
            "forward_transfer",
            "forward_transfer_total_time",
            "auc_gain_total_time",
        ):
            assert set(r["metrics"][key]) >= {"iqm", "ci", "per_seed"}
        # per-seed jumpstart = mean t=0 return of transfer minus scratch, from evaluations.npz
        for i, seed in enumerate(r["seeds"]):
            runs = root / r["pair"] / r["algo"]
            with (
                np.load(runs / r["method"] / f"seed_{seed}" / "evaluations.npz") as t,
                np.load(runs / "scratch" / f"seed_{seed}" / "evaluations.npz") as b,
            ):
                expected = t["results"][0].mean() - b["results"][0].mean()
            assert r["metrics"]["jumpstart"]["per_seed"][i] == pytest.approx(expected, abs=1e-12)
        # metrics.csv carries the same per-seed numbers
        for key, name, accounting in metric_keys():
            got = [
                row
                for row in rows
                if row["method"] == r["method"]
                and row["metric"] == name
                and row["accounting"] == accounting
            ]
            assert [int(g["seed"]) for g in got] == r["seeds"]
            for g, v in zip(got, r["metrics"][key]["per_seed"]):
                assert (g["value"] == "" and v is None) or float(g["value"]) == v
        # report.md carries the IQM cells and the verdict
        assert f"verdict **{r['verdict']}**" in report
        for _, target_cell, total_cell in table_rows(r):
            assert f"| {target_cell} | {total_cell} |" in report
    # nothing is NaN or Infinity (json.loads would accept them: check the raw text)
    text = (root / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_policy_transfer_really_happened(tiny_experiment):
    """t = 0 evaluation of the policy arm == the source model evaluated on the target."""
    from stable_baselines3 import PPO

    import envs

    root = tiny_experiment
    report = read_json(root / "cartpole-long-pole/ppo/policy/seed_0/transfer_report.json")
    assert report["copied"], "policy transfer copied no tensor"
    assert all(
        c["name"].startswith(("mlp_extractor.policy_net", "action_net")) for c in report["copied"]
    )
    assert any(r["name"].startswith("value_net") for r in report["reinitialised"])
    source = PPO.load(f"{report['source']['dir']}/model.zip", device="cpu")
    pair = envs.get_pair("cartpole-long-pole")
    returns, _ = Evaluator(pair.make_target, 4).evaluate(source)
    with np.load(root / "cartpole-long-pole/ppo/policy/seed_0/evaluations.npz") as ev:
        np.testing.assert_array_equal(ev["results"][0], returns)
        # and it is not simply what a fresh network does: scratch at t = 0 differs
    with np.load(root / "cartpole-long-pole/ppo/scratch/seed_0/evaluations.npz") as sc:
        assert not np.array_equal(sc["results"][0], returns)


def test_same_seed_twice_gives_identical_curves(tiny_experiment, tmp_path):
    proc = cli(
        "run",
        *TINY,
        "--methods",
        "policy",
        "--out",
        "again",
        "--source-cache",
        "src2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for method in ("scratch", "policy"):
        for seed in (0, 1):
            rel = f"cartpole-long-pole/ppo/{method}/seed_{seed}/evaluations.npz"
            with np.load(tiny_experiment / rel) as a, np.load(tmp_path / "again" / rel) as b:
                np.testing.assert_array_equal(a["timesteps"], b["timesteps"])
                np.testing.assert_array_equal(a["results"], b["results"])


def test_report_rebuilds_the_same_summary(tiny_experiment, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_experiment, copy)
    (copy / "summary.json").unlink()
    proc = cli("report", str(copy), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_json(copy / "summary.json") == read_json(tiny_experiment / "summary.json")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--pair", "cartpole-longpole"],
            "unknown pair 'cartpole-longpole'; did you mean cartpole-long-pole",
        ),
        (
            ["--methods", "polcy"],
            "unknown method 'polcy'; did you mean 'policy'? valid methods: feature, finetune, "
            "jsrl, kickstart, policy, replay, reuse, shaping, value",
        ),
        (
            ["--algo", "ppo2"],
            "unknown algo 'ppo2'; did you mean 'ppo'? valid algos: a2c, dqn, ppo, sac, td3",
        ),
        (
            ["--pair", "hopper-heavy", "--algo", "dqn"],
            "dqn acts in Discrete action spaces and pair 'hopper-heavy' has Box(",
        ),
        (
            ["--algo", "sac"],
            "sac acts in Box action spaces and pair 'cartpole-long-pole' has Discrete(2); "
            "algorithms that act in it: ppo, a2c, dqn",
        ),
        (["--target-steps", "0"], "must be a positive integer, got 0"),
        (["--source-steps", "-5"], "must be a positive integer, got -5"),
        (["--out", "/proc/version/x"], "is not usable"),
        (["--seeds", "many"], "expected a positive integer or 'auto', got 'many'"),
        (["--seeds", "auto", "--max-seeds", "2"], "--max-seeds must be at least 3"),
        (["--seed-offset", "-1"], "must be an integer >= 0, got -1"),
        (["--methods", "scratch"], "seeds 'auto' decides transfer-vs-scratch comparisons"),
        (["--seeds", "4", "--max-seeds", "7"], "--max-seeds applies to --seeds auto"),
        (["--knob", "shaping"], "expected METHOD.KNOB=VALUE"),
        (["--method-arg", "shaping.scale"], "expected METHOD.KNOB=VALUE"),
        (["--knob", "shaping.scale=0.5"], "--knob for 'shaping', which is not among the methods"),
        # the pair's hidden evaluation interval (2000) against a smaller target budget
        (
            ["--target-steps", "1000"],
            "pass --eval-every 1000 or less, or raise --target-steps to 2000 or more",
        ),
        (
            ["--target-steps", "100000", "--eval-every", "200000"],
            "pass --eval-every 100000 or less, or raise --target-steps to 200000 or more",
        ),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, message):
    proc = cli_forked("run", *args, "--source-cache", "src", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_out_with_results_is_refused(tiny_experiment, tmp_path):
    proc = cli_forked("run", "--out", str(tiny_experiment), "--source-cache", "src", cwd=tmp_path)
    assert proc.returncode == 2
    assert "already holds results" in proc.stderr and str(tiny_experiment) in proc.stderr


def test_pairs_lists_and_shows(tmp_path):
    proc = cli("pairs", "--json", cwd=tmp_path)
    assert proc.returncode == 0
    pairs = json.loads(proc.stdout)
    assert any(p["name"] == "cartpole-long-pole" and p["threshold"] == 475.0 for p in pairs)
    proc = cli("pairs", "show", "cartpole-long-pole", cwd=tmp_path)
    assert json.loads(proc.stdout)["differences"] == {"length": [0.5, 1.0]}


def test_fmt_cell_marks_partial_seeds():
    assert fmt_cell({"iqm": 2.0, "ci": [1.0, 3.0], "n_defined": 1}, 2) == "2 [1, 3] (1/2 seeds)"


def test_fmt_cell_writes_steps_as_people_do():
    cell = fmt_cell({"iqm": 28840.0, "ci": [21500.0, 34133.0], "n_defined": 3}, 3)
    assert cell == "28.8k [21.5k, 34.1k]"
    assert fmt_cell({"iqm": -4.735e6, "ci": None, "n_defined": 3}, 3) == "-4.74M"
    assert fmt_cell({"iqm": 2816.0, "ci": None, "n_defined": 3}, 3) == "2816"


def test_version_and_experiment_yaml_without_anchors(tiny_experiment, tmp_path):
    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("rl-transfer ")
    text = (tiny_experiment / "experiment.yaml").read_text()
    assert "&id" not in text and "*id" not in text


def test_several_pairs_from_python_give_a_performance_profile(tmp_path):
    """The Python API with a pair registered in the script, beside a catalog pair."""
    import envs
    from rl_transfer import Experiment

    try:
        envs.register_pair(
            "test-heavy-cart",
            source=("cartpole", {}),
            target=("cartpole", {"masscart": 3.0}),
            threshold=475.0,
        )
        result = Experiment(
            pairs=["cartpole-long-pole", "test-heavy-cart"],
            methods=["policy"],
            seeds=2,
            source_steps=256,
            target_steps=512,
            eval_every=256,
            eval_episodes=2,
            out=tmp_path / "exp",
            source_cache=tmp_path / "src",
            quiet=True,
        ).run()
    finally:
        envs.unregister_pair("test-heavy-cart")
    assert not result.failed
    assert {r["pair"] for r in result.summary["results"]} == {
        "cartpole-long-pole",
        "test-heavy-cart",
    }
    for name in (
        "performance_profile.png",
        "forward_transfer.png",
        "curves_test-heavy-cart_ppo.png",
    ):
        assert (result.out / name).stat().st_size > 1000, name
    assert "performance_profile.png" in (result.out / "report.md").read_text()
    assert "test-heavy-cart / ppo / policy" in result.table()


@pytest.fixture(scope="module")
def catalog_experiment(tmp_path_factory):
    """PPO, policy transfer and scratch, on every built-in pair (a few hundred steps each), in
    2 worker processes, its progress written to a pipe: the command and its stderr."""
    import envs

    root = tmp_path_factory.mktemp("catalog")
    names = [p.name for p in envs.list_pairs()]
    proc = run_exp(
        root,
        "--pair",
        ",".join(names),
        "--methods",
        "policy",
        "--seeds",
        "1",
        "--source-steps",
        "256",
        "--target-steps",
        "256",
        "--eval-every",
        "256",
        "--eval-episodes",
        "1",
        "--workers",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    return root / "exp", names, proc.stderr


def test_every_catalog_pair_runs_end_to_end(catalog_experiment):
    exp, names, _ = catalog_experiment
    summary = read_json(exp / "summary.json")
    assert sorted(r["pair"] for r in summary["results"]) == sorted(names)
    assert all(r["seeds"] == [0] for r in summary["results"])
    assert (exp / "performance_profile.png").is_file()


def test_files_get_the_usual_mode(tiny_experiment):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    for name in (
        "summary.json",
        "report.md",
        "cartpole-long-pole/ppo/policy/seed_0/run.json",
        "cartpole-long-pole/ppo/policy/seed_0/model.zip",
    ):
        mode = stat.S_IMODE((tiny_experiment / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


def test_report_of_a_folder_with_no_finished_run(tiny_experiment, tmp_path):
    import shutil

    shutil.copytree(tiny_experiment, tmp_path / "exp")
    for run_json in (tmp_path / "exp").glob("*/*/*/seed_*/run.json"):
        run_json.unlink()  # as if every run had been interrupted
    proc = cli("report", "exp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_json(tmp_path / "exp/summary.json")["results"] == []


def test_adaptive_seeds_look_and_stop_per_comparison(tmp_path):
    """--seeds auto: looks at 3 then 5 seeds; a comparison decided or futile at a look runs no
    more seeds; the decisions are in sequential.json and the summary's verdicts follow them."""
    i = TINY.index("--seeds")
    args = TINY[:i] + TINY[i + 2 :]
    proc = run_exp(tmp_path, *args, "--seeds", "auto", "--max-seeds", "5", "--seed-offset", "10")
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "exp"
    seq = read_json(root / "sequential.json")
    assert seq["looks"] == [3, 5] and seq["alpha_per_hypothesis"] == pytest.approx(0.025)

    summary = read_json(root / "summary.json")
    assert summary["family"]["design"] == "adaptive seeds" and summary["family"]["size"] == 2
    first = seq["taken"][0]["status"]
    for r in summary["results"]:
        h = f"{r['pair']}/{r['algo']}/{r['method']}"
        d = seq["decisions"][h]
        assert r["verdict"] == d["verdict"]
        assert d["status"] in {"positive", "negative", "futile", "undecided"}
        expected = [10, 11, 12] if first[h] != "continue" else [10, 11, 12, 13, 14]
        assert r["seeds"] == expected  # seed offset 10; no seeds past the deciding look
        runs = sorted(p.name for p in (root / r["pair"] / r["algo"] / r["method"]).iterdir())
        assert runs == [f"seed_{s}" for s in expected]
        # the decision's p-value is the paired t-test on the seeds of that look
        assert d["p_value"] == pytest.approx(r["p_value"])
        # look 1 recorded, by value: the t-test of seeds 10-12 at its first-look level
        gains = r["metrics"]["normalized_area_gain"]["per_seed"][:3]
        assert seq["taken"][0]["p_value"][h] == pytest.approx(paired_t_test(gains))
        level = seq["taken"][0]["level"][h]
        assert any(level == pytest.approx(look_levels([3, 5], a)[0]) for a in (0.025, 0.05))
    assert "look 1 (3 seeds)" in proc.stderr


def test_source_segment_is_measured_on_the_target(tiny_experiment):
    """The source's checkpoints, evaluated on the target, start where scratch starts (same seed,
    same initial network) and end where policy transfer starts (the same actor)."""
    root = tiny_experiment
    for seed in (0, 1):
        run = root / "cartpole-long-pole" / "ppo"
        with np.load(run / "policy" / f"seed_{seed}" / "source_on_target.npz") as seg:
            t, results = seg["timesteps"], seg["results"]
        info = read_json(run / "policy" / f"seed_{seed}" / "run.json")
        assert t[0] == 0 and t[-1] == info["source_steps"] and np.all(np.diff(t) > 0)
        with np.load(run / "scratch" / f"seed_{seed}" / "evaluations.npz") as ev:
            assert np.array_equal(results[0], ev["results"][0])
        with np.load(run / "policy" / f"seed_{seed}" / "evaluations.npz") as ev:
            assert np.array_equal(results[-1], ev["results"][0])
        src = read_json(run / "policy" / f"seed_{seed}" / "transfer_report.json")
        assert src["source_segment"].startswith("measured")
    summary = read_json(root / "summary.json")
    for r in summary["results"]:
        assert r["source_segment"] == ["measured"]
        # total-time jumpstart: the untrained source against the untrained scratch learner
        assert r["metrics"]["jumpstart_total_time"]["per_seed"] == [0.0, 0.0]


# ----------------------------------------------------------------------------------------------
# Errors, flags, help


def _error_classes():
    import rl_transfer.errors as errors

    return [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, BaseException) and c.__module__ == errors.__name__
    ]


def test_every_error_is_an_rl_transfer_error_with_the_documented_exit_code():
    import agents
    import envs
    import envs.errors
    import rl_transfer.errors as errors

    classes = _error_classes()
    assert len(classes) == 17
    assert all(issubclass(c, errors.RLTransferError) for c in classes)
    # the old import places give the same classes
    assert agents.TransferError is errors.TransferError
    assert agents.UnknownAlgoError is errors.UnknownAlgoError
    for name in ("EnvsError", "ParameterError", "UnknownFamilyError", "UnknownPairError"):
        assert getattr(envs, name) is getattr(envs.errors, name) is getattr(errors, name)
    assert issubclass(errors.SpecError, ValueError) and issubclass(errors.EnvsError, ValueError)
    # the module docstring's table is the exit_code attributes, class by class
    table = dict(re.findall(r"^(\w+Error)\s+(\d+)\s", errors.__doc__, re.MULTILINE))
    assert {c.__name__: c.exit_code for c in classes} == {k: int(v) for k, v in table.items()}
    assert errors.SpecError.exit_code == 2 and errors.UnknownPairError.exit_code == 2


@pytest.mark.parametrize("name", [c.__name__ for c in _error_classes()])
def test_cli_maps_each_error_to_its_exit_code_in_one_line(tmp_path, name):
    import rl_transfer.errors as errors

    code = (
        "import sys\n"
        "import rl_transfer.cli as cli\n"
        "import rl_transfer.errors as errors\n"
        "def fail(args):\n"
        f"    raise errors.{name}('the thing went wrong')\n"
        "cli._cmd_report = fail\n"
        "sys.exit(cli.main(['report', 'somewhere']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == getattr(errors, name).exit_code
    assert proc.stderr == "error: the thing went wrong\n"


def test_a_bad_vecnormalize_config_is_a_spec_error_not_a_transfer_error():
    from agents import get_adapter
    from rl_transfer.errors import SpecError, TransferError

    get_adapter("ppo").check_hyperparams({"normalize": True})  # zoo's normalize is read
    with pytest.raises(SpecError, match="VecNormalize argument") as info:
        get_adapter("ppo").check_hyperparams({"normalize": {"norm_obsv": True}})
    assert not isinstance(info.value, TransferError)


HEAVY = ("torch", "stable_baselines3", "agents")


def _heavy_modules_after(code: str, cwd: Path) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy packages it imported."""
    code = "import contextlib, io, sys\nimport rl_transfer.cli as cli\n" + code
    code += (
        "\nimport json\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_help_pairs_and_compare_import_neither_torch_nor_sb3(tmp_path):
    code = (
        "for argv in (['--help'], ['run', '--help'], ['pairs', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            cli.build_parser().parse_args(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert cli.main(['pairs', '--json']) == 0\n"
        "import rl_transfer\n"
        "rl_transfer.compare\n"
    )
    assert _heavy_modules_after(code, tmp_path) == []


def test_report_imports_neither_torch_nor_stable_baselines3(tiny_experiment, tmp_path):
    """``report`` reads folders and writes tables, plots and TensorBoard views (through
    TensorBoard's own event writer): no torch, no agent code."""
    import shutil

    shutil.copytree(tiny_experiment, tmp_path / "copy")
    code = (
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert cli.main(['report', 'copy']) == 0\n"
    )
    assert _heavy_modules_after(code, tmp_path) == []


def _subparsers():
    import argparse

    from rl_transfer.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_every_flag_shows_its_default_in_help():
    import argparse

    for command, parser in _subparsers().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.option_strings and action.nargs in (None, "+"):
                continue  # a required argument has no default
            assert "(default: " in (action.help or ""), (command, action.option_strings)
    text = _subparsers()["run"].format_help()
    budget = "default: the pair's budget (`rl-transfer pairs show NAME`)"
    for flag in ("--source-steps", "--target-steps", "--eval-every"):
        (line,) = [x for x in text.split("\n  -")[1:] if x.startswith(flag[1:])]
        assert budget in " ".join(line.split()), flag


def test_run_flags_and_study_keys_come_from_the_spec_fields():
    from dataclasses import fields

    from rl_transfer.spec import STUDY_KEYS, ExperimentSpec, _study_model, options

    run = _subparsers()["run"]
    dests = {a.dest for a in run._actions}
    names = [f.name for f in fields(ExperimentSpec)]
    assert set(names) <= dests  # one flag per field
    assert set(STUDY_KEYS) == set(_study_model().model_fields) <= set(names)
    assert [k for k in names if options()[k].study] == list(STUDY_KEYS)
    assert "--knob" in run.format_help() and "--method-arg" not in run.format_help()


def test_knobs_old_spellings_still_work(tmp_path):
    from rl_transfer.cli import _spec_kwargs, build_parser
    from rl_transfer.spec import load_study, spec_from

    for flag, key in (("--knob", "knobs"), ("--method-arg", "method_args")):
        args = build_parser().parse_args(["run", flag, "shaping.scale=0.5"])
        assert _spec_kwargs(args)[key] == {"shaping": {"scale": "0.5"}}
        spec = spec_from(**_spec_kwargs(args))
        assert spec.knobs == {"shaping": {"scale": "0.5"}}
        assert spec.flag("knobs") == flag  # messages name the flag as the user spelled it
    both = build_parser().parse_args(
        ["run", "--knob", "shaping.scale=0.5", "--method-arg", "kickstart.weight=0.2"]
    )
    assert _spec_kwargs(both)["knobs"] == {
        "shaping": {"scale": "0.5"},
        "kickstart": {"weight": "0.2"},
    }
    for key in ("knobs", "method_args"):
        (tmp_path / "study.yaml").write_text(
            f"methods: [shaping]\n{key}:\n  shaping:\n    scale: 0.5\n"
        )
        assert load_study(tmp_path / "study.yaml")["knobs"] == {"shaping": {"scale": 0.5}}
    new = spec_from(methods=["shaping"], knobs={"shaping": {"scale": 0.5}})
    old = spec_from(methods=["shaping"], method_args={"shaping": {"scale": 0.5}})
    assert new == old and old.method_args == old.knobs
    assert "knobs" in new.identity() and "method_args" not in new.identity()
    from rl_transfer.errors import SpecError

    with pytest.raises(SpecError, match="same setting"):
        spec_from(knobs={}, method_args={"shaping": {"scale": 0.5}})


def test_an_experiment_yaml_with_method_args_still_resumes(tmp_path):
    import yaml

    from rl_transfer.errors import SpecError
    from rl_transfer.runner import write_spec
    from rl_transfer.spec import spec_from

    def spec(scale):
        return spec_from(
            methods=["shaping"],
            seeds=2,
            knobs={"shaping": {"scale": scale}},
            out=tmp_path / "exp",
            source_cache=tmp_path / "src",
        )

    write_spec(spec(0.5), tmp_path / "exp")
    path = tmp_path / "exp/experiment.yaml"
    written = yaml.safe_load(path.read_text())
    assert written["identity"]["knobs"] == {"shaping": {"scale": 0.5}}
    written["identity"]["method_args"] = written["identity"].pop("knobs")  # an older folder
    path.write_text(yaml.safe_dump(written))
    assert spec(0.5).check_resumable() is True
    with pytest.raises(SpecError, match=r"differs in: knobs.shaping.scale: 0.5 -> 0.25\)"):
        spec(0.25).check_resumable()
    with pytest.raises(
        SpecError,
        match=r"pairs.cartpole-long-pole.budgets.ppo.target_steps: \d+ -> 1000\)",
    ):
        dataclasses.replace(spec(0.5), target_steps=1000, eval_every=500).check_resumable()


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    (tmp_path / "study.yaml").write_text("seeds: 2\nmethods: [policy\n")
    proc = cli_forked("run", "study.yaml", "--source-cache", "src", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: study.yaml:3:1: expected ',' or ']'"), proc.stderr
    (tmp_path / "bad.yaml").write_text("pairs:\n  - name: x\n    source: a\n     b: c\n")
    proc = cli_forked("pairs", "--pairs-file", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: bad.yaml:4:7: mapping values are not allowed"), (
        proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1


def test_progress_without_a_terminal_prints_plain_lines():
    from rl_transfer.runner import Display

    out = io.StringIO()
    display = Display(total=2, reused=0, quiet=False, stream=out, status_every=0.0)
    display.started("source p/ppo/seed_0")
    display.tick()
    display.finish("source p/ppo/seed_0")
    display.retrying("p/ppo/policy/seed_0")
    display.finish("p/ppo/policy/seed_0", "failed")
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[0/2 runs done, 0:00 elapsed]"
    assert re.fullmatch(r"\[1/2\] source p/ppo/seed_0 done \(\d+ s\)", lines[1])
    assert lines[2:] == [
        "retrying p/ppo/policy/seed_0 (worker died)",
        "[2/2] p/ppo/policy/seed_0 failed",
    ]
    quiet = io.StringIO()
    display = Display(total=1, reused=0, quiet=True, stream=quiet, status_every=0.0)
    display.tick()
    display.finish("x")
    display.retrying("y")
    assert quiet.getvalue() == "retrying y (worker died)\n"  # a retry is shown even quiet
    slow = io.StringIO()
    display = Display(total=1, reused=0, quiet=False, stream=slow)  # every 30 s: not yet
    display.tick()
    assert slow.getvalue() == ""


def test_a_piped_run_reports_each_finished_run(catalog_experiment):
    _, names, stderr = catalog_experiment
    (n,) = [int(m) for m in re.findall(r"(\d+) job\(s\) to run", stderr)]
    sources = n - 2 * len(names)  # a scratch and a policy run per pair; pairs share sources
    assert 1 <= sources <= len(names), stderr
    done = [line for line in stderr.splitlines() if re.match(rf"\[\d+/{n}\] ", line)]
    assert [line.split("]")[0] for line in done] == [f"[{i}/{n}" for i in range(1, n + 1)]
    assert all(re.fullmatch(rf"\[\d+/{n}\] .+ done \(\d+ s\)", line) for line in done), done
    labels = [line.split(" ", 1)[1].rsplit(" done", 1)[0] for line in done]
    assert {label for label in labels if not label.startswith("source ")} == {
        f"{pair}/ppo/{method}/seed_0" for pair in names for method in ("scratch", "policy")
    }
    trained = {label for label in labels if label.startswith("source ")}
    assert len(trained) == sources
    assert trained <= {f"source {pair}/ppo/seed_0" for pair in names}


def test_an_experiment_whose_output_pipe_closes_exits_as_interrupted(tmp_path):
    """`rl-transfer run ... 2>&1 | head -1`: the run cannot report any more; it stops as an
    interrupted one (finished runs kept, resumable), never with status 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl_transfer.cli", "run", *TINY[:-1], "--out", "exp"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout.readline()  # the first line, then the reader goes away
    proc.stdout.close()
    assert proc.wait(timeout=300) == 130


ESCAPING_PAIRS = """
pairs:
  - name: ../../escaped
    source: {family: cartpole, params: {length: 0.5}}
    target: {family: cartpole, params: {length: 1.0}}
    threshold: 475
"""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pairs-file", "../../p.yaml"], "pair name '../../escaped' cannot be a folder name"),
        (["--name", "../../escaped-exp"], "experiment name '../../escaped-exp' cannot be a"),
        (["--name", "a/b"], "experiment name 'a/b' cannot be a folder name"),
    ],
)
def test_names_that_would_leave_the_experiment_folder_are_refused(tmp_path, args, message):
    """Pair, method and experiment names become folder names under runs/, and run folders are
    cleared with a recursive delete: a name must never point outside."""
    (tmp_path / "p.yaml").write_text(ESCAPING_PAIRS)
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    proc = cli_forked("run", *args, "--seeds", "2", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "p.yaml"]


def test_a_method_name_that_is_not_a_folder_name_is_refused():
    from rl_transfer.errors import SpecError
    from rl_transfer.methods import TransferMethod, register_method

    class Escape(TransferMethod):
        name = ".."
        doc = "would write its runs one level up"

    with pytest.raises(SpecError, match="method name '..' cannot be a folder name"):
        register_method(Escape)
