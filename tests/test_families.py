"""Env families from anywhere (Python, pairs files, entry points), per-variant horizons, and
variants that stay themselves when copied (pickle, deepcopy, SubprocVecEnv, spawned workers)."""

import copy
import json
import multiprocessing as mp
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from conftest import ONE_SEED, cli, read_json, run_exp

import envs
from envs import EnvFamily, EnvsError, PairError, Param, ParameterError, get_family
from envs.families import BUILTIN
from rl_transfer.spec import source_key

ROOT = Path(__file__).resolve().parent.parent
MINIGRID_YAML = ROOT / "examples" / "minigrid_doorkey.yaml"


def pole_constants(env, setting):
    """A user's hook: CartPole derives these two in __init__."""
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


def ignore_setting(env, setting):
    """A hook that reads nothing."""


USER_CARTPOLE = EnvFamily(
    name="test-user-cartpole",
    env="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
    params=[
        Param("length", 0.5, 0.1, 3.0, "m", "half the pole's length", via="attribute"),
        Param("masspole", 0.1, 0.01, 2.0, "kg", "mass of the pole", via="attribute"),
        Param("sutton_barto_reward", 0, 0, 1, "", "0 per step, -1 on failure", kind="bool"),
    ],
    hook=pole_constants,
    max_episode_steps=200,
    r_max_per_step=1.0,
    reward_threshold=190.0,
)
"""A family registered by Python: a ``module:Class`` env, attributes, a kwarg and a hook."""


@pytest.fixture(scope="module")
def user_families():
    """The user families of the registry tests: one from Python, one from the MiniGrid example's
    pairs file (a gymnasium id of a third-party package, with observation wrappers)."""
    envs.register_family(USER_CARTPOLE)
    (pair,) = envs.load_pairs_file(MINIGRID_YAML)
    yield [USER_CARTPOLE, get_family("doorkey")]
    envs.unregister_pair(pair.name)
    for name in ("doorkey", USER_CARTPOLE.name):
        envs.unregister_family(name)


REGISTRY = [*BUILTIN, "doorkey", USER_CARTPOLE.name]


def changed(family):
    """The variant with every parameter at its changed value."""
    return {name: p.changed() for name, p in family.params.items()}


