"""The stable-baselines3 surface: the one module that touches SB3's internals.

Transfer methods need a few things SB3 keeps private: the off-policy action sampler (pi-reuse
replaces the learner's action), the actor-critic update (kickstarting adds a loss term), the
greedy forward pass without ``predict``'s bookkeeping (evaluation's hot path), the optimizer
attribute names, the step counter's budget, the episode-statistics window, and under
``VecNormalize`` the raw observations SB3 keeps beside the normalized ones. Each is reached
through one small function here, and each function first checks that the installed SB3 still
has the symbol it uses, with the parameters it was written against (:data:`TOUCH_POINTS`;
:func:`check_surface` checks them all). A changed symbol raises
:class:`~rl_transfer.errors.SB3CompatibilityError` naming it, instead of a silent change of
results.

Written against stable-baselines3 2.9 (``SUPPORTED``, also pinned in pyproject.toml).
"""

from __future__ import annotations

import base64
import functools
import importlib
import inspect
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import torch

from rl_transfer.errors import SB3CompatibilityError

SUPPORTED = ">=2.9,<2.10"
"""The stable-baselines3 versions this module was written and tested against."""


@dataclass(frozen=True)
class TouchPoint:
    """One SB3 internal that rl_transfer uses.

    Attributes:
        symbol: dotted path of the class attribute (``module.Class.name``).
        params: the parameter names its signature must have (``self`` left out); None for a
            symbol checked by presence only.
        order: substrings that must appear in this order in the symbol's source (the update
            sequence a hook relies on); empty when not checked.
        used_by: what in rl_transfer relies on it.
    """

    symbol: str
    params: tuple[str, ...] | None
    used_by: str
    order: tuple[str, ...] = ()


_OFF_POLICY = "stable_baselines3.common.off_policy_algorithm.OffPolicyAlgorithm"
_POLICIES = "stable_baselines3.common.policies"
TOUCH_POINTS: dict[str, TouchPoint] = {
    t.symbol: t
    for t in (
        TouchPoint(
            f"{_OFF_POLICY}._sample_action",
            ("learning_starts", "action_noise", "n_envs"),
            "reuse: the source's action replaces the learner's (env and replay buffer)",
            order=("self._last_obs",),
        ),
        TouchPoint(
            f"{_OFF_POLICY}.collect_rollouts",
            (
                "env",
                "callback",
                "train_freq",
                "replay_buffer",
                "action_noise",
                "learning_starts",
                "log_interval",
            ),
            "reuse: actions come from _sample_action, once per env step",
            order=("self._sample_action(",),
        ),
        TouchPoint(
            f"{_POLICIES}.ActorCriticPolicy.evaluate_actions",
            ("obs", "actions"),
            "kickstart: the minibatch's observations and the learner's distribution",
            order=("self._get_action_dist_from_latent(",),
        ),
        TouchPoint(
            f"{_POLICIES}.ActorCriticPolicy._get_action_dist_from_latent",
            ("latent_pi",),
            "kickstart: the learner's action distribution, with its graph",
        ),
        TouchPoint(
            "stable_baselines3.ppo.ppo.PPO.train",
            (),
            "kickstart: the extra loss is back-propagated right after zero_grad",
            order=("evaluate_actions(", "zero_grad()", "loss.backward()", "clip_grad_norm_"),
        ),
        TouchPoint(
            "stable_baselines3.a2c.a2c.A2C.train",
            (),
            "kickstart: the extra loss is back-propagated right after zero_grad",
            order=("evaluate_actions(", "zero_grad()", "loss.backward()", "clip_grad_norm_"),
        ),
        TouchPoint(
            f"{_POLICIES}.BasePolicy._predict",
            ("observation", "deterministic"),
            "evaluation: greedy actions in one forward pass (Discrete action spaces)",
        ),
        TouchPoint(
            "stable_baselines3.common.base_class.BaseAlgorithm._get_torch_save_params",
            (),
            "finetune.optimizer=1: the names of the model's optimizers",
        ),
        TouchPoint(
            "stable_baselines3.common.base_class.BaseAlgorithm._setup_learn",
            ("total_timesteps", "callback", "reset_num_timesteps", "tb_log_name", "progress_bar"),
            "kickstart and the step budget: learn() stores _total_timesteps; stats window; "
            "imported models: _last_original_obs is set only under VecNormalize (on-policy)",
            order=(
                "self._total_timesteps = total_timesteps",
                "self._last_original_obs = self._vec_normalize_env.get_original_obs()",
            ),
        ),
        TouchPoint(
            f"{_OFF_POLICY}._store_transition",
            ("replay_buffer", "buffer_action", "new_obs", "reward", "dones", "infos"),
            "reuse under VecNormalize: _last_original_obs, the raw observation of _last_obs",
            order=(
                "get_original_obs()",
                "self._last_obs = new_obs",
                "self._last_original_obs = new_obs_",
            ),
        ),
        TouchPoint(
            "stable_baselines3.common.base_class.BaseAlgorithm.__init__",
            None,
            "shaping log: _stats_window_size, the window of SB3's episode statistics",
            order=("self._stats_window_size = stats_window_size",),
        ),
        TouchPoint(
            f"{_POLICIES}.BasePolicy._get_constructor_parameters",
            (),
            "imported models: the architecture a saved policy was built with",
        ),
        TouchPoint(
            "stable_baselines3.common.base_class.BaseAlgorithm.set_logger",
            ("logger",),
            "kickstart: its terms are written with SB3's own logger (_logger)",
            order=("self._logger = logger",),
        ),
    )
}


