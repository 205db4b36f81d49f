"""Env families: one gymnasium env class with named, declared physical parameters.

A *family* (for example ``cartpole``) is one gymnasium environment whose physical parameters are
declared with a default, bounds and a unit. A *variant* is one setting of them. Setting a parameter
goes to the unwrapped env at construction time (so every instance -- training, evaluation, every
vector worker -- is built with it) and recomputes every derived constant the env caches
(gymnasium's CartPole computes ``total_mass`` and ``polemass_length`` once, in ``__init__``;
a value set on a wrapper instead of ``env.unwrapped`` would be read back while the physics stays
the default's).

Each family is registered with gymnasium under the ``rl_transfer`` namespace when :mod:`envs` is
imported, so ``gymnasium.make("rl_transfer/CartPole-v1", length=1.0)`` works for other tools too.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.box2d.lunar_lander import LunarLander
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

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
    attr: str | None = None
    kind: str = "float"

    @property
    def attribute(self) -> str:
        """The unwrapped env's attribute that holds the parameter."""
        return self.attr or self.name


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
    r_max_note: str = ""
    extra_kwargs: Mapping[str, Any] = field(default_factory=dict)
    reward_fn: Callable[..., np.ndarray] | None = None
    """``reward_fn(params, obs, action, next_obs, terminated) -> rewards`` (arrays with a leading
    batch shape): the family's reward, for relabelling stored transitions."""

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
            if p.kind == "bool":
                if value not in (True, False, 0, 1):
                    raise ParameterError(
                        f"parameter {key!r} of {self.name!r} must be true or false, got {value!r}"
                    )
                full[key] = float(bool(value))
                continue
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
# The families. Each env class takes its family's parameters as keyword arguments, validates
# them, sets them on itself (the unwrapped env) and recomputes what the base class derived from
# them in __init__.


def _set(env: Any, family: EnvFamily, params: Mapping[str, Any]) -> dict[str, float]:
    full = family.validate(params)
    for key, value in full.items():
        setattr(env, family.params[key].attribute, value)
    return full


class CartPoleFamilyEnv(CartPoleEnv):
    """gymnasium's CartPole-v1 with its physical parameters settable at construction.

    Parameters (keyword arguments, all optional; see ``CARTPOLE.params`` for bounds):
    ``gravity`` (m/s^2), ``masscart`` (kg), ``masspole`` (kg), ``length`` (m, *half* the pole's
    length, as in gymnasium), ``force_mag`` (N; negative reverses the push direction), ``tau`` (s),
    and the reward-only ``sutton_barto_reward`` (0 per step, -1 on failure).

    gymnasium computes ``total_mass`` and ``polemass_length`` once in ``__init__``; they are
    recomputed here after the parameters are set, so the equations of motion use the variant.

    Raises:
        ParameterError: unknown parameter name or value out of bounds.
    """

    def __init__(self, render_mode: str | None = None, **params: float) -> None:
        super().__init__(render_mode=render_mode)
        full = _set(self, CARTPOLE, params)
        self._sutton_barto_reward = bool(full["sutton_barto_reward"])
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class MountainCarFamilyEnv(MountainCarEnv):
    """MountainCar-v0 with ``force`` and ``gravity`` settable (both read by ``step``; units:
    velocity change per step). Nothing is derived from them."""

    def __init__(self, render_mode: str | None = None, **params: float) -> None:
        super().__init__(render_mode=render_mode)
        _set(self, MOUNTAINCAR, params)


class MountainCarContinuousFamilyEnv(Continuous_MountainCarEnv):
    """MountainCarContinuous-v0 with ``power`` settable. Its ``step`` hard-codes gravity (0.0025),
    so gravity is not offered."""

    def __init__(self, render_mode: str | None = None, **params: float) -> None:
        super().__init__(render_mode=render_mode)
        _set(self, MOUNTAINCAR_CONTINUOUS, params)


class AcrobotFamilyEnv(AcrobotEnv):
    """Acrobot-v1 with the link constants its dynamics read: ``link_length_1``,
    ``link_mass_1``, ``link_mass_2``, ``link_com_pos_1``, ``link_com_pos_2``, ``link_moi``.

    ``LINK_LENGTH_2`` is never read by the equations of motion (only by rendering), so it is not
    offered (a variant changing it would be the source again): lengthen the second link through
    ``link_com_pos_2`` and ``link_moi``.
    """

    def __init__(self, render_mode: str | None = None, **params: float) -> None:
        super().__init__(render_mode=render_mode)
        _set(self, ACROBOT, params)


class PendulumFamilyEnv(PendulumEnv):
    """Pendulum-v1 with mass ``m`` (kg), length ``l`` (m) and gravity ``g`` (m/s^2), all read by
    ``step``. ``max_torque`` and ``max_speed`` are not offered: the action and observation spaces
    are built from them."""

    def __init__(self, render_mode: str | None = None, **params: float) -> None:
        super().__init__(render_mode=render_mode)
        _set(self, PENDULUM, params)