def trajectory(env, steps=40, seed=0):
    """Observations, rewards and ends of ``steps`` steps from reset(seed), actions seeded."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


def same(a, b):
    return envs.families._same(a, b)


# -- the registry: every parameter acts; copies are the variant -------------------------------


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_builtin_parameter_changes_the_trajectory(name):
    """The check that user families pass at registration, run on the built-in ones here (so
    that importing envs builds no env)."""
    family = BUILTIN[name]
    assert family.inert_parameters() == []
    assert pickle.loads(pickle.dumps(family)) == family


@pytest.mark.parametrize("name", REGISTRY)
def test_a_variant_survives_pickle_and_deepcopy(user_families, name):
    family = get_family(name)
    env = family.make(changed(family))
    trajectory(env, steps=5)  # mid-episode: a copy is a new env of the variant, reset before use
    fresh = trajectory(family.make(changed(family)))
    default = trajectory(family.make({}))
    assert not same(fresh, default)
    copies = {
        "pickle": pickle.loads(pickle.dumps(env)),
        "deepcopy": copy.deepcopy(env),
        "deepcopy of the unwrapped env": copy.deepcopy(env.unwrapped),
        "pickle of the unwrapped env": pickle.loads(pickle.dumps(env.unwrapped)),
    }
    for what, twin in copies.items():
        if "unwrapped" in what:
            assert same(trajectory(twin), trajectory(family.make(changed(family)).unwrapped)), what
        else:
            assert same(trajectory(twin), fresh), what
    assert same(trajectory(env), fresh)  # the original is untouched


def test_variants_survive_subproc_vec_env(user_families):
    """Each family's variant in a SubprocVecEnv worker: built there by ``variant.make`` and,
    the harder case, an env built here and cloudpickled into the worker (forkserver: the
    worker receives both pickled; its server preloads the imports to keep this test short)."""
    from stable_baselines3.common.vec_env.subproc_vec_env import SubprocVecEnv

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["stable_baselines3.common.vec_env.subproc_vec_env", "envs", "minigrid", "mujoco"]
    )
    variants = [envs.Variant(get_family(n), changed(get_family(n))) for n in REGISTRY]
    built_here = [v.make() for v in variants]
    fns = [v.make for v in variants] + [lambda e=e: e for e in built_here]
    vec = SubprocVecEnv(fns, start_method="forkserver")
    try:
        for i, variant in enumerate(variants * 2):
            local = variant.make()
            obs, _ = local.reset(seed=3)
            local.action_space.seed(3)
            (remote_obs, _) = vec.env_method("reset", seed=3, indices=[i])[0]
            assert same(remote_obs, obs), variant.describe()
            for _ in range(30):
                action = local.action_space.sample()
                here = local.step(action)[:4]
                there = vec.env_method("step", action, indices=[i])[0][:4]
                assert same(list(there), list(here)), variant.describe()
                if here[2] or here[3]:
                    break
    finally:
        vec.close()


def test_hopper_mass_scale_scales_mass_and_inertia_and_the_derived_constants():
    """Every body s times heavier: its mass and rotational inertia; MuJoCo's subtree masses
    (checked against sums over the body tree computed here) and inverse weights follow."""
    s = 1.5
    hopper = get_family("hopper")
    base = hopper.make({}).unwrapped.model
    env = hopper.make({"mass_scale": s, "gravity": 5.0})
    for model in (
        env.unwrapped.model,
        pickle.loads(pickle.dumps(env)).unwrapped.model,
        copy.deepcopy(env.unwrapped).model,
    ):
        np.testing.assert_allclose(model.body_mass, s * base.body_mass)
        np.testing.assert_allclose(model.body_inertia, s * base.body_inertia)
        assert (base.body_inertia > 0).any()
        subtree = model.body_mass.copy()
        for body in range(model.nbody - 1, 0, -1):  # children come after their parents
            subtree[model.body_parentid[body]] += subtree[body]
        np.testing.assert_allclose(model.body_subtreemass, subtree)
        np.testing.assert_allclose(model.body_subtreemass, s * base.body_subtreemass)
        assert not np.allclose(model.body_invweight0[1:, 0], base.body_invweight0[1:, 0])
        np.testing.assert_allclose(model.opt.gravity, [0.0, 0.0, -5.0])


# -- registration checks -------------------------------------------------------------------------


def test_a_parameter_that_changes_nothing_is_refused_with_its_name():
    inert = EnvFamily(
        name="test-inert",
        env="Acrobot-v1",
        params=[
            Param("link_mass_2", 1.0, 0.5, 2.0, "kg", via="attribute", attr="LINK_MASS_2"),
            # read by rendering only, never by the equations of motion
            Param("link_length_2", 1.0, 0.5, 2.0, "m", via="attribute", attr="LINK_LENGTH_2"),
        ],
    )
    with pytest.raises(ParameterError, match=r"parameter\(s\) link_length_2 change nothing"):
        envs.register_family(inert)
    assert "test-inert" not in envs.FAMILIES
    missing = EnvFamily(
        name="test-no-attr",
        env="CartPole-v1",
        params=[Param("lenght", 0.5, 0.1, 1, via="attribute")],
    )
    with pytest.raises(EnvsError, match="'lenght' of CartPoleEnv, which has no such attribute"):
        envs.register_family(missing)
    not_a_kwarg = EnvFamily(
        name="test-kwarg", env="CartPole-v1", params=[Param("length", 0.5, 0.1, 1)]
    )
    with pytest.raises(EnvsError, match="its env cannot be built.*unexpected keyword.*'length'"):
        envs.register_family(not_a_kwarg)
    with pytest.raises(EnvsError, match="cannot be sent to worker processes"):
        envs.register_family(EnvFamily(name="test-lambda", env="CartPole-v1", hook=lambda e, s: 0))


def test_r_max_and_threshold_follow_the_horizon():
    cartpole = ("cartpole", {})
    short = {"family": "cartpole", "params": {"length": 1.0}, "max_episode_steps": 200}
    try:
        pair = envs.register_pair("test-short", cartpole, short, r_min=20.0)
        assert (pair.r_max, pair.threshold) == (200.0, 190.0)  # 1 per step; 475 * 200 / 500
        assert pair.to_dict()["target"]["max_episode_steps"] == 200
        assert pair.differences() == {"length": (0.5, 1.0), "max_episode_steps": (500, 200)}
        env = pair.make_target()
        assert env.spec.max_episode_steps == 200
        # an episode cut by the horizon is truncated, not terminated (5 steps: too short to fall)
        tiny = envs.Variant("cartpole", {}, max_episode_steps=5).make()
        tiny.reset(seed=0)
        ends = [tiny.step(i % 2)[2:4] for i in range(5)]
        assert ends == [(False, False)] * 4 + [(False, True)]
    finally:
        envs.unregister_pair("test-short")
    with pytest.raises(PairError, match=r"r_max 1000 is more than the target can return in 500"):
        envs.register_pair("test-x", cartpole, cartpole, threshold=950, r_max=1000)
    with pytest.raises(PairError, match="threshold 950 is above R_max 500"):
        envs.register_pair("test-x", cartpole, cartpole, threshold=950)
    with pytest.raises(PairError, match="threshold 190 is above R_max 100"):
        envs.register_pair("test-x", cartpole, {**short, "max_episode_steps": 100}, threshold=190)
    with pytest.raises(PairError, match="threshold 5 is below R_min 20"):
        envs.register_pair("test-x", cartpole, cartpole, threshold=5, r_min=20.0)
    hopper = {"family": "hopper", "max_episode_steps": 300}
    with pytest.raises(PairError, match="R_max 3500 holds for 1000-step episodes; give r_max"):
        envs.register_pair("test-x", ("hopper", {}), hopper, threshold=800, r_min=0.0)
    with pytest.raises(ParameterError, match="max_episode_steps of 'cartpole' must be positive"):
        envs.register_pair("test-x", cartpole, {**short, "max_episode_steps": 0}, r_min=1.0)
    with pytest.raises(envs.UnknownPairError):
        envs.get_pair("test-x")


def test_numbers_must_be_numbers_and_gymnasium_ids_are_not_shared():
    with pytest.raises(envs.EnvsError, match="r_max must be a number, got 'abc'"):
        envs.EnvFamily(name="test-num", env="CartPole-v1", r_max="abc")
    with pytest.raises(envs.PairError, match="threshold must be a number, got 'high'"):
        envs.register_pair("test-num", ("cartpole", {}), ("cartpole", {}), threshold="high")
    # named like a built-in's gymnasium id: rl_transfer/CartPole-v1 is the cartpole family's
    with pytest.raises(envs.EnvsError, match="the id of family 'cartpole'"):
        envs.register_family(envs.EnvFamily(name="CartPole-v1", env="Acrobot-v1"))


def test_a_threshold_flag_outside_the_range_is_refused(tmp_path):
    from rl_transfer.errors import SpecError
    from rl_transfer.spec import spec_from

    for level, why in ((950, "no policy can reach it"), (10, "the random policy already")):
        with pytest.raises(SpecError, match=f"--threshold {level} lies outside.*{why}"):
            spec_from(threshold=level, out=tmp_path / "exp").validate()
    assert not (tmp_path / "exp").exists()


def test_a_threshold_outside_the_range_needs_a_stated_reason():
    cartpole = ("cartpole", {})
    try:
        pair = envs.register_pair(
            "test-outside",
            cartpole,
            cartpole,
            threshold=5.0,
            r_min=20.0,
            threshold_outside_range="time to leave the random policy's level",
        )
        assert pair.to_dict()["threshold_outside_range"].startswith("time to leave")
    finally:
        envs.unregister_pair("test-outside")
    with pytest.raises(PairError, match="threshold_outside_range must state a reason"):
        envs.register_pair(
            "test-x", cartpole, cartpole, threshold=5.0, r_min=20.0, threshold_outside_range=" "
        )
    # every built-in pair's threshold lies inside its range
    for p in envs.catalog.CATALOG:
        assert p.r_min <= p.threshold <= p.r_max, p.name
        assert p.r_max == p.target.env_family.r_max_at(p.target.horizon) or p.name in {
            "cartpole-sutton-barto-reward"  # reward 0 per step: its R_max is 0, given
        }


def test_the_horizon_is_part_of_the_source_key_and_pair_record():
    base = envs.get_pair("cartpole-long-pole")
    try:
        short = envs.register_pair(
            "test-horizon",
            {"family": "cartpole", "max_episode_steps": 200},
            ("cartpole", {"length": 1.0}),
            threshold=475,
            r_min=20.0,
        )
        keys = [source_key(p, "ppo", {}, 0, 1000, 4) for p in (base, short)]
        assert keys[0] != keys[1]
        assert short.to_dict()["source"] == {
            "family": "cartpole",
            "params": {},
            "max_episode_steps": 200,
        }
        assert "max_episode_steps" not in base.to_dict()["source"]  # identity as before
    finally:
        envs.unregister_pair("test-horizon")


def test_a_user_familys_definition_is_part_of_the_source_key():
    """The same name with another definition (here another horizon and bounds) is another
    task: sources cached under the old definition are not reused."""

    def family(high: float, steps: int) -> envs.EnvFamily:
        return envs.EnvFamily(
            name="test-pole",
            env="CartPole-v1",
            params=[envs.Param("length", 0.5, 0.1, high, "m", via="attribute")],
            max_episode_steps=steps,
        )

    a, b = family(2.0, 500), family(3.0, 500)
    records = [envs.Variant(f, {"length": 1.0}).to_dict() for f in (a, b, family(2.0, 500))]
    assert records[0]["family_definition"] != records[1]["family_definition"]
    assert records[0] == records[2]  # the same definition: the same record
    assert "family_definition" not in envs.Variant("cartpole").to_dict()  # built in: as before


# -- families from Python, from a pairs file, from an entry point ------------------------------


def _in_a_spawned_worker(pair):
    """Run in a fresh process: build the target and report what it is."""
    from envs.families import FAMILIES

    env = pair.make_target()
    env.reset(seed=0)
    u = env.unwrapped
    return pair.target.family in FAMILIES, u.length, u.polemass_length, env.spec.max_episode_steps


def test_a_python_family_works_in_a_spawned_worker(user_families):
    """The job's pair carries its family: a worker process builds it though the family was
    registered in this process only."""
    pair = envs.register_pair(
        "test-user-pole",
        (USER_CARTPOLE.name, {}),
        {"family": USER_CARTPOLE.name, "params": {"length": 1.5}, "max_episode_steps": 100},
        r_min=20.0,
    )
    try:
        assert (pair.r_max, pair.threshold) == (100.0, 95.0)
        with mp.get_context("spawn").Pool(1) as pool:
            registered, length, pml, steps = pool.apply(_in_a_spawned_worker, (pair,))
        assert not registered and (length, steps) == (1.5, 100)
        assert pml == pytest.approx(0.15)  # the hook ran there
        # the family is a gymnasium env too
        env = gymnasium.make("rl_transfer/test-user-cartpole", length=2.0)
        assert env.unwrapped.polemass_length == pytest.approx(0.2)
    finally:
        envs.unregister_pair("test-user-pole")


def test_a_family_object_in_a_pair_is_checked_and_registered():
    pole = EnvFamily(
        name="test-object-pole",
        env="CartPole-v1",
        params=[Param("length", 0.5, 0.1, 3.0, "m", via="attribute")],
        hook=pole_constants,
        r_max_per_step=1.0,
    )
    try:
        pair = envs.register_pair(
            "test-object", envs.Variant(pole), envs.Variant(pole, {"length": 2.0}), 475, r_min=20
        )
        assert get_family("test-object-pole") is pole and pair.target.env_family is pole
    finally:
        envs.unregister_pair("test-object")
        envs.unregister_family("test-object-pole")
    inert = EnvFamily(
        name="test-object-inert",
        env="CartPole-v1",
        params=[Param("length", 0.5, 0.1, 3.0, "m", via="hook")],
        hook=ignore_setting,  # reads no length: the parameter is inert
    )
    with pytest.raises(ParameterError, match=r"parameter\(s\) length change nothing"):
        envs.register_pair("test-object", envs.Variant(inert), envs.Variant(inert), 475)
    assert "test-object-inert" not in envs.FAMILIES


def test_family_names_are_checked_from_python_and_pairs_files(tmp_path):
    for bad in ("../x", "a/b", ".hidden", "a+b", ""):
        with pytest.raises(EnvsError, match="env family name"):
            EnvFamily(name=bad, env="CartPole-v1")
    text = MINIGRID_YAML.read_text().replace("name: doorkey\n", "name: ../doorkey\n")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(PairError, match=r"bad.yaml: family '../doorkey': env family name"):
        envs.load_pairs_file(tmp_path / "bad.yaml")


def test_pairs_file_family_errors_are_one_line_naming_file_and_family(tmp_path):
    cases = {
        "wrappers:": ("wrapper:", "unknown key 'wrapper'; did you mean 'wrappers'?"),
        "imports: [minigrid]": ("imports: [no_such_module]", "needs the module 'no_such_module'"),
        "low: 5,": ("low: 6,", "the default 5 must lie inside the bounds [6, 16]"),
        "kind: int,": ("kind: integer,", "unknown kind 'integer'; valid: float, int, bool"),
    }
    for old, (new, message) in cases.items():
        (tmp_path / "f.yaml").write_text(MINIGRID_YAML.read_text().replace(old, new))
        proc = cli("pairs", "--pairs-file", "f.yaml", cwd=tmp_path)
        assert proc.returncode == 2, (new, proc.stderr)
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("error: pairs file f.yaml: family 'doorkey': "), line
        assert message in line, line


PLUGIN = '''
"""A user's package contributing env families through entry points."""

