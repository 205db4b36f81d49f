"""VecNormalize carried on purpose: zoo's ``normalize`` read as zoo reads it, the statistics
file zoo pairs with a model, and a normalized source transferred with each statistics choice
(carry, fresh, freeze), checked by value against stable-baselines3's own normalization."""

import pickle
import shutil

import gymnasium
import numpy as np
import pytest
import torch
from conftest import read_json
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import envs
from agents import get_adapter
from agents.normalize import vecnormalize_kwargs
from agents.sb3 import trained_with_vecnormalize
from rl_transfer.errors import SpecError
from rl_transfer.evaluation import Evaluator
from rl_transfer.io import SOURCE_CURVE_FILE
from rl_transfer.methods import get_method
from rl_transfer.methods.reuse import PolicyReuse
from rl_transfer.normalization import (
    Side,
    SourceInputs,
    check_spec,
    load_statistics,
    paired_statistics,
    statistics_problem,
)
from rl_transfer.spec import spec_from
from rl_transfer.train import SourceJob, TargetJob, train_source, train_target

PAIR = envs.get_pair("cartpole-long-pole")
HP = {
    "n_envs": 2,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 2,
    "gamma": 0.98,
    "policy_kwargs": {"net_arch": [16]},
    "normalize": True,
}


def _source_job(folder, hyperparams=HP, imported=None, algo="ppo", steps=512):
    return SourceJob(
        key=folder.name,
        pair=PAIR,
        algo=algo,
        seed=0,
        steps=steps,
        eval_episodes=3,
        hyperparams=hyperparams,
        dir=folder,
        imported=imported,
        eval_every=256,
    )


