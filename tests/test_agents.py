"""What a weight transfer moves, checked by value."""

from operator import attrgetter

import pytest
import torch

from agents import TransferError, get_adapter
from envs import get_pair
from rl_transfer.errors import SpecError

PAIR = get_pair("cartpole-long-pole")


def _small(adapter, seed, **extra):
    hp = adapter.hyperparams("cartpole")
    hp["policy_kwargs"] = {"net_arch": [16]}
    hp.update(extra)
    return adapter.make_model(PAIR.make_target, hp, seed)


def _state(model):
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


def test_ppo_policy_moves_exactly_the_actor():
    ppo = get_adapter("ppo")
    src, dst = _small(ppo, 0), _small(ppo, 1)
    before, source = _state(dst), _state(src)
    record = ppo.copy_parts(src, dst, ["policy"])
    after = _state(dst)
    copied = {c["name"] for c in record.copied}
    assert copied == {k for k in after if k.startswith(("mlp_extractor.policy_net", "action_net"))}
    for key in after:
        if key in copied:
            assert torch.equal(after[key], source[key])
        else:  # the value function is untouched: still the target's fresh initialisation
            assert torch.equal(after[key], before[key])
            assert key in {r["name"] for r in record.reinitialised}
    # the optimizer carries no state over
    assert dst.policy.optimizer.state_dict()["state"] == {}


def test_ppo_value_moves_exactly_the_critic():
    ppo = get_adapter("ppo")
    src, dst = _small(ppo, 0), _small(ppo, 1)
    record = ppo.copy_parts(src, dst, ["value"])
    names = {c["name"] for c in record.copied}
    assert names and all(n.startswith(("mlp_extractor.value_net", "value_net")) for n in names)
    for n in names:
        assert torch.equal(dst.policy.state_dict()[n], src.policy.state_dict()[n])


def test_dqn_policy_is_value_and_target_network_is_synced():
    dqn = get_adapter("dqn")
    src, dst = _small(dqn, 0), _small(dqn, 1)
    rec_p = dqn.copy_parts(src, dst, ["policy"])
    state = dst.policy.state_dict()
    for key, value in state.items():
        if key.startswith("q_net_target."):
            online = "q_net." + key[len("q_net_target.") :]
            assert torch.equal(value, src.policy.state_dict()[online])
    assert len(rec_p.synced) == len(rec_p.copied) > 0
    assert any("same tensors" in n for n in rec_p.notes)
    assert {c["name"] for c in dqn.copy_parts(src, dst, ["value"]).copied} == {
        c["name"] for c in rec_p.copied
    }


def test_dqn_transferred_arm_does_not_restart_epsilon():
    dqn = get_adapter("dqn")
    hp = dqn.hyperparams("cartpole")
    over = dqn.transfer_overrides(hp)
    assert over == {"exploration_initial_eps": hp["exploration_final_eps"]}
    model = dqn.make_model(PAIR.make_target, {**hp, "policy_kwargs": {"net_arch": [16]}}, 0, over)
    assert model.exploration_initial_eps == pytest.approx(0.04)


def test_shape_mismatch_names_both_sides():
    ppo = get_adapter("ppo")
    src = _small(ppo, 0)
    hp = ppo.hyperparams("cartpole")
    hp["policy_kwargs"] = {"net_arch": [8]}
    dst = ppo.make_model(PAIR.make_target, hp, 0)
    with pytest.raises(TransferError, match=r"source shape \(16, 4\) != target shape \(8, 4\)"):
        ppo.copy_parts(src, dst, ["policy"])


def test_unknown_part_is_refused():
    ppo = get_adapter("ppo")
    m = _small(ppo, 0)
    with pytest.raises(TransferError, match="no part 'replay'"):
        ppo.copy_parts(m, m, ["replay"])


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_optimizer_state_is_fresh_unless_carried(algo):
    """Optimizer state (which SB3's ``load`` would restore) is not carried over unless asked;
    asked, it is equal by value."""
    adapter = get_adapter(algo)
    pair = PAIR if algo != "sac" else get_pair("pendulum-heavy")
    family = pair.target.family
    hp = {**adapter.hyperparams(family), "policy_kwargs": {"net_arch": [16]}}
    if adapter.off_policy:
        hp.update(learning_starts=20, train_freq=1, gradient_steps=1)
    source = adapter.make_model(pair.make_source, hp, 0)
    source.learn(300)
    target = adapter.make_model(pair.make_target, hp, 1)
    adapter.copy_parts(source, target, ["policy", "value"])
    names = [n for n in target._get_torch_save_params()[0] if n != "policy"]
    optimizers = {n: attrgetter(n)(target) for n in names}
    assert all(len(opt.state) == 0 for opt in optimizers.values())  # fresh after a transfer
    settings = {
        n: [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]
        for n, o in optimizers.items()
    }
    for group in attrgetter(names[0])(source).param_groups:
        group["lr"], group["eps"] = 0.123, 0.456  # the source's settings must not come along
    report = adapter.copy_optimizer_state(source, target)
    for n, o in optimizers.items():  # learning rate, betas, eps: still the target's
        assert [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups] == (
            settings[n]
        )
    for entry in report:
        dst, src = optimizers[entry["name"]], attrgetter(entry["name"])(source)
        if not entry["carried"]:  # SAC's entropy coefficient is not a policy tensor
            assert entry["name"] == "ent_coef_optimizer" and len(dst.state) == 0
            continue
        assert entry["step"] > 0 and entry["tensors_with_state"] == len(src.state) > 0
        for d, s in zip(dst.state_dict()["state"].values(), src.state_dict()["state"].values()):
            for key in ("exp_avg", "exp_avg_sq", "square_avg"):
                if key in s:
                    assert torch.equal(d[key], s[key])
    assert any(e["carried"] for e in report)


def test_normalize_wraps_the_training_envs_in_vecnormalize():
    """zoo's normalize: VecNormalize around the vectorised env, the Monitor inside it (the
    episode statistics stay the task's raw returns); a value zoo would not read is a SpecError
    (the spec is wrong), not a transfer error."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecNormalize

    adapter = get_adapter("ppo")
    model = _small(adapter, 0, normalize="{'norm_obs': True, 'norm_reward': False}")
    assert isinstance(model.env, VecNormalize) and model.get_vec_normalize_env() is model.env
    assert model.env.norm_obs and not model.env.norm_reward and model.env.gamma == 0.98
    assert isinstance(model.env.venv.envs[0], Monitor)
    assert _small(adapter, 0).get_vec_normalize_env() is None
    with pytest.raises(SpecError, match="normalize must be true, false or a mapping"):
        _small(adapter, 0, normalize=3)


def test_optimizer_state_of_another_optimizer_class_is_refused():
    adapter = get_adapter("a2c")
    source = _small(adapter, 0, policy_kwargs={"net_arch": [16]})
    target = _small(adapter, 1, use_rms_prop=False)  # Adam instead of RMSprop
    with pytest.raises(TransferError, match="optimizer is RMSprop, the target's Adam"):
        adapter.copy_optimizer_state(source, target)