from envs import EnvFamily, Param


def constants(env, setting):
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


POLE = EnvFamily(
    name="plugin-pole",
    env="CartPole-v1",
    params=[Param("length", 0.5, 0.1, 3.0, "m", "half the pole's length", via="attribute")],
    hook="rlt_families_plugin:constants",
    max_episode_steps=200,
    r_max_per_step=1.0,
    reward_threshold=190.0,
)
INERT = EnvFamily(
    name="plugin-inert",
    env="Acrobot-v1",
    params=[Param("link_length_2", 1.0, 0.5, 2.0, "m", via="attribute", attr="LINK_LENGTH_2")],
)
'''

SHOW = """
import json, envs
f = envs.get_family("plugin-pole")
env = f.make({"length": 1.0}, max_episode_steps=50)
u = env.unwrapped
print(json.dumps([u.length, u.polemass_length, env.spec.max_episode_steps, f.gym_id]))
"""


def _plugin(root: Path, entry_points: str) -> dict[str, str]:
    (root / "rlt_families_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "rlt_families_plugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rlt-families\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    path = os.pathsep.join([str(root), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


POLE_PAIRS = """
pairs:
  - name: plugin-longer
    source: {family: plugin-pole}
    target: {family: plugin-pole, params: {length: 1.0}}
    r_min: 20
"""


def test_a_family_from_an_entry_point_and_its_checks(tmp_path):
    (tmp_path / "p.yaml").write_text(POLE_PAIRS)
    env = _plugin(tmp_path, "[rl_transfer.families]\npole = rlt_families_plugin:POLE\n")
    proc = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [1.0, pytest.approx(0.1), 50, "rl_transfer/plugin-pole"]
    proc = cli("pairs", "show", "plugin-longer", "--pairs-file", "p.yaml", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert (shown["threshold"], shown["r_max"]) == (190.0, 200.0)  # the family's, at 200 steps
    # an inert parameter is refused, naming the entry point and the parameter
    both = "pole = rlt_families_plugin:POLE\ninert = rlt_families_plugin:INERT\n"
    env = _plugin(tmp_path, f"[rl_transfer.families]\n{both}")
    proc = cli("pairs", "--pairs-file", "p.yaml", cwd=tmp_path, env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "entry point inert = rlt_families_plugin:INERT of rlt-families" in line
    assert "parameter(s) link_length_2 change nothing" in line
    # a name that cannot be a folder name fails the plugin's import, which is named
    env = _plugin(tmp_path, "[rl_transfer.families]\npole = rlt_families_plugin:POLE\n")
    (tmp_path / "rlt_families_plugin.py").write_text(
        textwrap.dedent(PLUGIN).replace('name="plugin-pole"', 'name="a/b"')
    )
    proc = cli("pairs", "--pairs-file", "p.yaml", cwd=tmp_path, env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "cannot load entry point pole = rlt_families_plugin:POLE of rlt-families" in line
    assert "env family name 'a/b' cannot be a folder name" in line


# -- a third-party environment, end to end -------------------------------------------------------


def test_minigrid_pair_from_a_yaml_file_runs_through_the_cli(tmp_path):
    """MiniGrid's DoorKey 5x5 -> 8x8, declared in a pairs file alone (family, imports, wrappers,
    pair), trained with PPO in worker processes that never saw the file."""
    shutil.copy(MINIGRID_YAML, tmp_path / "doorkey.yaml")
    proc = run_exp(
        tmp_path,
        "--pairs-file",
        "doorkey.yaml",
        "--pair",
        "doorkey-5x5-to-8x8",
        "--methods",
        "policy",
        *ONE_SEED,
        "--hyperparams",  # SB3's PPO would collect 2,048 steps per rollout
        "n_steps:128",
        "batch_size:64",
    )
    assert proc.returncode == 0, proc.stderr
    runs = tmp_path / "exp/doorkey-5x5-to-8x8/ppo"
    for method in ("policy", "scratch"):
        assert read_json(runs / method / "seed_0/run.json")["status"] == "done"
        with np.load(runs / method / "seed_0/evaluations.npz") as ev:
            # DoorKey-8x8 cuts an episode at 10 * 8 * 8 = 640 steps (5x5 at 250)
            assert ev["ep_lengths"].max() > 250


def test_the_minigrid_family_is_the_minigrid_env(user_families):
    """The family's 5x5 and 8x8 variants are gymnasium's own MiniGrid ids seen through the
    declared wrappers; their spaces match (7x7x3 agent view, flattened)."""
    from minigrid.wrappers import ImgObsWrapper

    family = get_family("doorkey")
    for size, gym_id in ((5, "MiniGrid-DoorKey-5x5-v0"), (8, "MiniGrid-DoorKey-8x8-v0")):
        ours = family.make({"size": size})
        theirs = gymnasium.wrappers.FlattenObservation(ImgObsWrapper(gymnasium.make(gym_id)))
        assert ours.observation_space == theirs.observation_space
        assert same(trajectory(ours, 60), trajectory(theirs, 60)), gym_id
    assert family.make({"size": 8}).observation_space.shape == (147,)


def test_readme_shows_the_example_pairs_file():
    readme = (ROOT / "README.md").read_text()
    assert MINIGRID_YAML.read_text() in readme
    assert re.search(r"pip install 'rl-transfer\[minigrid\]'", readme)
