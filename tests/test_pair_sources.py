"""Pairs registered three ways (Python API, YAML file, package entry point), one validation."""

import json
import os
import sys
import textwrap

import numpy as np
from conftest import cli, cli_forked, read_json, run_exp

PAIRS_YAML = """\
pairs:
  - name: my-heavy-cart
    source: {family: cartpole}
    target: {family: cartpole, params: {masscart: 2.0}}
    threshold: 475
    description: CartPole with a cart twice as heavy
    budgets:
      ppo: {source_steps: 512, target_steps: 768, eval_every: 256}
"""


def test_pairs_file_registers_and_runs_end_to_end(tmp_path):
    """The README's flow: write a pairs file, list it, run it."""
    (tmp_path / "my_pairs.yaml").write_text(PAIRS_YAML)
    listed = cli("pairs", "--pairs-file", "my_pairs.yaml", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (mine,) = [p for p in json.loads(listed.stdout) if p["name"] == "my-heavy-cart"]
    assert mine["differences"] == {"masscart": [1.0, 2.0]}
    assert mine["r_max"] == 500.0 and 15 < mine["r_min"] < 60  # measured at registration
    proc = run_exp(
        tmp_path,
        "--pairs-file",
        "my_pairs.yaml",
        "--pair",
        "my-heavy-cart",
        "--seeds",
        "1",
        "--eval-episodes",
        "2",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "exp/my-heavy-cart/ppo/policy/seed_0"
    assert read_json(run / "run.json")["target_steps"] == 768  # the file's budget
    with np.load(run / "evaluations.npz") as ev:
        assert list(ev["timesteps"]) == [0, 256, 512, 768]


def test_default_pairs_folder_is_loaded(tmp_path):
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "mine.yaml").write_text(PAIRS_YAML)
    proc = cli("pairs", "show", "my-heavy-cart", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target"]["params"] == {"masscart": 2.0}


def test_bad_pairs_file_is_one_line_naming_file_and_pair(tmp_path):
    bad = PAIRS_YAML.replace("masscart: 2.0", "mascart: 2.0")
    (tmp_path / "bad.yaml").write_text(bad)
    proc = cli_forked("run", "--pairs-file", "bad.yaml", "--out", "exp", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: pairs file bad.yaml: pair 'my-heavy-cart': unknown parameter 'mascart'"
    )
    assert "valid parameters: masscart" in lines[0]
    (tmp_path / "bad.yaml").write_text(PAIRS_YAML.replace("threshold: 475", "treshold: 475"))
    proc = cli("pairs", "--pairs-file", "bad.yaml", cwd=tmp_path)
    assert (
        proc.returncode == 2 and "unknown key 'treshold'; did you mean 'threshold'?" in proc.stderr
    )
    assert not (tmp_path / "exp").exists()


def test_entry_point_plugin_contributes_pairs(tmp_path):
    """A third-party package: a module and its dist-info with an rl_transfer.pairs entry point."""
    site = tmp_path / "site"
    (site / "my_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "my_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n"
    )
    (site / "my_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[rl_transfer.pairs]\nmine = my_plugin:pairs\n"
    )
    (site / "my_plugin.py").write_text(
        textwrap.dedent("""\
        def pairs():
            return [dict(name="plugin-short-pole", source=("cartpole", {}),
                         target=("cartpole", {"length": 0.3}), threshold=475.0, r_min=20.0)]
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "rl_transfer.cli", "pairs", "show", "plugin-short-pole"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["differences"] == {"length": [0.5, 0.3]}
    # a broken plugin is named, not swallowed
    (site / "my_plugin.py").write_text("def pairs():\n    raise RuntimeError('boom')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "rl_transfer.cli", "pairs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert (
        "entry point mine = my_plugin:pairs of my-plugin failed: RuntimeError: boom" in proc.stderr
    )


def test_a_file_cannot_redefine_a_built_in_pair_and_budgets_are_checked(tmp_path):
    (tmp_path / "p.yaml").write_text(PAIRS_YAML.replace("my-heavy-cart", "cartpole-long-pole"))
    proc = cli("pairs", "--pairs-file", "p.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "pair 'cartpole-long-pole' is a built-in pair; give yours another name" in proc.stderr
    (tmp_path / "p.yaml").write_text(PAIRS_YAML.replace("source_steps: 512, ", ""))
    proc = cli("pairs", "--pairs-file", "p.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "the budget for 'ppo' needs exactly the keys source_steps, target_steps, eval_every"
        in proc.stderr
    )
    assert proc.stderr.count("pair 'my-heavy-cart'") == 1