def _target(folder, source, method="policy", knobs=None, hyperparams=HP, steps=256):
    job = TargetJob(
        pair=PAIR,
        algo=source.algo if source else "ppo",
        method=method,
        seed=0,
        target_steps=steps,
        eval_every=steps,
        eval_episodes=3,
        hyperparams=hyperparams,
        dir=folder,
        source=source,
        knobs=knobs or {},
    )
    info = train_target(job)
    assert info["status"] == "done", info.get("traceback")
    return info, read_json(folder / "transfer_report.json")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A PPO source trained 512 steps on cartpole with normalize: true."""
    job = _source_job(tmp_path_factory.mktemp("norm") / "source")
    info = train_source(job)
    assert info["status"] == "done", info
    return job


def _sb3_evaluation(model, stats_path, make_env=PAIR.make_target, episodes=3):
    """The fixed evaluation episodes of ``model`` on observations normalized by SB3's own
    ``VecNormalize.normalize_obs`` with the statistics in ``stats_path``."""
    vn = VecNormalize.load(str(stats_path), DummyVecEnv([make_env]))
    act = get_adapter("ppo").act
    evaluator = Evaluator(make_env, episodes, act=lambda m, obs: act(m, vn.normalize_obs(obs)))
    returns, _ = evaluator.evaluate(model)
    evaluator.close()
    return returns


def test_normalize_is_read_as_zoo_reads_it():
    assert vecnormalize_kwargs({}) is None
    assert vecnormalize_kwargs({"normalize": False}) is None
    assert vecnormalize_kwargs({"normalize": True}) == {}
    assert vecnormalize_kwargs({"normalize": True, "gamma": 0.98}) == {"gamma": 0.98}
    for text in (
        "{'norm_obs': True, 'norm_reward': False}",
        "dict(norm_obs=True, norm_reward=False)",
    ):
        assert vecnormalize_kwargs({"normalize": text, "gamma": 0.9}) == {
            "norm_obs": True,
            "norm_reward": False,
            "gamma": 0.9,  # the algorithm's gamma replaces the mapping's, as in zoo
        }
    with pytest.raises(SpecError, match="unknown VecNormalize argument 'clip'"):
        vecnormalize_kwargs({"normalize": {"clip": 5.0}})
    with pytest.raises(SpecError, match="is not true, false or a mapping"):
        vecnormalize_kwargs({"normalize": "__import__('os').system('true')"})  # never evaluated
    with pytest.raises(SpecError, match="norm_obs must be true or false"):
        vecnormalize_kwargs({"normalize": {"norm_obs": "yes"}})
    model = get_adapter("ppo").make_model(PAIR.make_target, {**HP, "gamma": 0.9}, 0)
    vn = model.get_vec_normalize_env()
    assert vn.training and vn.norm_obs and vn.norm_reward and vn.gamma == 0.9


def _pkl(path, training=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    vn = VecNormalize(DummyVecEnv([lambda: gymnasium.make("CartPole-v1")]), training=training)
    vn.save(str(path))
    return path


def test_the_statistics_file_is_the_one_zoo_pairs_with_the_model(tmp_path):
    run = tmp_path / "ppo" / "CartPole-v1_1"
    final = _pkl(run / "CartPole-v1" / "vecnormalize.pkl")
    checkpoint = _pkl(run / "rl_model_1000_steps.zip").with_name(
        "rl_model_vecnormalize_1000_steps.pkl"
    )
    _pkl(checkpoint)
    assert paired_statistics(run / "CartPole-v1.zip") == final
    assert paired_statistics(run / "best_model.zip") == final  # zoo's enjoy --load-best
    assert paired_statistics(run / "rl_model_1000_steps.zip") == checkpoint
    with pytest.raises(SpecError, match="its own statistics at step 2000 are not beside it"):
        paired_statistics(run / "rl_model_2000_steps.zip")  # the run's final ones are not its own
    ours = _pkl(tmp_path / "target" / "vecnormalize.pkl")
    assert paired_statistics(tmp_path / "target" / "model.zip") == ours
    # files of other models are not this model's: a clean model next to them has none
    loose = tmp_path / "loose"
    _pkl(loose / "rl_model_vecnormalize_5000_steps.pkl")
    _pkl(loose / "Other-v1" / "vecnormalize.pkl")
    assert paired_statistics(loose / "clean.zip") is None
    assert paired_statistics(loose / "best_model.zip") is None  # not a zoo run folder


def test_source_saves_its_statistics_and_each_checkpoints(source):
    info = read_json(source.dir / "run.json")
    assert info["normalization"]["from"] == "trained" and info["normalization"]["norm_obs"]
    saved = load_statistics(source.dir / "vecnormalize.pkl")
    assert saved.obs_rms.count == info["normalization"]["obs_count"] > 512
    steps = sorted(int(p.name.split("_")[1]) for p in (source.dir / "checkpoints").glob("pol*"))
    counts = []
    for t in steps:
        counts.append(load_statistics(source.dir / f"checkpoints/vecnormalize_{t}_steps.pkl"))
    assert steps == [0, 256] and counts[0].obs_rms.count < counts[1].obs_rms.count


def test_the_source_applies_its_own_statistics_inside_its_policy(source):
    """Raw observations in, the source's statistics applied in its features extractors: the
    same greedy actions, values and distributions as SB3's normalized path, bit for bit."""
    adapter = get_adapter("ppo")
    stats = load_statistics(source.dir / "vecnormalize.pkl")
    plain, hooked = (adapter.load(source.dir / "model.zip") for _ in range(2))
    inputs = SourceInputs(hooked, stats)
    raw = np.stack([PAIR.make_target().observation_space.sample() for _ in range(64)]) * 0.3
    normalized = stats.normalize_obs(raw)
    np.testing.assert_array_equal(adapter.act(hooked, raw), adapter.act(plain, normalized))
    np.testing.assert_array_equal(
        adapter.state_value(hooked, raw), adapter.state_value(plain, normalized)
    )
    with torch.no_grad(), inputs.bypass():  # inputs normalized already pass unchanged
        a = hooked.policy.get_distribution(torch.as_tensor(normalized)).distribution.logits
        b = plain.policy.get_distribution(torch.as_tensor(normalized)).distribution.logits
    assert torch.equal(a, b)
    inputs.remove()
    np.testing.assert_array_equal(adapter.act(hooked, normalized), adapter.act(plain, normalized))


@pytest.mark.parametrize("choice", ["carry", "freeze"])
def test_policy_arm_at_t0_is_the_source_on_the_target(source, tmp_path, choice):
    """With carried or frozen statistics the policy arm's first evaluation equals the source
    evaluated on the target with its own statistics (SB3's VecNormalize.normalize_obs)."""
    knobs = {} if choice == "carry" else {"policy": {"vecnormalize": choice}}  # carry: default
    info, report = _target(tmp_path / choice, source, knobs=knobs)
    first = np.load(tmp_path / choice / "evaluations.npz")["results"][0]
    on_target = np.load(tmp_path / choice / SOURCE_CURVE_FILE)["results"][-1]
    model = get_adapter("ppo").load(source.dir / "model.zip")
    expected = _sb3_evaluation(model, source.dir / "vecnormalize.pkl")
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(on_target, expected)
    norm = report["normalization"]
    assert info["knobs"]["vecnormalize"] == norm["statistics"] == choice
    assert info["normalization"].startswith(f"{choice}: ")
    src = load_statistics(source.dir / "vecnormalize.pkl")
    assert norm["start"]["obs_count"] == float(src.obs_rms.count)
    end = load_statistics(tmp_path / choice / "vecnormalize.pkl")  # saved beside model.zip
    if choice == "freeze":  # never updated: the source's, bit for bit
        assert not norm["start"]["training"] and norm["end"] == norm["start"]
        np.testing.assert_array_equal(end.obs_rms.mean, src.obs_rms.mean)
        np.testing.assert_array_equal(end.obs_rms.var, src.obs_rms.var)
    else:  # updated with every target observation from the source's
        assert norm["end"]["obs_count"] == norm["start"]["obs_count"] + 256 + 2  # + first reset
        assert end.obs_rms.count == norm["end"]["obs_count"]