def _resolve(symbol: str) -> Any:
    module, cls, name = symbol.rsplit(".", 2)
    return getattr(getattr(importlib.import_module(module), cls), name)


def _version() -> str:
    import stable_baselines3

    return stable_baselines3.__version__


def _problem(point: TouchPoint) -> str | None:
    """What is wrong with ``point`` in the installed SB3, or None."""
    try:
        obj = _resolve(point.symbol)
    except (ImportError, AttributeError):
        return "is gone"
    if point.params is not None:
        found = tuple(p for p in inspect.signature(obj).parameters if p != "self")
        if found != point.params:
            return f"takes ({', '.join(found)}), expected ({', '.join(point.params)})"
    if point.order:
        source = inspect.getsource(obj)
        at = [source.find(s) for s in point.order]
        if -1 in at or at != sorted(at):
            return f"no longer does {' then '.join(repr(s) for s in point.order)}"
    return None


@functools.cache
def check(symbol: str) -> None:
    """Check one touch point against the installed SB3 (once per process).

    Raises:
        SB3CompatibilityError: the symbol is gone or changed; the message names it, what
            rl_transfer uses it for and the supported versions.
    """
    point = TOUCH_POINTS[symbol]
    problem = _problem(point)
    if problem is not None:
        raise SB3CompatibilityError(
            f"stable-baselines3 {_version()}: {point.symbol} {problem}; rl_transfer uses it for "
            f"{point.used_by} and supports stable-baselines3{SUPPORTED} "
            f"(pip install 'stable-baselines3{SUPPORTED}')"
        )


def check_surface() -> list[str]:
    """Every touch point that the installed SB3 breaks, as messages (empty: all fine)."""
    out = []
    for symbol in TOUCH_POINTS:
        try:
            check(symbol)
        except SB3CompatibilityError as exc:
            out.append(str(exc))
    return out


def _attr(obj: Any, name: str, symbol: str) -> Any:
    check(symbol)
    try:
        return getattr(obj, name)
    except AttributeError:
        raise SB3CompatibilityError(
            f"stable-baselines3 {_version()}: {type(obj).__name__} has no {name!r} "
            f"({TOUCH_POINTS[symbol].used_by}); rl_transfer supports stable-baselines3{SUPPORTED}"
        ) from None


# -- reading ---------------------------------------------------------------------------------


def greedy_actions(policy: Any, obs: np.ndarray) -> np.ndarray:
    """Deterministic actions of ``policy`` for a batch ``[n, *obs_shape]`` in one forward pass
    (no ``predict`` bookkeeping: no clipping or unscaling, so for Discrete spaces only).
    Returns shape ``[n]``."""
    check(f"{_POLICIES}.BasePolicy._predict")
    with torch.no_grad():
        return policy._predict(torch.as_tensor(obs), deterministic=True).numpy()


