"""Methods and env families from a user's own package, through entry points, end to end.

A throwaway package is written into a temporary folder with a ``.dist-info`` declaring entry
points in the groups ``rl_transfer.methods`` and ``rl_transfer.families``; it is put on the
subprocess's PYTHONPATH (importlib.metadata finds it there as an installed distribution), and
the real CLI runs a real experiment with the plugin's method on a pair of the plugin's family.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import cli, read_json

PLUGIN = '''
"""A user's package: one transfer method and one env family."""

from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from envs import EnvFamily, Param
from rl_transfer.methods import Knob, TransferMethod


class PoleCartPole(CartPoleEnv):
    """CartPole with its pole's half-length settable."""

    def __init__(self, render_mode=None, length=0.5):
        super().__init__(render_mode=render_mode)
        self.length = float(length)
        self.polemass_length = self.masspole * self.length


FAMILY = EnvFamily(
    name="pole-cartpole",
    base_id="PoleCartPole-v0",
    entry_point="rlt_demo_plugin:PoleCartPole",
    params={"length": Param("length", 0.5, 0.1, 3.0, "m", "half the pole's length")},
    max_episode_steps=200,
    r_max=200.0,
    reward_threshold=190.0,
)


class CriticOnly(TransferMethod):
    """Copies the source's value network and counts what moved, through the adapter only."""

    name = "critic-only"
    doc = "the source's critic is copied (a plugin)"
    reference = "a test plugin"
    knobs = {"unused": Knob(1.0, 0.5, 2.0, "a knob that does nothing")}

    def missing(self, adapter):
        return [] if "value" in adapter.parts else ["the part 'value'"]

    def before_learning(self, run):
        record = run.adapter.copy_parts(run.source, run.model, ["value"])
        self.moved = len(record.copied)
        return {}, []

    def after_learning(self, run, steps):
        return {"critic_only": {"tensors": self.moved, "unused": run.knobs["unused"]}}


class Dup(CriticOnly):
    name = "policy"
