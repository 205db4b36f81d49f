"""Evaluations at update boundaries, budgets rounded alike for every arm, clamped schedules:
checked by value on real (tiny) stable-baselines3 training."""

import numpy as np
import pytest
import torch

import envs
from agents import get_adapter
from rl_transfer.evaluation import Evaluator
from rl_transfer.train import TargetJob, train_target


def _job(tmp_path, algo, pair, steps, eval_every, hp, episodes=2, name=None) -> TargetJob:
    adapter = get_adapter(algo)
    p = envs.get_pair(pair)
    return TargetJob(
        pair=p,
        algo=algo,
        method="scratch",
        seed=0,
        target_steps=steps,
        eval_every=eval_every,
        eval_episodes=episodes,
        hyperparams={**adapter.hyperparams(p.target.family), **hp},
        dir=tmp_path / (name or algo),
    )


def _run(job: TargetJob) -> tuple[dict, dict]:
    info = train_target(job)
    assert info["status"] == "done", info.get("traceback")
    with np.load(job.dir / "evaluations.npz") as npz:
        return info, {k: npz[k] for k in npz.files}


OFF = {"learning_starts": 100, "batch_size": 32, "train_freq": 4, "gradient_steps": 2}
# algo, pair, requested steps, eval_every, hyperparameters, steps taken. eval_every divides the
# steps taken: an evaluation inside the last rollout used to stand for the final model.
CASES = {
    "ppo": ("ppo", "cartpole-long-pole", 700, 256, {}, 768),  # rollout: 8 envs x n_steps 32
    "a2c": ("a2c", "cartpole-long-pole", 300, 80, {}, 320),  # rollout: 8 envs x n_steps 5
    "dqn": ("dqn", "cartpole-long-pole", 302, 76, {**OFF, "target_update_interval": 50}, 304),
    "dqn-episodes": (
        "dqn",
        "cartpole-long-pole",
        302,
        151,
        {**OFF, "train_freq": (1, "episode"), "gradient_steps": 8},
        302,
    ),
    "sac": ("sac", "pendulum-heavy", 250, 126, OFF, 252),
    "td3": ("td3", "pendulum-heavy", 250, 126, OFF, 252),
}