def optimizer_names(model: Any) -> list[str]:
    """Attribute paths of the model's optimizers other than the policy itself
    (``policy.optimizer``, SAC's ``ent_coef_optimizer``)."""
    check("stable_baselines3.common.base_class.BaseAlgorithm._get_torch_save_params")
    return [n for n in model._get_torch_save_params()[0] if n != "policy"]


def total_timesteps(model: Any) -> int:
    """The step budget of the current ``learn()`` call (env steps)."""
    symbol = "stable_baselines3.common.base_class.BaseAlgorithm._setup_learn"
    return int(_attr(model, "_total_timesteps", symbol))


def stats_window_size(model: Any) -> int:
    """Episodes in SB3's rolling ``rollout/ep_rew_mean`` window (``stats_window_size``)."""
    return int(
        _attr(
            model,
            "_stats_window_size",
            "stable_baselines3.common.base_class.BaseAlgorithm.__init__",
        )
    )


def current_logger(model: Any) -> Any | None:
    """SB3's logger of ``model`` once ``learn()`` or ``set_logger`` has set one, else None."""
    check("stable_baselines3.common.base_class.BaseAlgorithm.set_logger")
    return vars(model).get("_logger")


def last_observations(model: Any) -> np.ndarray:
    """The observations the learner acts on next, shape ``[n_envs, *obs_shape]``."""
    return _attr(model, "_last_obs", f"{_OFF_POLICY}._sample_action")


def raw_last_observations(model: Any) -> np.ndarray:
    """The raw observations the off-policy learner acts on next, ``[n_envs, *obs_shape]``:
    under ``VecNormalize`` SB3 keeps them beside the normalized ``_last_obs`` (it stores them in
    the replay buffer); without it they are ``_last_obs``."""
    symbol = f"{_OFF_POLICY}._store_transition"
    check(symbol)
    if model.get_vec_normalize_env() is None:
        return last_observations(model)
    return _attr(model, "_last_original_obs", symbol)