def test_fresh_statistics_and_scratch_start_new(source, tmp_path):
    _, fresh = _target(tmp_path / "fresh", source, knobs={"policy": {"vecnormalize": "fresh"}})
    _, scratch = _target(tmp_path / "scratch", None, method="scratch")
    for report, doc in ((fresh, "started from fresh"), (scratch, "scratch always starts fresh")):
        norm = report["normalization"]
        assert norm["statistics"] == "fresh" and norm["doc"].startswith(doc)
        assert norm["start"]["obs_count"] == pytest.approx(1e-4) and norm["start"]["training"]
        assert norm["source_statistics"] is None
        assert norm["end"]["obs_count"] == pytest.approx(258 + 1e-4)
    assert "queried on raw observations" in fresh["normalization"]["source"]
    assert scratch["normalization"]["source"] is None


def test_source_curve_uses_each_checkpoints_own_statistics(source, tmp_path):
    _target(tmp_path / "run", source)
    curve = np.load(tmp_path / "run" / SOURCE_CURVE_FILE)
    assert list(curve["timesteps"]) == [0, 256, 512]
    model = get_adapter("ppo").load(source.dir / "model.zip")
    for row, t in enumerate((0, 256)):
        weights = torch.load(source.dir / f"checkpoints/policy_{t}_steps.pt", weights_only=True)
        model.policy.load_state_dict(weights)
        stats = source.dir / f"checkpoints/vecnormalize_{t}_steps.pkl"
        np.testing.assert_array_equal(curve["results"][row], _sb3_evaluation(model, stats))


def test_kickstart_reads_the_learners_normalized_minibatch_with_frozen_statistics(source, tmp_path):
    """policy+kickstart with frozen statistics: the student starts as the source and both read
    the same normalized observations, so the first KL is exactly 0 (a teacher normalizing
    them a second time would disagree)."""
    knobs = {"kickstart": {"vecnormalize": "freeze"}}
    _, report = _target(tmp_path / "ks", source, method="policy+kickstart", knobs=knobs)
    assert report["kickstart"]["first_kl"] == 0.0 and report["kickstart"]["updates_with_term"]
    assert report["normalization"]["statistics"] == "freeze"
    spec = spec_from(methods=["kickstart"], out=str(tmp_path / "exp"))
    with pytest.raises(SpecError, match=r"pass --knob kickstart.vecnormalize=freeze$"):
        check_spec(spec, lambda pair, algo, kind: HP)


def test_what_cannot_be_made_right_is_refused_before_running(tmp_path):
    norm, raw = Side(True, True), Side(False, False)
    policy, jsrl = get_method("policy"), get_method("jsrl")
    assert statistics_problem(policy, "carry", norm, norm, "the source") is None
    assert statistics_problem(jsrl, "carry", raw, norm, "the source") is None  # queried w/ own
    assert "do not normalize observations: method 'policy' copies weights" in statistics_problem(
        policy, "carry", raw, norm, "the source"
    )
    assert "copies weights that expect raw observations" in statistics_problem(
        policy, "fresh", norm, raw, "the source"
    )
    assert statistics_problem(jsrl, "freeze", norm, raw, "src").endswith(
        "src has no VecNormalize statistics; pass --knob jsrl.vecnormalize=fresh"
    )
    assert statistics_problem(jsrl, "fresh", norm, raw, "src") is None
    with pytest.raises(SpecError, match="policy.vecnormalize must be one of carry, fresh, freeze"):
        get_method("policy").settings({"vecnormalize": "keep"})
    both = get_method("policy+shaping")
    given = {"policy": {"vecnormalize": "freeze"}, "shaping": {"vecnormalize": "fresh"}}
    with pytest.raises(SpecError, match="one run of 'policy\\+shaping' has one vecnormalize"):
        both.settings_from(given)
    assert both.settings_from({"shaping": {"vecnormalize": "freeze"}})["vecnormalize"] == "freeze"
    assert "vecnormalize" not in get_method("scratch").knobs


