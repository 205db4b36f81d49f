"""Env families: one gymnasium env class with named, declared physical parameters.

A *family* (for example ``cartpole``) is one gymnasium environment whose physical parameters are
declared with a default, bounds and a unit. A *variant* is one setting of them. Setting a parameter
goes to the unwrapped env at construction time (so every instance -- training, evaluation, every
vector worker -- is built with it) and recomputes every derived constant the env caches
(pitfalls 1 and 2 in the project guide).

Each family is registered with gymnasium under the ``rl_transfer`` namespace when :mod:`envs` is
imported, so ``gymnasium.make("rl_transfer/CartPole-v1", length=1.0)`` works for other tools too.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from envs.errors import ParameterError, UnknownFamilyError

NAMESPACE = "rl_transfer"


@dataclass(frozen=True)
class Param:
    """A declared physical parameter of an env family.

    Attributes:
        name: attribute name on the unwrapped env.
        default: the base env's value.
        low, high: inclusive bounds of accepted values.
        unit: SI unit, for documentation and listings.
        doc: one line saying what the parameter is.
    """

    name: str
    default: float
    low: float
    high: float
    unit: str
    doc: str


@dataclass(frozen=True)
class EnvFamily:
    """A parameterised gymnasium env.

    Attributes:
        name: family name used in pair definitions (``"cartpole"``).
        base_id: the gymnasium id it derives from (``"CartPole-v1"``).
        entry_point: ``"module:Class"`` of the parameterised env class.
        params: declared parameters by name.
        max_episode_steps: time limit applied by ``gymnasium.make``.
        r_max: best achievable return per episode, if the env has one (``None`` otherwise).
    """

    name: str
    base_id: str
    entry_point: str
    params: Mapping[str, Param]
    max_episode_steps: int
    r_max: float | None = None
    reward_threshold: float | None = None
    extra_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gym_id(self) -> str:
        """The family's gymnasium id, ``rl_transfer/<base id>``."""
        return f"{NAMESPACE}/{self.base_id}"

    def validate(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Check parameter names and bounds; return the full setting (defaults filled in).

        Raises:
            ParameterError: unknown name (the valid names are listed, closest first) or a value
                that is not a finite number inside the declared bounds.
        """
        full = {name: p.default for name, p in self.params.items()}
        for key, value in params.items():
            if key not in self.params:
                valid = _closest_first(key, list(self.params))
                raise ParameterError(
                    f"unknown parameter {key!r} for env family {self.name!r}; "
                    f"valid parameters: {', '.join(valid)}"
                )
            p = self.params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(
                    f"parameter {key!r} of {self.name!r} must be a number in [{p.low}, {p.high}] "
                    f"{p.unit}, got {value!r}"
                )
            if not math.isfinite(value) or not (p.low <= value <= p.high):
                raise ParameterError(
                    f"parameter {key!r} of {self.name!r} is {value}, outside its bounds "
                    f"[{p.low}, {p.high}] {p.unit}"
                )
            full[key] = float(value)
        return full

    def make(self, params: Mapping[str, Any] | None = None, **kwargs: Any) -> gymnasium.Env:
        """Build one instance of the variant ``params`` through ``gymnasium.make``.

        Raises:
            ParameterError: see :meth:`validate`.
        """
        setting = self.validate(params or {})
        return gymnasium.make(self.gym_id, **setting, **kwargs)

    def differences(
        self, a: Mapping[str, Any], b: Mapping[str, Any]
    ) -> dict[str, tuple[float, float]]:
        """Parameters whose value differs between two settings: name -> (a's, b's)."""
        fa, fb = self.validate(a), self.validate(b)
        return {k: (fa[k], fb[k]) for k in self.params if fa[k] != fb[k]}


def _closest_first(name: str, valid: list[str]) -> list[str]:
    close = difflib.get_close_matches(name, valid, n=len(valid), cutoff=0.0)
    return close + [v for v in valid if v not in close]


# --------------------------------------------------------------------------------------------
# CartPole


class CartPoleFamilyEnv(CartPoleEnv):
    """gymnasium's CartPole-v1 with its physical parameters settable at construction.

    Parameters (keyword arguments, all optional; see ``CARTPOLE.params`` for bounds):
    ``gravity`` (m/s^2), ``masscart`` (kg), ``masspole`` (kg), ``length`` (m, *half* the pole's
    length, as in gymnasium), ``force_mag`` (N; negative reverses the push direction), ``tau`` (s).

    gymnasium computes ``total_mass`` and ``polemass_length`` once in ``__init__``; they are
    recomputed here after the parameters are set, so the equations of motion use the variant.

    Raises:
        ParameterError: unknown parameter name or value out of bounds.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        sutton_barto_reward: bool = False,
        **params: float,
    ) -> None:
        super().__init__(sutton_barto_reward=sutton_barto_reward, render_mode=render_mode)
        for key, value in CARTPOLE.validate(params).items():
            setattr(self, key, value)
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


CARTPOLE = EnvFamily(
    name="cartpole",
    base_id="CartPole-v1",
    entry_point="envs.families:CartPoleFamilyEnv",
    params={
        p.name: p
        for p in (
            Param("gravity", 9.8, 1.0, 30.0, "m/s^2", "gravitational acceleration"),
            Param("masscart", 1.0, 0.1, 10.0, "kg", "mass of the cart"),
            Param("masspole", 0.1, 0.01, 2.0, "kg", "mass of the pole"),
            Param("length", 0.5, 0.1, 3.0, "m", "half the pole's length"),
            Param("force_mag", 10.0, -50.0, 50.0, "N", "push force; negative reverses actions"),
            Param("tau", 0.02, 0.005, 0.05, "s", "integration time step"),
        )
    },
    max_episode_steps=500,
    r_max=500.0,
    reward_threshold=475.0,
)

FAMILIES: dict[str, EnvFamily] = {f.name: f for f in (CARTPOLE,)}


def get_family(name: str) -> EnvFamily:
    """Return the env family called ``name``.

    Raises:
        UnknownFamilyError: no such family (the closest names are suggested).
    """
    try:
        return FAMILIES[name]
    except KeyError:
        valid = _closest_first(name, list(FAMILIES))
        raise UnknownFamilyError(
            f"unknown env family {name!r}; known families: {', '.join(valid)}"
        ) from None


def register_families_with_gymnasium() -> None:
    """Register every family under the ``rl_transfer`` namespace (idempotent)."""
    for fam in FAMILIES.values():
        if fam.gym_id not in gymnasium.registry:
            gymnasium.register(
                id=fam.gym_id,
                entry_point=fam.entry_point,
                max_episode_steps=fam.max_episode_steps,
                reward_threshold=fam.reward_threshold,
                kwargs=dict(fam.extra_kwargs),
            )