@pytest.mark.parametrize("case", list(CASES))
def test_last_evaluation_is_the_saved_model(tmp_path, case):
    """The last row of evaluations.npz is the model after its final update: a fresh evaluation
    of the saved model.zip on the same episode seeds gives the same returns, by value."""
    algo, pair, steps, eval_every, hp, taken = CASES[case]
    hp = {**hp, "policy_kwargs": {"net_arch": [16]}}
    info, ev = _run(_job(tmp_path, algo, pair, steps, eval_every, hp))
    assert info["requested_target_steps"] == steps
    assert info["target_steps"] == taken == ev["timesteps"][-1]
    assert (info["steps_note"] is None) == (taken == steps)
    # rows at the first update boundary at or after each multiple of eval_every
    rollout = info["rollout_steps"]
    if rollout is not None:
        boundaries = {-(-m * eval_every // rollout) * rollout for m in range(1, taken)}
        assert list(ev["timesteps"]) == [0, *sorted(t for t in boundaries if t < taken), taken]
    adapter = get_adapter(algo)
    model = adapter.load(tmp_path / algo / "model.zip")
    torch.set_num_threads(1)  # as in training
    evaluator = Evaluator(envs.get_pair(pair).make_target, 2, act=adapter.act)
    returns, lengths = evaluator.evaluate(model)
    evaluator.close()
    np.testing.assert_array_equal(ev["results"][-1], returns)
    np.testing.assert_array_equal(ev["ep_lengths"][-1], lengths)


def test_evaluation_at_t_follows_the_update_of_the_steps_before(tmp_path):
    """PPO with one update per 64 steps: the row at t = 64 is the model after the first update
    (the final model of a 64-step run with the same seed), not the model of t = 0 (the row an
    evaluation inside the rollout, before its update, gave)."""
    hp = {
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "learning_rate": 1e-3,  # constant: the first update is the same in both runs
        "policy_kwargs": {"net_arch": [16]},
    }
    _, two = _run(_job(tmp_path, "ppo", "pendulum-heavy", 128, 64, hp, name="two"))
    _, one = _run(_job(tmp_path, "ppo", "pendulum-heavy", 64, 64, hp, name="one"))
    assert list(two["timesteps"]) == [0, 64, 128] and list(one["timesteps"]) == [0, 64]
    np.testing.assert_array_equal(two["results"][0], one["results"][0])
    assert not np.array_equal(two["results"][1], two["results"][0])
    np.testing.assert_array_equal(two["results"][1], one["results"][1])


def test_linear_schedules_stop_at_their_final_value():
    """SB3's learn(300) with rollouts of 256 takes 512 steps: progress_remaining ends at
    1 - 512/300 < 0; the last update's learning rate and clip range are 0 (lin_X's final
    value), not negative."""
    adapter = get_adapter("ppo")
    pair = envs.get_pair("cartpole-long-pole")
    hp = {**adapter.hyperparams("cartpole"), "policy_kwargs": {"net_arch": [16]}}
    assert hp["learning_rate"] == "lin_0.001" and hp["clip_range"] == "lin_0.2"
    model = adapter.make_model(pair.make_target, hp, 0)
    model.learn(300)
    progress = model._current_progress_remaining
    assert model.num_timesteps == 512 and progress == pytest.approx(1 - 512 / 300)
    assert [g["lr"] for g in model.policy.optimizer.param_groups] == [0.0]
    assert model.clip_range(progress) == 0.0
    assert model.lr_schedule(0.5) == pytest.approx(0.0005)
    dqn = get_adapter("dqn").make_model(pair.make_target, get_adapter("dqn").hyperparams("x"), 0)
    assert dqn.exploration_schedule(-0.7) == dqn.exploration_final_eps


def test_target_run_ends_its_schedules_at_progress_zero(tmp_path):
    """train_target learns the rounded budget: with 300 requested and rollouts of 256, the
    last update has progress 0, learning rate 0 and clip range 0 (read from the saved model)."""
    hp = {"policy_kwargs": {"net_arch": [16]}}
    info, _ = _run(_job(tmp_path, "ppo", "cartpole-long-pole", 300, 256, hp))
    assert info["target_steps"] == 512 and info["rollout_steps"] == 256
    assert "rounded up to 512, the same for every arm" in info["steps_note"]
    model = get_adapter("ppo").load(tmp_path / "ppo" / "model.zip")
    assert model._current_progress_remaining == 0.0
    assert [g["lr"] for g in model.policy.optimizer.param_groups] == [0.0]
    assert model.clip_range(model._current_progress_remaining) == 0.0


def test_jsrl_with_a_one_rollout_budget_is_refused(tmp_path):
    """A budget of one PPO rollout (8 envs x 32 steps) leaves jsrl's guide no step that would
    not take the run past scratch's 256: the run fails before training and says why."""
    from rl_transfer.train import SourceJob, train_source

    adapter = get_adapter("ppo")
    pair = envs.get_pair("cartpole-long-pole")
    hp = {**adapter.hyperparams("cartpole"), "policy_kwargs": {"net_arch": [16]}}
    source = SourceJob("k", pair, "ppo", 0, 256, 1, hp, tmp_path / "source")
    assert train_source(source)["status"] == "done"
    job = TargetJob(pair, "ppo", "jsrl", 0, 200, 100, 1, hp, tmp_path / "jsrl", source)
    info = train_target(job)
    assert info["status"] == "failed"
    assert info["error"] == (
        "TransferError: jsrl: the budget of 256 steps is one rollout of the learner's (256 env "
        "steps between updates), so it leaves the guide no step; raise --target-steps above 256"
    )