def test_imported_zoo_model_brings_the_statistics_paired_with_it(source, tmp_path):
    run = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    (run / "CartPole-v1").mkdir(parents=True)
    shutil.copy(source.dir / "model.zip", run / "CartPole-v1.zip")
    shutil.copy(source.dir / "vecnormalize.pkl", run / "CartPole-v1" / "vecnormalize.pkl")
    zoo = run / "CartPole-v1.zip"
    out = {"out": str(tmp_path / "exp"), "source_cache": str(tmp_path / "cache")}
    spec_from(source_model=str(zoo), methods=["jsrl"], **out).validate()  # accepted
    # every arm takes the model's normalization, as it takes its architecture ...
    spec = spec_from(source_model=str(zoo), methods=["policy"], **out)
    spec.validate()
    in_force = spec.hyperparams_in_force(spec.pair_objects()[0], "ppo")
    assert in_force["scratch"]["normalize"] == in_force["policy"]["normalize"]
    assert in_force["policy"]["normalize"]["norm_obs"] is True
    # ... unless the user says otherwise: weights that expect normalized inputs get raw ones
    with pytest.raises(SpecError, match=r"do not normalize observations: method 'policy' copies"):
        spec_from(
            source_model=str(zoo), methods=["policy"], hyperparams={"normalize": False}, **out
        ).validate()
    alone = tmp_path / "copied" / "CartPole-v1.zip"  # the same zip without its statistics
    alone.parent.mkdir()
    shutil.copy(zoo, alone)
    with pytest.raises(SpecError, match=r"trained with VecNormalize and its statistics are not"):
        spec_from(source_model=str(alone), methods=["jsrl"], **out).validate()
    # what tells: PPO and A2C keep the raw first observation only under VecNormalize
    ppo = get_adapter("ppo")
    assert trained_with_vecnormalize(ppo.load(zoo)) is True
    raw = ppo.make_model(PAIR.make_source, {**HP, "normalize": False}, 0)
    raw.learn(128)
    assert trained_with_vecnormalize(raw) is False
    assert trained_with_vecnormalize(get_adapter("dqn").make_model(PAIR.make_source, {}, 0)) is None
    # imported, transferred with carried statistics: t = 0 is the zoo model on the target
    imported = _source_job(tmp_path / "imported", imported=zoo)
    assert train_source(imported)["normalization"]["from"] == str(
        run / "CartPole-v1" / "vecnormalize.pkl"
    )
    _target(tmp_path / "policy", imported)
    first = np.load(tmp_path / "policy" / "evaluations.npz")["results"][0]
    model = get_adapter("ppo").load(zoo)
    np.testing.assert_array_equal(
        first, _sb3_evaluation(model, run / "CartPole-v1" / "vecnormalize.pkl")
    )


def _dqn_hp(**extra):
    return {
        "policy_kwargs": {"net_arch": [16]},
        "learning_starts": 50,
        "train_freq": 4,
        "buffer_size": 1000,
        "normalize": True,
        **extra,
    }


def test_off_policy_buffers_hold_raw_observations_and_reuse_acts_on_them(tmp_path):
    """SB3 stores raw observations in the replay buffer under VecNormalize; the replay method
    loads them raw and pi-reuse gives the source the raw observation it normalizes itself."""
    job = _source_job(tmp_path / "dqn", hyperparams=_dqn_hp(), algo="dqn", steps=300)
    assert train_source(job)["status"] == "done"
    adapter = get_adapter("dqn")
    with open(job.dir / "replay_buffer.pkl", "rb") as fh:
        buf = pickle.load(fh)
    stats = load_statistics(job.dir / "vecnormalize.pkl")
    obs = buf.observations[: buf.pos, 0]
    assert np.abs(obs).max() < 3.0  # raw cartpole states: no value near the clip of 10
    assert not np.allclose(obs, stats.normalize_obs(obs))
    info, report = _target(
        tmp_path / "replay", job, method="replay", hyperparams=_dqn_hp(), steps=200
    )
    assert report["replay"]["transitions_loaded"] == 300
    assert info["knobs"]["vecnormalize"] == "carry"
    # pi-reuse, psi = 1 throughout: every action is the source's on the raw observation
    plain, hooked = (adapter.load(job.dir / "model.zip") for _ in range(2))
    SourceInputs(hooked, stats)
    target = adapter.make_model(PAIR.make_target, _dqn_hp(learning_starts=1000), 1)
    assert target.get_vec_normalize_env() is not None
    hook = PolicyReuse(target, hooked, adapter.act, psi=1.0, decay=1.0, seed=0)
    target.learn(200)
    hook.remove()
    stored = target.replay_buffer
    raw = stored.observations[:200, 0]
    np.testing.assert_array_equal(
        stored.actions[:200, 0, 0], adapter.act(plain, stats.normalize_obs(raw))
    )
    assert hook.stats == {"source_actions": 200, "learner_actions": 0}
