"""Every algorithm x method cell the adapters support runs end to end, and moves what it says."""

import pytest
import torch
from conftest import cli_forked, read_json, run_exp

from agents import ADAPTERS, get_adapter
from envs import get_pair
from rl_transfer.methods import METHODS

DISCRETE = ("ppo", "a2c", "dqn")
CONTINUOUS = ("ppo", "a2c", "sac", "td3")
TRANSFER = [m for m in METHODS if m != "scratch"]
# rollouts longer than 200 steps with the yml's hyperparameters: n_steps * n_envs, train_freq
ROLLOUT = {
    ("ppo", "pendulum-heavy"): 256,  # with HYPERPARAMS below; SB3's default n_steps is 2048
    ("ppo", "cartpole-long-pole"): 256,
    ("dqn", "cartpole-long-pole"): 256,
}
# PPO on pendulum with SB3's defaults (n_steps 2048, run by the catalog test in test_cli.py)
# would take 4096 steps and 640 updates per arm here; a 256-step rollout moves the same parts
HYPERPARAMS = {("ppo", "pendulum-heavy"): ["--hyperparams", "n_steps:256"]}


def _model(algo, pair, seed):
    adapter = get_adapter(algo)
    family = pair.target.family
    hp = {**adapter.hyperparams(family), "policy_kwargs": {"net_arch": [16, 16]}}
    return adapter, adapter.make_model(pair.make_target, hp, seed)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_off_policy_actor_critic_targets_equal_the_copied_networks(algo):
    pair = get_pair("pendulum-heavy")
    adapter, src = _model(algo, pair, 0)
    _, dst = _model(algo, pair, 1)
    record = adapter.copy_parts(src, dst, ["policy", "value"])
    state, source = dst.policy.state_dict(), src.policy.state_dict()
    for c in record.copied:
        assert torch.equal(state[c["name"]], source[c["name"]])
    for s in record.synced:  # target network == the freshly copied online network
        assert torch.equal(state[s["name"]], source[s["from"]])
    synced_prefixes = {s["name"].split(".")[0] for s in record.synced}
    assert synced_prefixes == {"critic_target"} | ({"actor_target"} if algo == "td3" else set())


UNSUPPORTED = {
    "ppo": {"reuse", "replay"},
    "a2c": {"reuse", "replay"},
    "dqn": {"kickstart"},
    "sac": {"feature", "kickstart"},
    "td3": {"feature", "kickstart"},
}
"""Written out by hand (not read from the registry that generates the doc): what each algorithm
lacks. on-policy learners keep no replay buffer; DQN, SAC and TD3 have no actor-critic loss to
add kickstarting's term to; SAC's and TD3's MLPs have no trunk shared by their heads."""


@pytest.mark.parametrize("algo", list(UNSUPPORTED))
def test_support_matrix_and_its_doc_match_the_algorithms(algo):
    from test_docs import DOCS

    refused = {m for m in TRANSFER if METHODS[m].missing(ADAPTERS[algo])}
    assert refused == UNSUPPORTED[algo]
    section = (DOCS / "methods.md").read_text().split(f"## {algo} (")[1].split("\n## ")[0]
    rows = {line.split("`")[1]: line for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == set(METHODS)
    assert {m for m, line in rows.items() if "not supported" in line} == UNSUPPORTED[algo]


@pytest.mark.parametrize(
    "algo, pair",
    [(a, "cartpole-long-pole") for a in DISCRETE] + [(a, "pendulum-heavy") for a in CONTINUOUS],
)
def test_every_supported_cell_runs_through_the_cli(tmp_path, algo, pair):
    supported = [m for m in TRANSFER if not METHODS[m].missing(ADAPTERS[algo])]
    proc = run_exp(
        tmp_path,
        "--pair",
        pair,
        "--algo",
        algo,
        "--methods",
        ",".join(supported),
        "--seeds",
        "1",
        "--source-steps",
        "200",
        "--target-steps",
        # jsrl's guide needs a budget of more than one rollout (env steps between updates)
        str(max(200, ROLLOUT.get((algo, pair), 0) + 44)),
        "--eval-every",
        "100",
        "--eval-episodes",
        "1",
        "--workers",
        "2",
        "--quiet",
        "--method-arg",
        "finetune.optimizer=1",
        *HYPERPARAMS.get((algo, pair), []),
    )
    assert proc.returncode == 0, proc.stderr
    optimizers = read_json(tmp_path / f"exp/{pair}/{algo}/finetune/seed_0/transfer_report.json")
    assert any(o["carried"] for o in optimizers["optimizer_state"])
    for method in supported:
        run = tmp_path / "exp" / pair / algo / method / "seed_0"
        assert read_json(run / "run.json")["status"] == "done"
        report = read_json(run / "transfer_report.json")
        moved = ("copied", "shaping", "replay", "jsrl", "reuse", "kickstart")
        assert any(report.get(k) for k in moved)


def test_unsupported_method_is_refused_before_anything_runs(tmp_path):
    proc = cli_forked(
        "run",
        "--pair",
        "pendulum-heavy",
        "--algo",
        "sac",
        "--methods",
        "policy,feature",
        "--out",
        "exp",
        "--source-cache",
        "src",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: method 'feature' is not supported by sac: it needs the part 'trunk'; "
        "algorithms that support it: ppo, a2c, dqn"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--methods", "shaping", "--method-arg", "shaping.scal=1"],
            "method 'shaping' has no knob 'scal'; its knobs: scale, vecnormalize",
        ),
        (
            ["--methods", "policy", "--method-arg", "shaping.scale=1"],
            "--method-arg for 'shaping', which is not among the methods (policy)",
        ),
        (
            ["--methods", "shaping", "--method-arg", "shaping.scale=-1"],
            "shaping.scale = -1 is outside [0, 100]",
        ),
        (["--methods", "shaping", "--method-arg", "shaping"], "expected METHOD.KNOB=VALUE"),
        (
            ["--methods", "kickstart", "--method-arg", "kickstart.weight=0"],
            "kickstart.weight = 0 would transfer nothing; use a value in (0, 100]",
        ),
        (
            ["--methods", "finetune", "--method-arg", "finetune.optimizer=0.5"],
            "finetune.optimizer is a switch: 0 or 1, got '0.5'",
        ),
        (
            ["--methods", "jsrl", "--method-arg", "jsrl.horizon=0"],
            "jsrl.horizon = 0 is outside [1, 10000]",
        ),
        (
            ["--algo", "dqn", "--methods", "replay", "--method-arg", "replay.fraction=0"],
            "replay.fraction = 0 would transfer nothing; use a value in (0, 1]",
        ),
        (["--methods", "policy+scratch"], "not scratch"),
        (["--methods", "policy+polcy"], "unknown method 'polcy'"),
    ],
)
def test_bad_method_args_one_line_exit_2(tmp_path, args, message):
    proc = cli_forked("run", *args, "--out", "exp", "--source-cache", "src", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
