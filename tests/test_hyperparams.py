"""Hyperparameters the user's way (rl-baselines3-zoo's conventions) and imported models as they
are: overrides by flag, file and study key, per run kind; zoo models whose schedules need
rl_zoo3; an imported model's architecture in every arm, or a refusal before anything runs."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ONE_SEED, cli_forked, read_json, run_exp

from rl_transfer.errors import SpecError
from rl_transfer.hyperparams import parse_value
from rl_transfer.spec import spec_from

# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-4", 1e-4),
        ("-2", -2),
        ("lin_1e-3", "lin_1e-3"),
        ("true", True),
        ("MlpPolicy", "MlpPolicy"),
        ("ornstein-uhlenbeck", "ornstein-uhlenbeck"),
        ("[1, 'episode']", [1, "episode"]),
        (
            "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, "
            "net_arch=dict(pi=[256], vf=[256]))",
            {
                "log_std_init": -2,
                "ortho_init": False,
                "activation_fn": "nn.ReLU",
                "net_arch": {"pi": [256], "vf": [256]},
            },
        ),
        ("dict(activation_fn=th.nn.Tanh)", {"activation_fn": "nn.Tanh"}),
        ("{'norm_obs': True, 'norm_reward': False}", {"norm_obs": True, "norm_reward": False}),
    ],
)
def test_values_are_parsed_as_zoo_writes_them(text, value):
    assert parse_value(text, "k") == value


@pytest.mark.parametrize(
    "text, said",
    [
        ("__import__('os').system('true')", "the only call accepted is dict"),
        ("dict(activation_fn=nn.Relu)", "unknown name 'nn.Relu'"),
        ("os.system", "unknown name 'os.system'"),
        ("lin_x", "not a linear schedule"),
        ("[1, 2", "is not a value"),
    ],
)
def test_anything_but_a_value_is_refused_without_eval(text, said):
    with pytest.raises(SpecError, match=said.replace("(", r"\(")):
        parse_value(text, "k")


# -- which run a key reaches -------------------------------------------------------------------


def _in_force(**kwargs):
    spec = spec_from(pairs=["cartpole-long-pole"], algos=["ppo"], **kwargs)
    spec.validate()
    (pair,) = spec.pair_objects()
    return spec, spec.hyperparams_in_force(pair, "ppo")


def test_prefixes_address_source_target_and_one_arm_most_specific_wins(tmp_path):
    spec, hp = _in_force(
        methods=["policy", "finetune"],
        out=tmp_path / "exp",
        hyperparams={
            "n_epochs": 5,
            "target.n_epochs": 7,
            "finetune.learning_rate": 1e-4,
            "ppo.finetune.learning_rate": 2e-4,
            "source.gae_lambda": 0.9,
        },
    )
    assert hp["source"]["n_epochs"] == 5 and hp["source"]["gae_lambda"] == 0.9
    assert {hp[a]["n_epochs"] for a in ("scratch", "policy", "finetune")} == {7}
    assert hp["finetune"]["learning_rate"] == 2e-4  # the algorithm's prefix is more specific
    assert hp["scratch"]["learning_rate"] == hp["policy"]["learning_rate"] == "lin_0.001"
    assert hp["policy"]["gae_lambda"] == 0.8  # the package's: source. reached only the source
    assert spec.hyperparams_origin(spec.pair_objects()[0], "ppo", "finetune") == {
        "n_epochs": "--hyperparams target.n_epochs",
        "learning_rate": "--hyperparams ppo.finetune.learning_rate",
    }


def test_the_study_key_is_per_algorithm_and_equals_the_flag(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(
        "pair: cartpole-long-pole\nalgo: ppo\nmethods: [finetune]\n"
        "hyperparams:\n  ppo:\n    finetune.learning_rate: 1e-4\n    n_epochs: 4\n"
    )
    by_file = spec_from(study, out=tmp_path / "a")
    by_flag = spec_from(
        pairs=["cartpole-long-pole"],
        algos=["ppo"],
        methods=["finetune"],
        out=tmp_path / "b",
        hyperparams={"finetune.learning_rate": 1e-4, "n_epochs": 4},
    )
    (pair,) = by_file.pair_objects()
    assert by_file.hyperparams_in_force(pair, "ppo") == by_flag.hyperparams_in_force(pair, "ppo")
    assert by_file.hyperparams_in_force(pair, "ppo")["finetune"]["learning_rate"] == 1e-4
    assert by_file.identity() == by_flag.identity()  # the same experiment, the same folder


def test_without_overrides_the_identity_is_unchanged_so_folders_keep_their_names(tmp_path):
    spec = spec_from(out=tmp_path / "exp")
    assert "hyperparam_overrides" not in spec.identity()
    assert spec.experiment_name() == spec_from(out=tmp_path / "exp").experiment_name()


def test_a_zoo_layout_file_replaces_the_packages_entry(tmp_path):
    conf = tmp_path / "ppo.yml"
    conf.write_text(
        textwrap.dedent(
            """\
            CartPole-v1:
              n_envs: 4
              n_timesteps: !!float 1e5
              policy: 'MlpPolicy'
              n_steps: 64
              learning_rate: lin_2.5e-4
              policy_kwargs: "dict(net_arch=[32, 32], activation_fn=nn.ReLU)"
            """
        )
    )
    _, hp = _in_force(methods=["policy"], out=tmp_path / "exp", hyperparams_file={"": conf})
    assert hp["scratch"]["n_envs"] == 4 and "batch_size" not in hp["scratch"]  # replaced whole
    assert hp["source"]["policy_kwargs"] == {"net_arch": [32, 32], "activation_fn": "nn.ReLU"}
    assert hp["policy"]["learning_rate"] == "lin_2.5e-4"


@pytest.mark.parametrize(
    "kwargs, said",
    [
        ({"hyperparams": {"learning_rat": 1e-4}}, "unknown key 'learning_rat' for ppo; did you"),
        ({"hyperparams": {"foo.n_epochs": 2}}, "unknown prefix 'foo'"),
        ({"hyperparams": {"value.n_epochs": 2}}, "unknown prefix 'value'"),  # not run here
        ({"hyperparams": {"n_timesteps": 10}}, "the budget is --source-steps"),
        ({"hyperparams": {"frame_stack": 4}}, "'frame_stack' is not supported"),
        ({"hyperparams": {"policy_kwargs": {"net_arc": [3]}}}, "policy_kwargs.net_arc"),
        ({"hyperparams": {"n_steps": -5}}, "stable-baselines3 refuses them"),
        (
            {"hyperparams": {"source.policy_kwargs": "dict(net_arch=[32, 32])"}},
            "a weight transfer needs the same architecture",
        ),
        ({"hyperparams": {"n_envs": 1.5}}, "n_envs must be a positive integer, got 1.5"),
        ({"hyperparams": {"ent_coef": "lin_0.01"}}, "a lin_ schedule is taken by learning_rate"),
        ({"hyperparams": {"gamma": float("inf")}}, "gamma holds inf, not a finite number"),
        ({"hyperparams": {"env_wrapper": "a.B"}}, "wrap the env in an env family instead"),
        ({"hyperparams": {"device": "cuda"}}, "'device' is set by rl_transfer itself"),
        ({"hyperparams": {"dqn": {"n_epochs": 3}}}, "a section for dqn, which the experiment"),
        ({"hyperparams_file": {"": Path("nope.yml")}}, "cannot read hyperparameters file"),
        ({"hyperparams_file": {"dqn": Path("x.yml")}}, "dqn is not among the algorithms"),
    ],
)
def test_bad_hyperparameters_are_refused_before_anything_runs(tmp_path, kwargs, said):
    with pytest.raises(SpecError, match=said.replace("(", r"\(")):
        _in_force(methods=["policy"], out=tmp_path / "exp", **kwargs)
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    "algo, method, kwargs, said",
    [
        ("dqn", "replay", {"hyperparams": {"target.n_envs": 2}}, "number of envs (n_envs) is 1"),
        (
            "ppo",
            "finetune",
            {
                "hyperparams": {"source.policy_kwargs": "dict(optimizer_class=th.optim.SGD)"},
                "knobs": {"finetune": {"optimizer": 1}},
            },
            "the source's optimizer is SGD, this arm's Adam",
        ),
    ],
)
def test_a_method_refuses_models_it_cannot_transfer_between_before_anything_runs(
    tmp_path, algo, method, kwargs, said
):
    with pytest.raises(SpecError, match=said.replace("(", r"\(").replace(")", r"\)")):
        spec_from(
            pairs=["cartpole-long-pole"],
            algos=[algo],
            methods=[method],
            out=tmp_path / "e",
            **kwargs,
        ).validate()


def test_source_prefix_needs_a_pretrained_source(tmp_path):
    with pytest.raises(SpecError, match="no source is pretrained in this experiment"):
        _in_force(
            methods=["scratch"], seeds=2, out=tmp_path / "e", hyperparams={"source.gamma": 0.9}
        )


def test_one_experiment_spelled_two_ways_is_one_and_study_values_name_the_study(tmp_path):
    plain = spec_from(out=tmp_path / "a", hyperparams={"n_epochs": 2})
    prefixed = spec_from(out=tmp_path / "a", hyperparams={"ppo.n_epochs": 2})
    assert plain.identity() == prefixed.identity()
    study = tmp_path / "study.yaml"
    study.write_text("hyperparams:\n  ppo:\n    n_epochs: 10\n    gae_lambda: 0.9\n")
    spec = spec_from(study, out=tmp_path / "b", hyperparams={"n_steps": 64})
    (pair,) = spec.pair_objects()
    hp = spec.hyperparams_in_force(pair, "ppo")["scratch"]
    assert (hp["n_epochs"], hp["gae_lambda"], hp["n_steps"]) == (10, 0.9, 64)  # merged
    assert spec.hyperparams_origin(pair, "ppo", "scratch") == {
        "n_epochs": f"study file {study}: hyperparams ppo.n_epochs",
        "gae_lambda": f"study file {study}: hyperparams ppo.gae_lambda",
        "n_steps": "--hyperparams n_steps",
    }


def test_a_zoo_file_finds_a_user_familys_entry_under_the_id_it_wraps():
    import envs
    from rl_transfer.hyperparams import zoo_entry, zoo_keys

    family = envs.EnvFamily(name="my-pole", env="CartPole-v1")
    assert zoo_entry({"CartPole-v1": {"n_envs": 4}}, family) == {"n_envs": 4}  # zoo's own key
    assert zoo_entry({"my-pole": {"n_envs": 2}}, family) == {"n_envs": 2}
    assert zoo_keys(envs.EnvFamily(name="mine", env="my_pkg.envs:MyEnv")) == [
        "mine",
        "rl_transfer/mine",
    ]


def test_a_file_without_the_familys_entry_names_what_to_add(tmp_path):
    conf = tmp_path / "ppo.yml"
    conf.write_text("Acrobot-v1: {n_envs: 2}\n")
    with pytest.raises(SpecError, match="no entry for the target of 'cartpole-long-pole'.*Cart"):
        _in_force(methods=["policy"], out=tmp_path / "exp", hyperparams_file={"ppo": conf})


def test_overrides_reach_run_json_experiment_yaml_and_the_source_cache_key(tmp_path):
    proc = run_exp(
        tmp_path,
        *ONE_SEED,
        "--methods",
        "finetune",
        "--hyperparams",
        "finetune.learning_rate:1e-4",
        "source.n_epochs:3",
    )
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "exp/cartpole-long-pole/ppo"
    finetune = read_json(run / "finetune/seed_0/run.json")
    scratch = read_json(run / "scratch/seed_0/run.json")
    assert finetune["hyperparams"]["learning_rate"] == 1e-4
    assert finetune["hyperparams_origin"] == {
        "learning_rate": "--hyperparams finetune.learning_rate"
    }
    assert scratch["hyperparams"]["learning_rate"] == "lin_0.001"
    assert scratch["hyperparams"]["n_epochs"] == 20 and "hyperparams_origin" not in scratch
    (source,) = [p for p in (tmp_path / "src").iterdir() if not p.name.startswith(".")]
    assert read_json(source / "run.json")["hyperparams"]["n_epochs"] == 3
    import yaml

    record = yaml.safe_load((tmp_path / "exp/experiment.yaml").read_text())
    in_force = record["hyperparams_in_force"]["ppo"]["cartpole-long-pole"]
    assert in_force["finetune"]["learning_rate"] == 1e-4 and in_force["source"]["n_epochs"] == 3
    # a different source hyperparameter is a different source
    from envs import get_pair
    from rl_transfer.spec import source_key

    pair = get_pair("cartpole-long-pole")
    keys = {source_key(pair, "ppo", in_force[a], 0, 256, 2, None, 256) for a in in_force}
    assert source.name in keys and len(keys) == 3  # source; scratch; finetune


# -- imported models -----------------------------------------------------------------------


def _save_in_subprocess(tmp_path: Path, code: str) -> None:
    """Run ``code`` in a fresh interpreter whose ``sys.path`` also holds ``tmp_path/mods`` (a
    throwaway package the saved model may pickle references to)."""
    script = tmp_path / "save_model.py"
    script.write_text(textwrap.dedent(code))
    env_path = f"{tmp_path / 'mods'}"
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": env_path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_zoo_model_whose_schedules_need_an_uninstalled_module_comes_in(tmp_path):
    """rl-baselines3-zoo pickles its schedules as rl_zoo3 objects; here a throwaway module
    plays rl_zoo3 and is absent when the model is imported."""
    mods = tmp_path / "mods" / "fake_zoo3"
    mods.mkdir(parents=True)
    (mods / "__init__.py").write_text(
        "class LinearSchedule:\n"
        "    def __init__(self, v):\n        self.v = v\n"
        "    def __call__(self, p):\n        return p * self.v\n"
    )
    _save_in_subprocess(
        tmp_path,
        """
        from stable_baselines3 import PPO
        from fake_zoo3 import LinearSchedule
        PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, device="cpu",
            learning_rate=LinearSchedule(1e-3), clip_range=LinearSchedule(0.2), seed=0
        ).learn(64).save("CartPole-v1.zip")
        """,
    )
    proc = run_exp(
        tmp_path,
        *ONE_SEED,
        "--methods",
        "policy",
        "--source-model",
        "CartPole-v1.zip",
    )
    assert proc.returncode == 0, proc.stderr
    (source,) = [p for p in (tmp_path / "src").iterdir() if not p.name.startswith(".")]
    record = read_json(source / "run.json")
    assert set(record["replaced_objects"]) == {"learning_rate", "lr_schedule", "clip_range"}
    assert record["hyperparams"]["learning_rate"] == "replaced: not loadable here"
    assert record["hyperparams"]["n_steps"] == 32 and record["hyperparams"]["n_epochs"] == 1


def test_an_imported_models_architecture_builds_every_arm(tmp_path):
    from stable_baselines3 import PPO

    (tmp_path / "mods").mkdir()
    _save_in_subprocess(
        tmp_path,
        """
        import torch
        from stable_baselines3 import PPO
        PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, device="cpu",
            policy_kwargs=dict(net_arch=[32, 32], activation_fn=torch.nn.ReLU, ortho_init=False),
            seed=0).learn(64).save("relu.zip")
        """,
    )
    proc = run_exp(
        tmp_path,
        *ONE_SEED,
        "--methods",
        "policy",
        "--source-model",
        "relu.zip",
    )
    assert proc.returncode == 0, proc.stderr
    for arm in ("scratch", "policy"):  # scratch too: the comparison is between equals
        run = tmp_path / f"exp/cartpole-long-pole/ppo/{arm}/seed_0"
        hp = read_json(run / "run.json")["hyperparams"]
        assert hp["policy_kwargs"]["net_arch"] == [32, 32]
        assert hp["policy_kwargs"]["activation_fn"] == "nn.ReLU"
        assert hp["policy_kwargs"]["ortho_init"] is False
        model = PPO.load(run / "model.zip", device="cpu")
        assert model.policy.mlp_extractor.policy_net[0].out_features == 32
        assert type(model.policy.mlp_extractor.policy_net[1]).__name__ == "ReLU"
    # the policy arm starts from the model itself: at t = 0 it returns what the model does
    import envs
    from agents import get_adapter
    from rl_transfer.evaluation import Evaluator

    model = PPO.load(tmp_path / "relu.zip", device="cpu")
    returns, _ = Evaluator(
        envs.get_pair("cartpole-long-pole").make_target, 2, act=get_adapter("ppo").act
    ).evaluate(model)
    with np.load(tmp_path / "exp/cartpole-long-pole/ppo/policy/seed_0/evaluations.npz") as ev:
        np.testing.assert_array_equal(ev["results"][0], returns)

    # an override that contradicts the model is refused before anything runs
    proc = cli_forked(
        "run",
        *ONE_SEED,
        "--methods",
        "policy",
        "--source-model",
        "relu.zip",
        "--hyperparams",
        "policy_kwargs:dict(activation_fn=nn.Tanh)",
        "--out",
        "exp2",
        "--source-cache",
        "src",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --source-model relu.zip was built with activation_fn")
    assert "'nn.ReLU'" in proc.stderr and "'nn.Tanh'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "exp2").exists()


def test_a_use_sde_model_builds_every_arm_with_sde(tmp_path):
    """zoo's Pendulum PPO uses generalized State-Dependent Exploration (use_sde) and
    log_std_init -2: the arms take both."""
    from stable_baselines3 import PPO

    PPO(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=32,
        batch_size=32,
        use_sde=True,
        policy_kwargs={"log_std_init": -2.0},
        device="cpu",
    ).save(tmp_path / "sde.zip")
    spec = spec_from(
        pairs=["pendulum-heavy"],
        algos=["ppo"],
        methods=["policy"],
        source_model=tmp_path / "sde.zip",
        out=tmp_path / "exp",
    )
    spec.validate()
    hp = spec.hyperparams_in_force(spec.pair_objects()[0], "ppo")
    for arm in ("scratch", "policy"):
        assert hp[arm]["use_sde"] is True and hp[arm]["policy_kwargs"]["log_std_init"] == -2.0
    with pytest.raises(
        SpecError, match=r"built with use_sde True .* set False \(--hyperparams use_sde\)"
    ):
        spec_from(
            pairs=["pendulum-heavy"],
            algos=["ppo"],
            methods=["policy"],
            source_model=tmp_path / "sde.zip",
            out=tmp_path / "exp",
            hyperparams={"use_sde": False},
        ).validate()


def test_another_algorithms_zip_is_refused_in_words(tmp_path):
    from stable_baselines3 import PPO

    PPO("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu").save(tmp_path / "ppo.zip")
    proc = cli_forked(
        "run", *ONE_SEED, "--algo", "dqn", "--source-model", "ppo.zip", "--out", "e", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: --source-model ppo.zip is a PPO model and the experiment runs dqn: "
        "run it with --algo ppo"
    )
    assert not (tmp_path / "e").exists()
