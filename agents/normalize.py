"""rl-baselines3-zoo's ``normalize`` hyperparameter: stable-baselines3's ``VecNormalize``.

zoo (``rl_zoo3/exp_manager.py``, ``_preprocess_normalization`` and ``_maybe_normalize``) reads
``normalize`` as ``true`` / ``false``, a mapping of ``VecNormalize`` keyword arguments, or a
string of Python that builds one (``"{'norm_obs': True, 'norm_reward': False}"`` or
``"dict(norm_obs=True, norm_reward=False)"``), and passes the algorithm's ``gamma`` to
``VecNormalize`` when the hyperparameters give one (its default, 0.99, otherwise). zoo
``eval``s the string; here it is parsed by :func:`rl_transfer.hyperparams.parse_value` (a
``dict`` literal or ``dict(...)`` with literal values) and nothing is evaluated.

``VecNormalize`` (stable-baselines3 ``common/vec_env/vec_normalize.py``) keeps running means and
variances of the observations (``obs_rms``) and of the discounted return (``ret_rms``); it gives
the agent ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` and rewards divided
by the return's standard deviation, and updates the statistics while ``training`` is on.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from rl_transfer.errors import SpecError
from rl_transfer.hyperparams import parse_value

KWARGS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")
"""The ``VecNormalize`` arguments a ``normalize`` mapping may set (``training`` and
``norm_obs_keys`` are the workbench's: statistics update while training, Box observations)."""


def vecnormalize_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``VecNormalize`` keyword arguments the zoo-style ``hyperparams`` ask for, or None
    when they ask for none (``normalize`` absent or false).

    As zoo does: ``normalize: true`` takes ``VecNormalize``'s defaults (observations and rewards
    normalized, ``clip_obs`` 10, ``epsilon`` 1e-8); a mapping sets some of :data:`KWARGS`; the
    hyperparameters' ``gamma``, when given, replaces the mapping's (the discount of the return
    whose variance scales the rewards is the learner's).

    Raises:
        SpecError: ``normalize`` is not a bool, a mapping or a string of one, or names a key
            outside :data:`KWARGS`, or a value of the wrong type.
    """
    value = hyperparams.get("normalize", False)
    if isinstance(value, str):
        try:
            value = parse_value(value, "normalize")
        except SpecError:
            value = None  # said below, with what is accepted
        if not isinstance(value, Mapping | bool):
            raise SpecError(
                f"normalize: {value!r} is not true, false or a mapping of VecNormalize "
                "arguments, e.g. \"{'norm_obs': True, 'norm_reward': False}\""
            ) from None
    if value is None or value is False:
        return None
    if value is True:
        kwargs: dict[str, Any] = {}
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(KWARGS))
        if unknown:
            raise SpecError(
                f"normalize: unknown VecNormalize argument {unknown[0]!r}; "
                f"valid ones: {', '.join(KWARGS)}"
            )
        kwargs = dict(value)
    else:
        raise SpecError(f"normalize must be true, false or a mapping, got {value!r}")
    if "gamma" in hyperparams:
        kwargs["gamma"] = hyperparams["gamma"]
    for key, val in kwargs.items():
        want = (bool,) if key.startswith("norm_") else (int, float)
        if not isinstance(val, want) or (want != (bool,) and isinstance(val, bool)):
            kind = "true or false" if want == (bool,) else "a number"
            raise SpecError(f"normalize: {key} must be {kind}, got {val!r}")
    return kwargs


def settings(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``VecNormalize`` setting in force for ``kwargs`` (its defaults filled in)."""
    from stable_baselines3.common.vec_env import VecNormalize

    params = inspect.signature(VecNormalize.__init__).parameters
    return {k: kwargs.get(k, params[k].default) for k in KWARGS}


def wrap(venv: Any, kwargs: Mapping[str, Any]) -> Any:
    """``VecNormalize(venv, **kwargs)``, updating its statistics (``training`` on)."""
    from stable_baselines3.common.vec_env import VecNormalize

    return VecNormalize(venv, training=True, **kwargs)
