"""Each method checked by value: what moved, what stayed frozen, the shaped reward."""

import numpy as np
import pytest
import torch
from conftest import TINY, cli_forked, read_json, run_exp

import envs
from agents import get_adapter
from rl_transfer.methods.kickstart import KickstartLoss
from rl_transfer.methods.reuse import PolicyReuse
from rl_transfer.methods.shaping import PotentialShaping


@pytest.fixture(scope="module")
def methods_experiment(tmp_path_factory):
    """One tiny experiment (TINY's budgets, 2 seeds) with every method the tests below train."""
    root = tmp_path_factory.mktemp("methods")
    proc = run_exp(
        root,
        *TINY,
        "--methods",
        "feature,shaping,policy+shaping,jsrl,kickstart",
        "--method-arg",
        "shaping.scale=0.5",
        "--method-arg",
        "jsrl.horizon=1000",
        "--method-arg",
        "kickstart.weight=5",
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


def test_shaping_logs_the_task_return_as_ep_rew_mean(methods_experiment):
    """With shaping, TensorBoard's rollout/ep_rew_mean is the target's own return (cartpole: 1
    per step, so it equals rollout/ep_len_mean) and the shaped return has its own tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rl_transfer.reports import REPORT_EVENTS

    for method in ("shaping", "policy+shaping", "scratch"):
        run = methods_experiment / method / "seed_0"
        (events,) = [p for p in run.glob("events.out.tfevents.*") if p.name != REPORT_EVENTS]
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0}).Reload()
        rew = [(e.step, e.value) for e in acc.Scalars("rollout/ep_rew_mean")]
        length = [(e.step, e.value) for e in acc.Scalars("rollout/ep_len_mean")]
        assert rew and rew == length, method
        if method == "scratch":
            assert "rollout/ep_shaped_rew_mean" not in acc.Tags()["scalars"]
            continue
        shaped = [(e.step, e.value) for e in acc.Scalars("rollout/ep_shaped_rew_mean")]
        assert [s for s, _ in shaped] == [s for s, _ in rew]
        assert any(abs(a - b) > 1e-3 for (_, a), (_, b) in zip(shaped, rew, strict=True))


def env_phi_before(phi):
    return phi(np.array([0.0, 0.0, 0.5, 0.0], np.float32))


def test_combination_moves_weights_and_shapes(methods_experiment):
    run = methods_experiment / "policy+shaping" / "seed_0"
    report = read_json(run / "transfer_report.json")
    assert report["parts"] == ["policy"] and report["copied"]
    assert report["shaping"]["scale"] == 0.5
    assert read_json(run / "run.json")["knobs"] == {"scale": 0.5, "vecnormalize": "carry"}


def _dqn(pair_name, seed, steps=0, n_envs=1):
    adapter = get_adapter("dqn")
    pair = envs.get_pair(pair_name)
    hp = {
        **adapter.hyperparams(pair.target.family),
        "policy_kwargs": {"net_arch": [16]},
        "learning_starts": 50,
        "train_freq": 4,
        "gradient_steps": 1,
        "n_envs": n_envs,
    }
    model = adapter.make_model(pair.make_source, hp, seed)
    if steps:
        model.learn(steps)
    return adapter, model


def test_replay_loads_the_most_recent_source_transitions_by_value(tmp_path):
    adapter, source = _dqn("cartpole-long-pole", 0, steps=300)
    adapter.save_replay(source, tmp_path / "rb.pkl")
    _, target = _dqn("cartpole-long-pole", 1)
    info = adapter.load_replay(target, tmp_path / "rb.pkl", fraction=0.5)
    assert info == {
        "transitions_loaded": 150,
        "source_transitions": 300,
        "target_capacity": 100_000,
    }
    src, dst = source.replay_buffer, target.replay_buffer
    for name in ("observations", "next_observations", "actions", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(dst, name)[:150], getattr(src, name)[150:300])
    assert dst.pos == 150 and not dst.full


def test_replay_relabels_rewards_with_the_target_reward(tmp_path):
    from envs.families import CARTPOLE

    adapter, source = _dqn("cartpole-long-pole", 0, steps=300)
    adapter.save_replay(source, tmp_path / "rb.pkl")
    _, target = _dqn("cartpole-long-pole", 1)
    adapter.load_replay(target, tmp_path / "rb.pkl")
    params = CARTPOLE.validate({"sutton_barto_reward": True})
    n = adapter.relabel_rewards(
        target, 300, lambda o, a, o2, t: CARTPOLE.reward_fn(params, o, a, o2, t)
    )
    buf = target.replay_buffer
    terminated = (buf.dones[:300] == 1) & (buf.timeouts[:300] == 0)
    assert n == 300 and terminated.any()
    np.testing.assert_array_equal(buf.rewards[:300], np.where(terminated, -1.0, 0.0))


def test_replay_from_another_space_or_env_count_is_refused(tmp_path):
    from agents import TransferError

    adapter, mc = _dqn("mountaincar-strong-engine", 0, steps=100)
    adapter.save_replay(mc, tmp_path / "mc.pkl")
    _, target = _dqn("cartpole-long-pole", 1)
    with pytest.raises(
        TransferError,
        match=r"observation space is Box\(.*\), the target's is "
        r"Box\(.*\): refusing to mix them",
    ):
        adapter.load_replay(target, tmp_path / "mc.pkl")
    _, two = _dqn("cartpole-long-pole", 0, steps=100, n_envs=2)
    adapter.save_replay(two, tmp_path / "two.pkl")
    with pytest.raises(TransferError, match="number of envs is 2, the target's is 1"):
        adapter.load_replay(target, tmp_path / "two.pkl")


def test_replay_is_refused_for_on_policy_algorithms(tmp_path):
    proc = cli_forked(
        "run", "--methods", "replay", "--out", "exp", "--source-cache", "src", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: method 'replay' is not supported by ppo: it needs a replay buffer; "
        "algorithms that support it: dqn, sac, td3"
    )


def test_jsrl_guide_takes_the_first_h_actions_and_they_count(tmp_path):
    from rl_transfer.methods.jsrl import GuideRollIn

    adapter, source = _dqn("cartpole-long-pole", 0, steps=300)
    seen = []

    def guide(obs):
        seen.append(obs.copy())
        return adapter.act(source, obs[None])[0]

    env = GuideRollIn(envs.get_pair("cartpole-long-pole").make_target(), guide, horizon=5)
    obs, _ = env.reset(seed=11)
    assert len(env.last_guide_actions) == 5 and env.pending == 5
    expected = [adapter.act(source, o[None])[0] for o in seen]
    assert env.last_guide_actions == expected  # the first h actions are the source's
    # the learner starts where the guide stopped: replaying the guide's actions gives its obs
    replay = envs.get_pair("cartpole-long-pole").make_target()
    o, _ = replay.reset(seed=11)
    for a in expected:
        o, *_ = replay.step(a)
    np.testing.assert_array_equal(obs, o)
    assert env.take_guide_steps() == 5 and env.pending == 0


def test_jsrl_run_counts_guide_steps_toward_t_and_stays_in_the_budget(methods_experiment):
    """The guide's steps count toward t, and its roll-ins (h up to 1000 here, a 768-step
    budget) are capped so the jsrl arm ends no later than scratch and less than one rollout
    (8 envs x 32 steps) short of it, with the shortfall stated."""
    runs = methods_experiment
    for seed in (0, 1):
        run = runs / f"jsrl/seed_{seed}"
        report = read_json(run / "transfer_report.json")
        assert report["jsrl"]["horizon"] == 1000 and report["jsrl"]["guide_steps"] > 0
        info = read_json(run / "run.json")
        scratch = read_json(runs / f"scratch/seed_{seed}/run.json")
        assert info["knobs"] == {"horizon": 1000.0, "anneal": 0.5, "vecnormalize": "carry"}
        assert scratch["target_steps"] == 768 and scratch["steps_note"] is None
        assert 768 - 256 < info["target_steps"] <= scratch["target_steps"]
        assert (info["steps_note"] is None) == (info["target_steps"] == 768)
        with np.load(run / "evaluations.npz") as ev:
            assert ev["timesteps"][-1] == info["target_steps"]


def test_reuse_with_psi_1_takes_the_source_action_every_step(tmp_path):
    adapter, source = _dqn("cartpole-long-pole", 0, steps=300)
    _, target = _dqn("cartpole-long-pole", 1)
    hook = PolicyReuse(target, source, adapter.act, psi=1.0, decay=1.0, seed=0)
    target.learn(200)
    buf = target.replay_buffer
    greedy = adapter.act(source, buf.observations[:200, 0])
    np.testing.assert_array_equal(buf.actions[:200, 0, 0], greedy)  # stored = executed = source's
    assert hook.stats == {"source_actions": 200, "learner_actions": 0}
    hook.remove()
    assert "_sample_action" not in vars(target)


def test_reuse_probability_decays_within_an_episode_and_resets(tmp_path):
    adapter, source = _dqn("cartpole-long-pole", 0, steps=100)
    _, target = _dqn("cartpole-long-pole", 1)
    hook = PolicyReuse(target, source, adapter.act, psi=1.0, decay=0.0, seed=0)
    target._last_obs = target.env.reset()
    target._sample_action(0, None, 1)  # psi = 1: the source's action
    target._sample_action(0, None, 1)  # psi = 0 after one step: the learner's
    hook.episode_done(np.array([True]))
    target._sample_action(0, None, 1)  # a new episode: psi = 1 again
    assert hook.stats == {"source_actions": 2, "learner_actions": 1}


def test_reuse_run_records_its_actions(dqn_experiment):
    report = read_json(dqn_experiment / "reuse/seed_0/transfer_report.json")
    r = report["reuse"]
    assert r["psi"] == 1.0 and r["decay"] == 0.95
    assert r["source_actions"] + r["learner_actions"] >= 400 and r["source_actions"] > 0


def _ppo(pair_name, seed, algo="ppo"):
    adapter = get_adapter(algo)
    pair = envs.get_pair(pair_name)
    hp = {**adapter.hyperparams(pair.target.family), "policy_kwargs": {"net_arch": [16]}}
    return adapter, adapter.make_model(pair.make_target, hp, seed)


def _grads(model):
    return [None if p.grad is None else p.grad.clone() for p in model.policy.parameters()]


@pytest.mark.parametrize("algo, pair", [("ppo", "cartpole-long-pole"), ("a2c", "pendulum-heavy")])
def test_kickstart_gradient_is_that_of_loss_plus_weighted_kl(algo, pair):
    """SB3's update order (evaluate_actions, zero_grad, backward) with the hook gives exactly the
    gradient of loss + lambda * KL(teacher || student), for Categorical and Gaussian policies."""
    adapter, student = _ppo(pair, 1, algo)
    _, teacher = _ppo(pair, 2, algo)
    student._total_timesteps, student.num_timesteps = 10_000, 0
    obs = torch.as_tensor(np.stack([student.observation_space.sample() for _ in range(8)]))
    actions = torch.as_tensor(np.stack([student.action_space.sample() for _ in range(8)]))

    def loss_grads():
        values, log_prob, _ = student.policy.evaluate_actions(obs, actions)
        loss = -log_prob.mean() + values.pow(2).mean()
        student.policy.optimizer.zero_grad()
        loss.backward()
        return loss, _grads(student)

    _, plain = loss_grads()
    hook = KickstartLoss(student, teacher, weight=0.7, weight_anneal=0.5)
    _, hooked = loss_grads()

    student.policy.optimizer.zero_grad()
    t = teacher.policy.get_distribution(obs).distribution
    s = student.policy.get_distribution(obs).distribution
    kl = torch.distributions.kl_divergence(t, s)
    kl = kl.sum(-1) if kl.dim() > 1 else kl
    (0.7 * kl.mean()).backward()
    by_hand = _grads(student)
    for g_plain, g_hooked, g_kl in zip(plain, hooked, by_hand, strict=True):
        expected = (0 if g_plain is None else g_plain) + (0 if g_kl is None else g_kl)
        torch.testing.assert_close(g_hooked, expected)
    assert hook.updates == 1 and hook.first_kl == pytest.approx(float(kl.mean().detach()))
    hook.remove()
    assert "evaluate_actions" not in vars(student.policy)
    assert "zero_grad" not in vars(student.policy.optimizer)


def test_kickstart_weight_is_annealed_to_zero():
    adapter, student = _ppo("cartpole-long-pole", 1)
    _, teacher = _ppo("cartpole-long-pole", 2)
    hook = KickstartLoss(student, teacher, weight=2.0, weight_anneal=0.5)
    rollout = student.n_steps * student.n_envs  # 256: t is the rollout's first step
    student._total_timesteps = 10_000
    for t, expected in ((rollout, 2.0), (rollout + 2_500, 1.0), (rollout + 5_000, 0.0)):
        student.num_timesteps = t
        assert hook.current_weight() == pytest.approx(expected)
    hook.remove()


def test_kickstart_pulls_the_student_toward_the_source(methods_experiment):
    """Trained with kickstarting, the student's policy ends closer (KL) to the source's than a
    scratch run with the same seed and budget."""
    runs = methods_experiment
    report = read_json(runs / "kickstart/seed_0/transfer_report.json")
    ks = report["kickstart"]
    assert ks["weight"] == 5.0 and ks["updates_with_term"] > 0 and ks["last_weight"] < 5.0
    assert "copied" not in report  # kickstarting starts from fresh weights
    adapter = get_adapter("ppo")
    source = adapter.load(f"{report['source']['dir']}/model.zip")
    kicked = adapter.load(runs / "kickstart/seed_0/model.zip")
    scratch = adapter.load(runs / "scratch/seed_0/model.zip")
    env = envs.get_pair("cartpole-long-pole").make_target()
    obs = torch.as_tensor(np.stack([env.observation_space.sample() * 0.1 for _ in range(256)]))

    def kl_to_source(model):
        t = source.policy.get_distribution(obs).distribution
        s = model.policy.get_distribution(obs).distribution
        return float(torch.distributions.kl_divergence(t, s).mean().detach())

    assert kl_to_source(kicked) < kl_to_source(scratch)
    assert ks["last_kl"] < ks["first_kl"]


def test_kickstart_is_refused_for_off_policy_algorithms(tmp_path):
    proc = cli_forked("run", "--algo", "dqn", "--methods", "kickstart", "--out", "e", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: method 'kickstart' is not supported by dqn: it needs an on-policy actor-critic "
        "loss (PPO's or A2C's update); algorithms that support it: ppo, a2c"
    )


def test_a_run_in_the_callers_process_leaves_its_torch_threads_as_they_were(tmp_path):
    """Training sets torch to one thread (runs share the cores) and gives the caller's setting
    back afterwards, as when a program calls train_source itself."""
    from rl_transfer.train import SourceJob, train_source

    pair = envs.get_pair("cartpole-long-pole")
    adapter = get_adapter("ppo")
    hp = {**adapter.hyperparams(pair.target.family), "n_envs": 1, "n_steps": 64}
    job = SourceJob("k", pair, "ppo", 0, 64, 1, hp, tmp_path / "src", eval_every=None)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        info = train_source(job)
        assert info["status"] == "done" and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_source_pretraining_that_raises_is_a_failed_result_not_a_crash(tmp_path):
    from rl_transfer.train import SourceJob, train_source

    pair = envs.get_pair("pendulum-heavy")  # Box actions: SB3's DQN refuses them
    job = SourceJob("k", pair, "dqn", 0, 64, 1, {}, tmp_path / "src", eval_every=None)
    info = train_source(job)
    assert info["status"] == "failed" and "AssertionError" in info["error"]
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind
