"""Each method checked by value: what moved, what stayed frozen, the shaped reward."""

import numpy as np
import pytest
import torch
from conftest import TINY, cli, read_json

import envs
from agents import get_adapter
from rl_transfer.shaping import PotentialShaping


@pytest.fixture(scope="module")
def methods_experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    proc = cli(
        "run",
        *TINY,
        "--methods",
        "feature,shaping,policy+shaping",
        "--method-arg",
        "shaping.scale=0.5",
        "--out",
        "exp",
        "--source-cache",
        "src",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    return root / "exp" / "cartpole-long-pole" / "ppo"


def _source(run_dir):
    report = read_json(run_dir / "transfer_report.json")
    return get_adapter("ppo").load(f"{report['source']['dir']}/model.zip"), report


def test_feature_trunk_is_frozen_bit_identical_after_training(methods_experiment):
    run = methods_experiment / "feature" / "seed_0"
    source, report = _source(run)
    trained = get_adapter("ppo").load(run / "model.zip").policy.state_dict()
    src = source.policy.state_dict()
    frozen = {f["name"] for f in report["frozen"]}
    assert frozen == {k for k in trained if k.startswith("mlp_extractor.")}
    for key in frozen:  # 768 steps of PPO updates later, the trunk is the source's, bit for bit
        assert torch.equal(trained[key], src[key]), key
    for key in ("action_net.weight", "value_net.weight"):  # the heads were trained from fresh
        assert not torch.equal(trained[key], src[key])


def test_shaping_first_reward_by_hand(methods_experiment):
    run = methods_experiment / "shaping" / "seed_0"
    source, report = _source(run)
    assert report["shaping"] == {
        "potential": "source's value estimate (adapter.state_value)",
        "gamma": 0.98,
        "scale": 0.5,
        "terminal_potential": 0.0,
    }
    assert report.get("copied", []) == []  # shaping alone moves no weight
    adapter = get_adapter("ppo")
    pair = envs.get_pair("cartpole-long-pole")

    def phi(obs):
        return float(adapter.state_value(source, obs[None])[0])

    env = PotentialShaping(pair.make_target(), phi, gamma=0.98, scale=0.5)
    plain = pair.make_target()
    s0, _ = env.reset(seed=3)
    plain.reset(seed=3)
    s1, shaped, *_ = env.step(1)
    _, r, *_ = plain.step(1)
    with torch.no_grad():
        v = source.policy.predict_values(torch.as_tensor(np.stack([s0, s1]))).numpy().ravel()
    assert shaped == pytest.approx(r + 0.5 * (0.98 * v[1] - v[0]), rel=1e-6)
    # at a terminal state the potential is 0: the last term is -scale * Phi(s)
    env.unwrapped.state = np.array([0.0, 0.0, 0.5, 0.0])  # pole far past the 12 degree limit
    env._phi = phi(np.array([0.0, 0.0, 0.5, 0.0], np.float32))
    _, shaped, terminated, _, info = env.step(0)
    assert terminated
    assert shaped == pytest.approx(1.0 - 0.5 * env_phi_before(phi), rel=1e-6)
    assert info["reward_unshaped"] == 1.0


def env_phi_before(phi):
    return phi(np.array([0.0, 0.0, 0.5, 0.0], np.float32))


def test_combination_moves_weights_and_shapes(methods_experiment):
    run = methods_experiment / "policy+shaping" / "seed_0"
    report = read_json(run / "transfer_report.json")
    assert report["parts"] == ["policy"] and report["copied"]
    assert report["shaping"]["scale"] == 0.5
    assert read_json(run / "run.json")["method_knobs"] == {"scale": 0.5}