'''

ENTRY_POINTS = """
[rl_transfer.methods]
critic-only = rlt_demo_plugin:CriticOnly

[rl_transfer.families]
pole-cartpole = rlt_demo_plugin:FAMILY
"""

PAIRS = """
pairs:
  - name: pole-longer
    source: {family: pole-cartpole, params: {length: 0.5}}
    target: {family: pole-cartpole, params: {length: 1.0}}
    threshold: 190
"""


def _install_plugin(root: Path) -> dict[str, str]:
    (root / "rlt_demo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "rlt_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rlt-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (root / "pairs.yaml").write_text(PAIRS)
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "0"}


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return cli(*args, cwd=cwd, env=env)


def test_a_plugin_package_adds_a_method_and_a_family_through_entry_points(tmp_path):
    env = _install_plugin(tmp_path)
    listing = _cli(env, tmp_path, "methods", "--json")
    assert listing.returncode == 0, listing.stderr
    by_name = {m["name"]: m for m in json.loads(listing.stdout)}
    plugin = by_name["critic-only"]
    assert "rlt-demo-plugin" in plugin["origin"] and by_name["policy"]["origin"] == "rl_transfer"
    assert plugin["algos"]["ppo"]["supported"] and plugin["knobs"]["unused"]["default"] == 1.0

    proc = _cli(
        env,
        tmp_path,
        "run",
        "--pairs-file",
        "pairs.yaml",
        "--pair",
        "pole-longer",
        "--methods",
        "critic-only,policy+critic-only",
        "--knob",
        "critic-only.unused=1.5",
        "--seeds",
        "1",
        "--source-steps",
        "256",
        "--target-steps",
        "512",
        "--eval-every",
        "256",
        "--eval-episodes",
        "2",
        "--out",
        "exp",
        "--source-cache",
        "src",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    runs = tmp_path / "exp/pole-longer/ppo"
    alone = read_json(runs / "critic-only/seed_0/transfer_report.json")
    assert alone["critic_only"] == {"tensors": 6, "unused": 1.5}
    combined = read_json(runs / "policy+critic-only/seed_0/transfer_report.json")
    assert combined["critic_only"]["tensors"] == 6
    assert {t["name"].split(".")[0] for t in combined["copied"]} == {
        "mlp_extractor",
        "action_net",
    }
    summary = read_json(tmp_path / "exp/summary.json")
    methods = {e["method"] for e in summary["results"]}
    assert {"critic-only", "policy+critic-only"} <= methods


def test_a_plugin_that_cannot_load_is_one_error_line(tmp_path):
    env = _install_plugin(tmp_path)
    (tmp_path / "rlt_demo_plugin.py").write_text("raise ImportError('broken plugin')\n")
    proc = _cli(env, tmp_path, "run", "--methods", "critic-only", "--out", "e")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    # whichever of its entry points is read first (the family's or the method's) is named
    assert re.search(r"entry point [\w-]+ = rlt_demo_plugin:\w+ of rlt-demo-plugin", proc.stderr)
    assert "broken plugin" in proc.stderr
    assert not (tmp_path / "e").exists()


CLASH = """
[rl_transfer.methods]
critic-only = rlt_demo_plugin:CriticOnly
policy = rlt_demo_plugin:Dup
"""


def test_a_plugin_taking_a_builtin_name_fails_every_command_the_same_way(tmp_path):
    """Not only when its own name is asked for: any method look-up reads every entry point."""
    env = _install_plugin(tmp_path)
    (tmp_path / "rlt_demo_plugin-0.1.dist-info/entry_points.txt").write_text(CLASH)
    for args in (["methods"], ["run", "--methods", "value", "--out", "e"]):
        proc = _cli(env, tmp_path, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert "entry point policy = rlt_demo_plugin:Dup of rlt-demo-plugin" in proc.stderr
        assert "is taken by rl_transfer.methods.policy.PolicyTransfer" in proc.stderr
    assert not (tmp_path / "e").exists()


def test_merged_weight_transfers_keep_each_members_hooks_and_refuse_clashing_knobs():
    from agents import get_adapter
    from rl_transfer.errors import SpecError
    from rl_transfer.methods import _REGISTRY, Knob, get_method, register_method
    from rl_transfer.methods.weights import WeightTransfer

    class LowLR(WeightTransfer):
        name = "value-lowlr"
        doc = "the critic, fine-tuned with a lower learning rate"
        parts = ("value",)
        knobs = {"factor": Knob(0.1, 0.01, 1.0, "learning-rate factor")}

        def hyperparam_overrides(self, adapter, hyperparams):
            return {"learning_rate": 3e-4 * 0.1}

        def after_learning(self, run, steps):
            return {"value_lowlr": {"steps": steps}}

    class Clash(WeightTransfer):
        name = "clash"
        doc = "a knob named like finetune's"
        parts = ("value",)
        knobs = {"optimizer": Knob(0.0, 0.0, 1.0, "clashes", flag=True)}

    register_method(LowLR)
    register_method(Clash)
    register_method(LowLR)  # the same class again (a re-run cell): accepted
    try:
        both = get_method("policy+value-lowlr")
        assert both.parts == ("policy", "value")  # one copy of both parts
        assert both.hyperparam_overrides(get_adapter("ppo"), {}) == {"learning_rate": 3e-4 * 0.1}
        assert both.after_learning(None, 7) == {"value_lowlr": {"steps": 7}}
        assert both.settings_from({"value-lowlr": {"factor": 0.5}}) == {
            "factor": 0.5,
            "vecnormalize": "carry",  # every method with a source has it, one value per run
        }
        with pytest.raises(SpecError, match="finetune and clash both have a knob 'optimizer'"):
            get_method("finetune+clash")
    finally:
        del _REGISTRY["value-lowlr"], _REGISTRY["clash"]


IN_MAIN = """
from rl_transfer import Experiment
from rl_transfer.methods import register_method
from rl_transfer.methods.policy import PolicyTransfer

if __name__ == "__main__":
    @register_method
    class Hidden(PolicyTransfer):
        name = "hidden"
        doc = "defined where a spawned worker cannot import it"

    result = Experiment(
        methods=["hidden"], seeds=1, source_steps=256, target_steps=512, eval_every=256,
        eval_episodes=2, workers=2, out="exp", source_cache="src", quiet=True,
    ).run()
    print(result.failed[0]["error"])
"""


def test_a_method_a_worker_cannot_import_fails_its_runs_with_what_to_do(tmp_path):
    (tmp_path / "study.py").write_text(IN_MAIN)
    proc = subprocess.run(
        [sys.executable, "study.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "a worker process cannot load the job" in proc.stdout
    assert "importable module" in proc.stdout
    assert "Traceback" not in proc.stderr
    run = read_json(tmp_path / "exp/cartpole-long-pole/ppo/hidden/seed_0/run.json")
    assert run["status"] == "failed" and "attempts" not in run


def test_the_plugin_doc_examples_run_and_combine(tmp_path):
    """docs/plugins.md's methods, as written there, in a program's own module: alone and
    combined, the report lists the tensors of both copies."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    (tmp_path / "doc_methods.py").write_text(
        "\n".join(re.findall(r"```python\n(.*?)```", doc, re.S))
    )
    (tmp_path / "study.py").write_text(
        textwrap.dedent(
            """
            from doc_methods import CriticOnly, NoisyPolicy
            from rl_transfer import Experiment
            from rl_transfer.methods import register_method

            register_method(CriticOnly)
            register_method(NoisyPolicy)
            if __name__ == "__main__":
                result = Experiment(
                    methods=["noisy-policy", "critic-only+noisy-policy"],
                    knobs={"noisy-policy": {"std": 0.05}},
                    seeds=1, source_steps=256, target_steps=512, eval_every=256,
                    eval_episodes=2, workers=2, out="exp", source_cache="src", quiet=True,
                ).run()
                assert not result.failed, result.failed
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "study.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    runs = tmp_path / "exp/cartpole-long-pole/ppo"
    alone = read_json(runs / "noisy-policy/seed_0/transfer_report.json")
    both = read_json(runs / "critic-only+noisy-policy/seed_0/transfer_report.json")
    assert alone["noisy_policy"] == {"std": 0.05, "tensors": 6}
    assert [t["name"] for t in alone["reinitialised"]] == [  # the critic, left fresh
        "mlp_extractor.value_net.0.weight",
        "mlp_extractor.value_net.0.bias",
        "mlp_extractor.value_net.2.weight",
        "mlp_extractor.value_net.2.bias",
        "value_net.weight",
        "value_net.bias",
    ]
    copied = {t["name"] for t in both["copied"]}
    assert any("value_net" in n for n in copied) and any("policy_net" in n for n in copied)
    assert both["reinitialised"] == []