class LunarLanderFamilyEnv(LunarLander):
    """LunarLander-v3 (discrete) with ``gravity`` (m/s^2, negative), ``wind_power`` and
    ``turbulence_power``; they are passed to gymnasium's constructor, which builds the Box2D world
    with them (setting them afterwards would not reach the world). Wind is on when either power
    is positive."""

    def __init__(self, render_mode: str | None = None, **params: float) -> None:
        full = LUNARLANDER.validate(params)
        wind = full["wind_power"] > 0 or full["turbulence_power"] > 0
        super().__init__(
            render_mode=render_mode,
            gravity=full["gravity"],
            enable_wind=wind,
            wind_power=full["wind_power"],
            turbulence_power=full["turbulence_power"],
        )


def _hopper_class() -> type:
    from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

    return HopperEnv


def make_hopper(render_mode: str | None = None, **params: float) -> gymnasium.Env:
    """Hopper-v5 (MuJoCo) with ``mass_scale`` (every body's mass multiplied) and ``gravity``
    (m/s^2). After the model is changed, ``mujoco.mj_setConst`` recomputes the constants MuJoCo
    derives from it (subtree masses, inverse weights): otherwise they keep the default model's
    values (as CartPole's ``total_mass`` stays stale when ``masspole`` is set after ``__init__``).

    Raises:
        ParameterError: unknown parameter name or value out of bounds.
    """
    import mujoco

    full = HOPPER.validate(params)
    env = _hopper_class()(render_mode=render_mode)
    model = env.unwrapped.model
    model.body_mass[:] = model.body_mass * full["mass_scale"]
    model.opt.gravity[2] = -full["gravity"]
    mujoco.mj_setConst(model, env.unwrapped.data)
    env.unwrapped.mass_scale = full["mass_scale"]
    return env


def _family(
    name: str,
    base_id: str,
    entry: str,
    params: tuple[Param, ...],
    steps: int,
    r_max: float | None,
    threshold: float | None,
    r_max_note: str,
) -> EnvFamily:
    return EnvFamily(
        name=name,
        base_id=base_id,
        entry_point=f"envs.families:{entry}",
        params={p.name: p for p in params},
        max_episode_steps=steps,
        r_max=r_max,
        reward_threshold=threshold,
        r_max_note=r_max_note,
    )


def _cartpole_reward(
    params: Mapping[str, float],
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray,
    terminated: np.ndarray,
) -> np.ndarray:
    """CartPole-v1's reward: 1 per step; with ``sutton_barto_reward``, 0 per step and -1 on the
    terminating step."""
    if params.get("sutton_barto_reward"):
        return np.where(terminated, -1.0, 0.0).astype(np.float32)
    return np.ones(terminated.shape, dtype=np.float32)


CARTPOLE = _family(
    "cartpole",
    "CartPole-v1",
    "CartPoleFamilyEnv",
    (
        Param("gravity", 9.8, 1.0, 30.0, "m/s^2", "gravitational acceleration"),
        Param("masscart", 1.0, 0.1, 10.0, "kg", "mass of the cart"),
        Param("masspole", 0.1, 0.01, 2.0, "kg", "mass of the pole"),
        Param("length", 0.5, 0.1, 3.0, "m", "half the pole's length"),
        Param("force_mag", 10.0, -50.0, 50.0, "N", "push force; negative reverses actions"),
        Param("tau", 0.02, 0.005, 0.05, "s", "integration time step"),
        Param(
            "sutton_barto_reward",
            0.0,
            0.0,
            1.0,
            "",
            "reward only: 0 per step, -1 on failure",
            attr="_sutton_barto_reward_flag",
            kind="bool",
        ),
    ),
    500,
    500.0,
    475.0,
    "the time limit: one reward per step for 500 steps",
)
CARTPOLE = replace(CARTPOLE, reward_fn=_cartpole_reward)

