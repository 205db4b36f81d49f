"""Env families and pairs: the physics is what the name says."""

import re

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env

import envs
import envs.catalog
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
        for make in (pair.make_source, pair.make_target):
            check_env(make().unwrapped, skip_render_check=True)
            if pair.mappings:
                check_env(make(), skip_render_check=True)
            rollouts = []
            for _ in range(2):
                env = make()
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


@pytest.mark.parametrize("pair", envs.catalog.CATALOG, ids=lambda p: p.name)
def test_catalog_r_min_is_the_measured_random_return(pair):
    measured = random_policy_return(pair, episodes=pair.r_min_episodes, seed=0)
    assert measured == pytest.approx(pair.r_min, abs=1e-3)
    assert pair.r_min < pair.r_max and pair.description and "threshold" in pair.description


def test_catalog_covers_the_kinds_of_pair():
    names = {p.name for p in envs.list_pairs()}
    assert len(envs.catalog.CATALOG) >= 12
    assert {
        "cartpole-reversed-force",
        "cartpole-sutton-barto-reward",
        "mountaincar-to-continuous",
        "hopper-heavy",
        "lunarlander-windy",
        "lunarlander-low-gravity",
        "pendulum-heavy",
        "acrobot-heavy-link",
    } <= names
    families = {p.target.family for p in envs.catalog.CATALOG}
    assert families == set(envs.families.BUILTIN)


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


def test_mountaincar_step_matches_equations_of_motion():
    env = envs.get_family("mountaincar").make({"force": 0.0013, "gravity": 0.003})
    env.reset(seed=0)
    env.unwrapped.state = np.array([-0.3, 0.01])
    obs, *_ = env.step(2)
    velocity = 0.01 + (2 - 1) * 0.0013 + np.cos(3 * -0.3) * (-0.003)
    np.testing.assert_allclose(obs, np.array([-0.3 + velocity, velocity], np.float32), rtol=1e-6)


def test_pendulum_step_matches_equations_of_motion():
    m, length, g, dt = 1.3, 0.8, 9.0, 0.05
    env = envs.get_family("pendulum").make({"m": m, "l": length, "g": g})
    env.reset(seed=0)
    th, thdot, u = 0.4, -1.0, 1.5
    env.unwrapped.state = np.array([th, thdot])
    obs, reward, *_ = env.step(np.array([u], np.float32))
    new_thdot = thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt
    new_th = th + new_thdot * dt
    np.testing.assert_allclose(obs, [np.cos(new_th), np.sin(new_th), new_thdot], rtol=1e-5)
    cost = th**2 + 0.1 * thdot**2 + 0.001 * u**2  # angle already in [-pi, pi)
    assert reward == pytest.approx(-cost, rel=1e-6)


def test_acrobot_parameters_change_the_dynamics_and_the_unused_one_is_not_offered():
    def step(params):
        env = envs.get_family("acrobot").make(params)
        env.reset(seed=0)
        env.unwrapped.state = np.array([0.3, -0.2, 0.5, 0.1])
        return env.step(2)[0]

    base = step({})
    for params in ({"link_mass_2": 1.5}, {"link_length_1": 1.3}, {"link_moi": 2.0}):
        assert not np.allclose(step(params), base), params
    with pytest.raises(ParameterError, match="'link_length_2'.*valid parameters: link_length_1"):
        envs.get_family("acrobot").make({"link_length_2": 1.3})


def test_lunarlander_gravity_reaches_the_box2d_world():
    env = get_pair("lunarlander-low-gravity").make_target()
    env.reset(seed=0)
    assert tuple(env.unwrapped.world.gravity) == pytest.approx((0.0, -6.0))
    windy = get_pair("lunarlander-windy").make_target().unwrapped
    assert windy.enable_wind and windy.wind_power == 10.0


def test_hopper_mass_scale_updates_derived_constants():
    base = envs.get_family("hopper").make({}).unwrapped.model
    heavy = get_pair("hopper-heavy").make_target().unwrapped.model
    np.testing.assert_allclose(heavy.body_mass, 1.5 * base.body_mass)
    # mj_setConst recomputed the subtree masses from the new body masses
    np.testing.assert_allclose(heavy.body_subtreemass, 1.5 * base.body_subtreemass)


def test_cross_space_pair_maps_discrete_actions_to_the_continuous_engine():
    pair = get_pair("mountaincar-to-continuous")
    target = pair.make_target()
    assert target.action_space == gymnasium.spaces.Discrete(3)
    assert target.observation_space == pair.make_source().observation_space
    plain = envs.get_family("mountaincar-continuous").make({})
    for action, force in ((0, -1.0), (1, 0.0), (2, 1.0)):
        target.reset(seed=5)
        plain.reset(seed=5)
        a = target.step(action)
        b = plain.step(np.array([force], np.float32))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"target": ("mountaincar-continuous", {})},
            "action spaces differ; give a mapping that makes them so",
        ),
        (
            {
                "target": ("mountaincar-continuous", {}),
                "action_mapping": {"kind": "values", "table": [[-1.0], [0.0], [3.0]]},
            },
            "is not in the target's action space",
        ),
        (
            {"observation_mapping": {"kind": "select", "indices": [0, 5]}},
            "must be within the target's 2 components",
        ),
        (
            {"observation_mapping": {"kind": "affine", "scale": [1.0], "shift": [0.0]}},
            "scale and shift need 2 values",
        ),
        (
            {"action_mapping": {"kind": "index", "table": [0, 1, 3]}},
            "outside the target's Discrete(3)",
        ),
        ({"action_mapping": {"kind": "rotate"}}, "unknown action mapping 'rotate'"),
    ],
)
def test_mapping_errors_at_registration(kwargs, message):
    args = {
        "source": ("mountaincar", {}),
        "target": ("mountaincar", {}),
        "threshold": -110.0,
        "r_min": -200.0,
        "r_max": -100.0,
        **kwargs,
    }
    with pytest.raises(envs.PairError, match=re.escape(message)):
        envs.register_pair("test-mapping", **args)
    with pytest.raises(UnknownPairError):
        get_pair("test-mapping")


def test_observation_mappings_by_value():
    from envs.mappings import ObservationMapping

    obs = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(ObservationMapping("select", indices=(2, 0)).apply(obs), [3, 1])
    np.testing.assert_array_equal(ObservationMapping("pad", values=(0.0,)).apply(obs), [1, 2, 3, 0])
    np.testing.assert_allclose(
        ObservationMapping("affine", scale=(2, 2, 2), shift=(1, 0, -1)).apply(obs), [3, 4, 5]
    )
    # a reorder of CartPole's observation registers (bounds mapped) and runs
    try:
        pair = envs.register_pair(
            "test-reordered",
            source=("cartpole", {}),
            target=("cartpole", {}),
            threshold=475.0,
            r_min=22.0,
            observation_mapping={"kind": "select", "indices": [0, 1, 2, 3]},
        )
        assert pair.make_target().reset(seed=0)[0].shape == (4,)
    finally:
        envs.unregister_pair("test-reordered")