def trained_with_vecnormalize(model: Any) -> bool | None:
    """Whether a saved model was trained under ``VecNormalize``, read from the model alone:
    on-policy learners (PPO, A2C) keep the raw first observation in ``_last_original_obs``
    (saved in the zip) only then. None for off-policy learners, which set it either way, and
    for a model that never learned."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    check("stable_baselines3.common.base_class.BaseAlgorithm._setup_learn")
    if isinstance(model, OffPolicyAlgorithm) or not model.num_timesteps:
        return None
    return vars(model).get("_last_original_obs") is not None


def add_env_steps(model: Any, n: int) -> None:
    """Count ``n`` env steps taken outside the learner's own (a guide's) toward t."""
    model.num_timesteps += int(n)


def constructor_parameters(policy: Any) -> dict[str, Any]:
    """The arguments ``policy`` was built with (``net_arch``, ``activation_fn``, ``use_sde``,
    ``log_std_init``, ``ortho_init``, ...): what SB3 saves to rebuild it."""
    check(f"{_POLICIES}.BasePolicy._get_constructor_parameters")
    return dict(policy._get_constructor_parameters())


# -- saved models (SB3's zip format: a "data" JSON beside the tensors) ----------------------------


def saved_data(path: str | Path) -> dict[str, Any]:
    """The ``data`` JSON of an SB3 model zip, unparsed: objects that are not JSON stay as SB3
    wrote them (``{":type:", ":serialized:" (base64 cloudpickle), readable attributes}``).

    Raises:
        OSError, zipfile.BadZipFile, KeyError, ValueError: not an SB3 model zip.
    """
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data").decode())


def unloadable_objects(data: Mapping[str, Any]) -> list[str]:
    """Keys of ``data`` whose pickled object cannot be loaded in this process (a schedule
    pickled as an object of a package that is not installed, such as rl-baselines3-zoo's)."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            try:
                cloudpickle.loads(base64.b64decode(value[":serialized:"].encode()))
            except Exception:  # noqa: BLE001  (any failure: the object is replaced)
                out.append(key)
    return out


def saved_algorithm(data: Mapping[str, Any]) -> str | None:
    """The SB3 algorithm that saved ``data`` (``"ppo"``, ``"a2c"``, ``"dqn"``, ``"sac"``,
    ``"td3"``), read from its policy class's module and the algorithm's own keys (PPO saves
    ``n_epochs`` and ``clip_range``, A2C neither); None when not recognised."""
    policy = data.get("policy_class")
    module = policy.get("__module__", "") if isinstance(policy, dict) else ""
    for algo in ("dqn", "sac", "td3"):
        if module.startswith(f"stable_baselines3.{algo}."):
            return algo
    if module.startswith(("stable_baselines3.common.policies", "stable_baselines3.ppo.")):
        return "ppo" if "n_epochs" in data and "clip_range" in data else "a2c"
    return None


# -- hooks -------------------------------------------------------------------------------------

Sampler = Callable[[int, Any, int], tuple[np.ndarray, np.ndarray]]


def override_action_sampling(
    model: Any, sample: Callable[[Sampler, int, Any, int], tuple[np.ndarray, np.ndarray]]
) -> Callable[[], None]:
    """Route an off-policy model's action choice through
    ``sample(original, learning_starts, action_noise, n_envs) -> (actions, buffer_actions)``
    (arrays ``[n_envs, ...]``: what the env receives, and what the replay buffer stores, scaled
    to [-1, 1] for Box spaces). Returns a function that restores SB3's own sampler (call it
    before saving the model)."""
    symbol = f"{_OFF_POLICY}._sample_action"
    check(symbol)
    check(f"{_OFF_POLICY}.collect_rollouts")
    original = _attr(model, "_sample_action", symbol)

    def routed(learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> Any:
        return sample(original, learning_starts, action_noise, n_envs)

    model._sample_action = routed
    return lambda: vars(model).pop("_sample_action", None)


def has_actor_critic_update(algo_class: type) -> bool:
    """Whether :func:`hook_actor_critic_update` knows ``algo_class``'s update (PPO, A2C)."""
    return f"{algo_class.__module__}.{algo_class.__name__}.train" in TOUCH_POINTS


def hook_actor_critic_update(
    model: Any,
    seen: Callable[[torch.Tensor, Any], None],
    after_zero_grad: Callable[[], None],
) -> Callable[[], None]:
    """Hook into PPO's and A2C's update: ``seen(obs, distribution)`` receives each minibatch's
    observations ``[batch, *obs_shape]`` and the learner's action distribution built from them
    (graph attached); ``after_zero_grad()`` runs right after ``policy.optimizer.zero_grad()``,
    before SB3's ``loss.backward()``, so whatever it back-propagates is clipped and applied with
    SB3's loss. Returns a function that restores both methods (call it before saving).

    Raises:
        SB3CompatibilityError: SB3's update no longer runs evaluate_actions, zero_grad, backward,
            clip in that order, or the methods' signatures changed.
    """
    train = f"{type(model).__module__}.{type(model).__name__}.train"
    if train not in TOUCH_POINTS:
        raise SB3CompatibilityError(
            f"the update hook knows PPO's and A2C's train(), not {type(model).__name__}'s"
        )
    for symbol in (
        f"{_POLICIES}.ActorCriticPolicy.evaluate_actions",
        f"{_POLICIES}.ActorCriticPolicy._get_action_dist_from_latent",
        train,
    ):
        check(symbol)
    policy = model.policy
    evaluate_actions = policy.evaluate_actions
    zero_grad = policy.optimizer.zero_grad

    def remember(obs: torch.Tensor, actions: torch.Tensor) -> Any:
        def capture(latent_pi: torch.Tensor) -> Any:
            dist = type(policy)._get_action_dist_from_latent(policy, latent_pi)
            seen(obs, dist)
            return dist

        policy._get_action_dist_from_latent = capture
        try:
            return evaluate_actions(obs, actions)
        finally:
            del policy._get_action_dist_from_latent

    def zero_grad_then(set_to_none: bool = True) -> None:
        zero_grad(set_to_none=set_to_none)
        after_zero_grad()

    policy.evaluate_actions = remember
    policy.optimizer.zero_grad = zero_grad_then

    def remove() -> None:
        vars(policy).pop("evaluate_actions", None)
        vars(policy.optimizer).pop("zero_grad", None)

    return remove