MOUNTAINCAR = _family(
    "mountaincar",
    "MountainCar-v0",
    "MountainCarFamilyEnv",
    (
        Param("force", 0.001, 0.0002, 0.005, "velocity/step", "engine force per step"),
        Param("gravity", 0.0025, 0.0005, 0.01, "velocity/step", "gravity along the slope"),
    ),
    200,
    -100.0,
    -110.0,
    "reference: about the optimal policy's mean return (-1 per step, ~100 steps per episode)",
)
MOUNTAINCAR_CONTINUOUS = _family(
    "mountaincar-continuous",
    "MountainCarContinuous-v0",
    "MountainCarContinuousFamilyEnv",
    (Param("power", 0.0015, 0.0003, 0.006, "velocity/step", "engine power"),),
    999,
    100.0,
    90.0,
    "upper bound: the +100 goal reward with no action cost",
)
ACROBOT = _family(
    "acrobot",
    "Acrobot-v1",
    "AcrobotFamilyEnv",
    (
        Param("link_length_1", 1.0, 0.25, 4.0, "m", "length of link 1", attr="LINK_LENGTH_1"),
        Param("link_mass_1", 1.0, 0.25, 4.0, "kg", "mass of link 1", attr="LINK_MASS_1"),
        Param("link_mass_2", 1.0, 0.25, 4.0, "kg", "mass of link 2", attr="LINK_MASS_2"),
        Param(
            "link_com_pos_1", 0.5, 0.1, 2.0, "m", "centre of mass of link 1", attr="LINK_COM_POS_1"
        ),
        Param(
            "link_com_pos_2", 0.5, 0.1, 2.0, "m", "centre of mass of link 2", attr="LINK_COM_POS_2"
        ),
        Param(
            "link_moi", 1.0, 0.25, 4.0, "kg m^2", "moment of inertia of both links", attr="LINK_MOI"
        ),
    ),
    500,
    -60.0,
    -100.0,
    "reference: about the best published mean return (-1 per step)",
)
PENDULUM = _family(
    "pendulum",
    "Pendulum-v1",
    "PendulumFamilyEnv",
    (
        Param("m", 1.0, 0.2, 5.0, "kg", "mass of the pendulum"),
        Param("l", 1.0, 0.2, 5.0, "m", "length of the pendulum"),
        Param("g", 10.0, 1.0, 30.0, "m/s^2", "gravitational acceleration"),
    ),
    200,
    -140.0,
    -200.0,
    "reference: about the best published mean return (cost of swinging up)",
)
LUNARLANDER = _family(
    "lunarlander",
    "LunarLander-v3",
    "LunarLanderFamilyEnv",
    (
        Param("gravity", -10.0, -11.99, -0.01, "m/s^2", "gravity (negative: downwards)"),
        Param("wind_power", 0.0, 0.0, 20.0, "", "maximum linear wind force; 0 = no wind"),
        Param("turbulence_power", 0.0, 0.0, 2.0, "", "maximum rotational turbulence"),
    ),
    1000,
    300.0,
    200.0,
    "reference: a well-trained lander scores about 300",
)
HOPPER = _family(
    "hopper",
    "Hopper-v5",
    "make_hopper",
    (
        Param("mass_scale", 1.0, 0.25, 4.0, "x", "factor on every body's mass"),
        Param("gravity", 9.81, 1.0, 30.0, "m/s^2", "gravitational acceleration"),
    ),
    1000,
    3500.0,
    2500.0,
    "reference: rl-baselines3-zoo's SAC/TD3 agents score about 3,500",
)

FAMILIES: dict[str, EnvFamily] = {
    f.name: f
    for f in (CARTPOLE, MOUNTAINCAR, MOUNTAINCAR_CONTINUOUS, ACROBOT, PENDULUM, LUNARLANDER, HOPPER)
}


ENTRY_POINT_GROUP = "rl_transfer.families"
"""Entry-point group through which a user's package adds env families: each entry point names
an :class:`EnvFamily` object (``myfam = "my_package.envs:MY_FAMILY"``)."""
_entry_points_loaded = False


def register_family(family: EnvFamily, origin: str = "") -> EnvFamily:
    """Add ``family`` to the registry and register its gymnasium id; return it.

    Raises:
        UnknownFamilyError: ``family`` is not an EnvFamily, or its name is taken by another one
            (``origin``, an entry point, is named in the message).
    """
    where = f"{origin}: " if origin else ""
    if not isinstance(family, EnvFamily):
        raise UnknownFamilyError(f"{where}{family!r} is not an envs.EnvFamily")
    taken = FAMILIES.get(family.name)
    if taken is not None and taken != family:
        raise UnknownFamilyError(f"{where}env family name {family.name!r} is taken")
    FAMILIES[family.name] = family
    if family.gym_id not in gymnasium.registry:
        gymnasium.register(
            id=family.gym_id,
            entry_point=family.entry_point,
            max_episode_steps=family.max_episode_steps,
            reward_threshold=family.reward_threshold,
            kwargs=dict(family.extra_kwargs),
        )
    return family


def load_family_entry_points() -> None:
    """Register the families of every installed package's ``rl_transfer.families`` entry points
    (once per process, when all of them load; a failure is raised again at every call).

    Raises:
        UnknownFamilyError: an entry point that cannot be loaded, is not an EnvFamily or takes
            a name already used (the entry point is named).
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    from rl_transfer.entrypoints import load_group

    load_group(
        ENTRY_POINT_GROUP,
        lambda name, family, where: register_family(family, origin=where),
        UnknownFamilyError,
    )
    _entry_points_loaded = True


def get_family(name: str) -> EnvFamily:
    """Return the env family called ``name`` (built in, registered, or from an installed
    package's ``rl_transfer.families`` entry point).

    Raises:
        UnknownFamilyError: no such family (the closest names are suggested).
    """
    load_family_entry_points()  # the same answer whichever name is asked for
    try:
        return FAMILIES[name]
    except KeyError:
        valid = _closest_first(name, list(FAMILIES))
        raise UnknownFamilyError(
            f"unknown env family {name!r}; known families: {', '.join(valid)}"
        ) from None


def register_families_with_gymnasium() -> None:
    """Register every family under the ``rl_transfer`` namespace (idempotent)."""
    for fam in list(FAMILIES.values()):
        register_family(fam)
