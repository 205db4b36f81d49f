"""Env families and pairs: the physics is what the name says."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env

import envs
from envs import ParameterError, UnknownPairError, get_pair, random_policy_return
from envs.families import CARTPOLE


def cartpole_step_by_hand(
    state, action, *, gravity=9.8, masscart=1.0, masspole=0.1, length=0.5, force_mag=10.0, tau=0.02
):
    """Barto, Sutton & Anderson (1983) cart-pole equations, Euler integration (as gymnasium)."""
    x, x_dot, theta, theta_dot = state
    force = force_mag if action == 1 else -force_mag
    total_mass = masscart + masspole
    pml = masspole * length
    c, s = np.cos(theta), np.sin(theta)
    temp = (force + pml * theta_dot**2 * s) / total_mass
    theta_acc = (gravity * s - c * temp) / (length * (4.0 / 3.0 - masspole * c**2 / total_mass))
    x_acc = temp - pml * theta_acc * c / total_mass
    return np.array(
        [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc]
    )


@pytest.mark.parametrize(
    "params", [{"length": 1.0}, {"masspole": 0.5, "masscart": 2.0}, {"force_mag": -10.0}]
)
def test_one_step_matches_equations_of_motion(params):
    env = CARTPOLE.make(params)
    env.reset(seed=3)
    state = np.array([0.05, -0.3, 0.08, 0.4])
    env.unwrapped.state = state.copy()
    obs, *_ = env.step(1)
    expected = cartpole_step_by_hand(state, 1, **params)
    np.testing.assert_allclose(obs, expected.astype(np.float32), rtol=1e-6)
    # and the default physics would give a different step (the parameter matters)
    assert not np.allclose(obs, cartpole_step_by_hand(state, 1), rtol=1e-6)


def test_long_pole_target_is_the_long_pole():
    pair = get_pair("cartpole-long-pole")
    target = pair.make_target()
    u = target.unwrapped
    assert (u.length, u.total_mass, u.polemass_length) == (1.0, 1.1, pytest.approx(0.1))
    target.reset(seed=0)
    state = np.array([0.0, 0.1, -0.05, 0.2])
    u.state = state.copy()
    obs, *_ = target.step(0)
    np.testing.assert_allclose(
        obs, cartpole_step_by_hand(state, 0, length=1.0).astype(np.float32), rtol=1e-6
    )


def test_registered_with_gymnasium_namespace():
    env = gymnasium.make("rl_transfer/CartPole-v1", length=1.5)
    assert env.unwrapped.length == 1.5 and env.unwrapped.polemass_length == pytest.approx(0.15)
    assert env.spec.max_episode_steps == 500


def test_parameter_reaches_every_vector_worker():
    vec = make_vec_env(lambda: CARTPOLE.make({"length": 1.0}), n_envs=4, seed=0)
    assert [e.unwrapped.length for e in vec.envs] == [1.0] * 4
    assert [e.unwrapped.polemass_length for e in vec.envs] == [pytest.approx(0.1)] * 4


def test_unknown_parameter_names_closest_first():
    with pytest.raises(ParameterError, match=r"'lenght'.*valid parameters: length"):
        CARTPOLE.make({"lenght": 1.0})


def test_out_of_bounds_parameter_names_bounds():
    with pytest.raises(ParameterError, match=r"'length'.*outside its bounds \[0.1, 3.0\] m"):
        CARTPOLE.make({"length": 30.0})
    with pytest.raises(ParameterError, match="must be a number"):
        CARTPOLE.make({"length": "long"})


def test_every_catalog_variant_passes_env_checker_and_is_deterministic():
    for pair in envs.list_pairs():
        for variant in (pair.source, pair.target):
            check_env(variant.make().unwrapped, skip_render_check=True)
            rollouts = []
            for _ in range(2):
                env = variant.make()
                obs, _ = env.reset(seed=7)
                env.action_space.seed(7)
                traj = [obs]
                for _ in range(50):
                    obs, r, term, trunc, _ = env.step(env.action_space.sample())
                    traj.append(obs)
                    if term or trunc:
                        obs, _ = env.reset()
                rollouts.append(np.array(traj))
            np.testing.assert_array_equal(rollouts[0], rollouts[1])


def test_catalog_r_min_is_the_measured_random_return():
    pair = get_pair("cartpole-long-pole")
    assert random_policy_return(pair.target, episodes=1000, seed=0) == pytest.approx(pair.r_min)


def test_unknown_pair_suggests_close_names():
    with pytest.raises(UnknownPairError, match="did you mean cartpole-long-pole"):
        get_pair("cartpole-longpole")


def test_register_pair_validates_and_cleans_up():
    try:
        p = envs.register_pair(
            "test-heavy-cart",
            source=("cartpole", {}),
            target=("cartpole", {"masscart": 3.0}),
            threshold=475.0,
        )
        assert p.r_max == 500.0 and 15 < p.r_min < 40 and "measured" in p.r_min_note
        assert p.differences() == {"masscart": (1.0, 3.0)}
        with pytest.raises(envs.PairError, match="already registered"):
            envs.register_pair(
                "test-heavy-cart", source=("cartpole", {}), target=("cartpole", {}), threshold=1.0
            )
    finally:
        envs.unregister_pair("test-heavy-cart")
    with pytest.raises(ParameterError):
        envs.register_pair(
            "test-bad", source=("cartpole", {}), target=("cartpole", {"mass": 2}), threshold=1.0
        )
    with pytest.raises(UnknownPairError):
        get_pair("test-bad")
