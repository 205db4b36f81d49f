"""Env families: one environment with named, declared parameters; a variant is one setting of them.

A *family* (for example ``cartpole``) is one environment -- a gymnasium id (``"CartPole-v1"``,
``"MiniGrid-DoorKey-5x5-v0"``) or a ``"module:Class"`` (any callable returning a
``gymnasium.Env``) -- whose parameters are declared with a default, bounds and a unit. Each
parameter reaches the env one way (:attr:`Param.via`):

- ``"kwarg"``: a keyword argument of the env's constructor (what ``gymnasium.make`` passes on);
- ``"attribute"``: an attribute of the *unwrapped* env, set right after construction (a value set
  on a wrapper would be read back while the physics stays the default's);
- ``"hook"``: read by the family's hook only.

The family's optional hook, ``hook(env, setting)``, then runs on the unwrapped env to recompute
every constant the env derived from its parameters in ``__init__`` (gymnasium's CartPole computes
``total_mass`` and ``polemass_length`` once; MuJoCo derives subtree masses and inverse weights
from the body masses and inertias, recomputed by ``mujoco.mj_setConst``). Observation wrappers
declared with the family go around the env (for example minigrid's ``ImgObsWrapper`` for its
dict observation), and gymnasium's ``TimeLimit`` applies the variant's horizon
(``max_episode_steps``): an episode it cuts ends with ``truncated=True``, never ``terminated``.

A copy of a variant's env -- ``pickle``, ``copy.deepcopy``, cloudpickle into a ``SubprocVecEnv``
worker -- is a new env of the same variant, rebuilt from the family and the setting, to be reset
before use. (gymnasium's ``EzPickle`` rebuilds an env from its constructor arguments only, which
brings back the default masses of a changed MuJoCo model; a subclass with its own constructor
arguments cannot be rebuilt at all.)

Each family is registered with gymnasium under the ``rl_transfer`` namespace, so
``gymnasium.make("rl_transfer/CartPole-v1", length=1.0)`` works for other tools too. Importing
this module imports neither Box2D nor MuJoCo: a family's env is built on first use.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from envs.errors import EnvsError, ParameterError, UnknownFamilyError

NAMESPACE = "rl_transfer"
KINDS = ("float", "int", "bool")
VIAS = ("kwarg", "attribute", "hook")
INERT_CHECK_STEPS = 256
"""Steps of the rollouts that compare a changed parameter with the default (see
:meth:`EnvFamily.inert_parameters`)."""

_GYM_NAME = re.compile(r"[\w.-]+")


@dataclass(frozen=True)
class Param:
    """A declared parameter of an env family.

    Attributes:
        name: the parameter's name in variants (``{"length": 1.0}``).
        default: the base env's value.
        low, high: inclusive bounds of accepted values.
        unit: unit, for documentation and listings (SI where there is one).
        doc: one line saying what the parameter is.
        attr: the constructor keyword or env attribute that holds it, if not ``name``.
        kind: ``"float"``, ``"int"`` or ``"bool"`` (the type the env receives).
        via: ``"kwarg"``, ``"attribute"`` or ``"hook"`` (see the module docstring).
    """

    name: str
    default: float
    low: float
    high: float
    unit: str = ""
    doc: str = ""
    attr: str | None = None
    kind: str = "float"
    via: str = "kwarg"

    @property
    def attribute(self) -> str:
        """The constructor keyword or unwrapped env's attribute that holds the parameter."""
        return self.attr or self.name

    def cast(self, value: float) -> float | int | bool:
        """``value`` as the env receives it (``bool`` / ``int`` / ``float`` by :attr:`kind`)."""
        return {"bool": bool, "int": int}.get(self.kind, float)(value)

    def changed(self) -> float:
        """A value other than the default, inside the bounds: the other truth value of a bool,
        else the bound farthest from the default (used to check that the parameter acts)."""
        if self.kind == "bool":
            return float(not self.default)
        return self.high if self.high - self.default >= self.default - self.low else self.low


@dataclass(frozen=True)
class EnvFamily:
    """A parameterised environment (see the module docstring).

    Attributes:
        name: family name used in variants and pairs (``"cartpole"``): letters, digits, ``_``,
            ``.`` and ``-``, starting with a letter or digit.
        env: a gymnasium id (``"CartPole-v1"``) or ``"module:Class"`` (any callable returning
            a ``gymnasium.Env`` and taking the ``"kwarg"`` parameters as keyword arguments).
        params: declared parameters by name (a sequence of :class:`Param` is accepted).
        max_episode_steps: default horizon of its variants; None takes the gymnasium id's own
            time limit (none for a ``"module:Class"``).
        r_max: best achievable return per episode at the default horizon, if known.
        reward_threshold: the "solved" return at the default horizon (gymnasium's
            ``reward_threshold``), the default threshold of pairs.
        r_max_note: where R_max comes from (one line).
        r_max_per_step: the most reward one step can give, when R_max is that times the
            horizon (CartPole: 1); R_max and the threshold then follow a variant's horizon.
        hook: ``hook(env, setting)`` (or ``"module:function"``), run on the unwrapped env
            after the parameters are set, to recompute the constants derived from them.
        wrappers: observation wrappers (``"module:Class"`` or classes), applied in order
            around the env.
        imports: modules imported before the env is built, in every process (those that
            register the gymnasium id, e.g. ``"minigrid"``).
        extra_kwargs: fixed constructor keyword arguments.
        reward_fn: ``reward_fn(params, obs, action, next_obs, terminated) -> rewards`` (arrays
            with a leading batch shape; or ``"module:function"``, loaded when the family is
            built): the family's reward, for relabelling stored transitions.
        base_id: the gymnasium id the family's own id is named after
            (``rl_transfer/<base_id>``; default ``rl_transfer/<name>``).
        entry_point: former name of ``env`` (a ``"module:Class"`` taking the parameters as
            keyword arguments), accepted when ``env`` is not given.

    Raises:
        EnvsError: a name that cannot be a folder name or a gymnasium id, no env, or a
            parameter declared with an unknown kind or way, bounds that do not hold its
            default, or a ``"hook"`` parameter without a hook.
    """

    name: str
    env: str = ""
    params: Mapping[str, Param] = field(default_factory=dict)
    max_episode_steps: int | None = None
    r_max: float | None = None
    reward_threshold: float | None = None
    r_max_note: str = ""
    r_max_per_step: float | None = None
    hook: str | Callable[..., None] | None = None
    wrappers: tuple[str | Callable[..., gymnasium.Env], ...] = ()
    imports: tuple[str, ...] = ()
    extra_kwargs: Mapping[str, Any] = field(default_factory=dict)
    reward_fn: str | Callable[..., np.ndarray] | None = None
    base_id: str = ""
    entry_point: str = ""

    def __post_init__(self) -> None:
        from rl_transfer.names import check_name

        check_name("env family", self.name, EnvsError)
        if _GYM_NAME.fullmatch(self.name) is None:
            raise EnvsError(
                f"env family name {self.name!r} is also part of a gymnasium id: use letters, "
                "digits, _ . and - only"
            )
        set_ = functools.partial(object.__setattr__, self)
        set_("env", self.env or self.entry_point)
        if not isinstance(self.env, str) or not self.env:
            raise EnvsError(f"env family {self.name!r}: give env, a gymnasium id or 'module:Class'")
        params = self.params
        if isinstance(params, Sequence):
            params = {getattr(p, "name", repr(p)): p for p in params}
        set_("params", dict(params))
        set_("wrappers", tuple(_as_list(self.wrappers)))
        set_("imports", tuple(_as_list(self.imports)))
        set_("extra_kwargs", dict(self.extra_kwargs))
        if isinstance(self.reward_fn, str):
            set_("reward_fn", _load(self.reward_fn, f"reward_fn of env family {self.name!r}"))
        for key, p in self.params.items():
            self._check_param(key, p)
        for key in ("r_max", "reward_threshold", "r_max_per_step"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise EnvsError(f"env family {self.name!r}: {key} must be a number, got {value!r}")
        steps = self.max_episode_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise EnvsError(f"env family {self.name!r}: max_episode_steps must be an integer")
        if steps is not None and steps <= 0:
            raise EnvsError(f"env family {self.name!r}: max_episode_steps must be positive")
        if self.r_max_per_step is not None and steps is not None:
            most = float(self.r_max_per_step * steps)
            if self.r_max is not None and self.r_max > most:
                raise EnvsError(
                    f"env family {self.name!r}: r_max {self.r_max:g} is more than "
                    f"{steps} steps of r_max_per_step {self.r_max_per_step:g} can give ({most:g})"
                )
            if self.r_max is None:
                set_("r_max", most)
        if None not in (self.r_max, self.reward_threshold) and self.reward_threshold > self.r_max:
            raise EnvsError(
                f"env family {self.name!r}: reward_threshold {self.reward_threshold:g} is above "
                f"r_max {self.r_max:g}"
            )

    def definition_digest(self) -> str:
        """A hash of what builds the family's envs (env, parameters, horizon, hook, wrappers,
        imports, fixed keyword arguments, reward function; callables by ``module:qualname``),
        first 16 hex digits of SHA-256: a user's family whose definition changes under the same
        name is another task (it enters the source cache key and the experiment identity)."""
        import hashlib
        import json

        def ref(x: Any) -> Any:
            if callable(x) and not isinstance(x, str):
                return f"{getattr(x, '__module__', '?')}:{getattr(x, '__qualname__', repr(x))}"
            return x

        blob = {
            "env": self.env,
            "params": {
                k: [p.default, p.low, p.high, p.attr, p.kind, p.via]
                for k, p in sorted(self.params.items())
            },
            "max_episode_steps": self.max_episode_steps,
            "hook": ref(self.hook),
            "wrappers": [ref(w) for w in self.wrappers],
            "imports": list(self.imports),
            "extra_kwargs": {k: ref(v) for k, v in sorted(self.extra_kwargs.items())},
            "reward_fn": ref(self.reward_fn),
        }
        text = json.dumps(blob, sort_keys=True, default=repr).encode()
        return hashlib.sha256(text).hexdigest()[:16]

    def _check_param(self, key: str, p: Param) -> None:
        where = f"env family {self.name!r}: parameter {key!r}"
        if not isinstance(p, Param) or p.name != key:
            raise EnvsError(f"{where} must be an envs.Param named {key!r}")
        if p.kind not in KINDS:
            raise EnvsError(f"{where}: unknown kind {p.kind!r}; valid: {', '.join(KINDS)}")
        if p.via not in VIAS:
            raise EnvsError(f"{where}: unknown via {p.via!r}; valid: {', '.join(VIAS)}")
        if p.via == "hook" and self.hook is None:
            raise EnvsError(f"{where} is set by the hook (via: hook), and the family has none")
        if key == "render_mode" or p.attribute == "render_mode":
            raise EnvsError(f"{where}: render_mode is gymnasium's, not a parameter")
        numbers = (p.default, p.low, p.high)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
            raise EnvsError(f"{where}: default, low and high must be numbers, got {numbers}")
        if not all(math.isfinite(v) for v in numbers) or not p.low <= p.default <= p.high:
            raise EnvsError(
                f"{where}: the default {p.default} must lie inside the bounds [{p.low}, {p.high}]"
            )
        if p.kind != "float" and not all(float(v).is_integer() for v in numbers):
            raise EnvsError(f"{where}: an {p.kind} parameter needs whole default and bounds")

    # ------------------------------------------------------------------------------------------

    @property
    def gym_id(self) -> str:
        """The family's gymnasium id, ``rl_transfer/<base_id or name>``."""
        return f"{NAMESPACE}/{self.base_id or self.name}"

    @property
    def from_module(self) -> bool:
        """True when :attr:`env` is a ``"module:Class"`` rather than a gymnasium id."""
        return ":" in self.env

    def import_modules(self) -> None:
        """Import :attr:`imports` (idempotent).

        Raises:
            EnvsError: a module that cannot be imported (named, with what to install).
        """
        for module in self.imports:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001  (a third-party import may fail in any way)
                raise EnvsError(
                    f"env family {self.name!r} needs the module {module!r}, which cannot be "
                    f"imported ({type(exc).__name__}: {exc}); install the package that provides "
                    "it"
                ) from None

    def default_horizon(self) -> int | None:
        """The horizon of a variant that sets none: :attr:`max_episode_steps`, else the
        gymnasium id's own time limit (None: no time limit)."""
        if self.max_episode_steps is not None or self.from_module:
            return self.max_episode_steps
        return self._base_spec().max_episode_steps

    def horizon(self, max_episode_steps: int | None = None) -> int | None:
        """A variant's horizon (env steps per episode at most): ``max_episode_steps`` if given,
        else :meth:`default_horizon`.

        Raises:
            ParameterError: ``max_episode_steps`` is not a positive integer.
        """
        if max_episode_steps is None:
            return self.default_horizon()
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int):
            raise ParameterError(
                f"max_episode_steps of {self.name!r} must be a positive integer (env steps), "
                f"got {max_episode_steps!r}"
            )
        if max_episode_steps <= 0:
            raise ParameterError(
                f"max_episode_steps of {self.name!r} must be positive, got {max_episode_steps}"
            )
        return max_episode_steps

    def r_max_at(self, horizon: int | None) -> float | None:
        """R_max at ``horizon``: ``r_max_per_step * horizon`` when R_max is per step, else
        :attr:`r_max` at the default horizon, else None (unknown at that horizon)."""
        if self.r_max_per_step is not None and horizon is not None:
            return float(self.r_max_per_step * horizon)
        return self.r_max if horizon == self.default_horizon() else None

    def threshold_at(self, horizon: int | None) -> float | None:
        """The default threshold at ``horizon``: :attr:`reward_threshold`, scaled by
        ``horizon / default horizon`` when R_max is per step; None when unknown there."""
        default = self.default_horizon()
        if self.reward_threshold is None:
            return None
        if horizon == default:
            return self.reward_threshold
        if self.r_max_per_step is not None and horizon is not None and default:
            return self.reward_threshold * horizon / default
        return None

    def validate(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Check parameter names and bounds; return the full setting (defaults filled in;
        ``int`` parameters as ints, the others as floats).

        Raises:
            ParameterError: unknown name (the valid names are listed, closest first) or a value
                that is not a finite number inside the declared bounds.
        """
        full: dict[str, float] = {name: p.default for name, p in self.params.items()}
        for name, p in self.params.items():
            if p.kind == "int":
                full[name] = int(p.default)
        for key, value in params.items():
            if key not in self.params:
                valid = _closest_first(key, list(self.params))
                raise ParameterError(
                    f"unknown parameter {key!r} for env family {self.name!r}; "
                    f"valid parameters: {', '.join(valid) or 'none'}"
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
            if p.kind == "int":
                if not float(value).is_integer():
                    raise ParameterError(
                        f"parameter {key!r} of {self.name!r} must be a whole number, got {value}"
                    )
                full[key] = int(value)
                continue
            full[key] = float(value)
        return full

    def env_spec(self) -> gymnasium.envs.registration.EnvSpec:
        """The gymnasium ``EnvSpec`` of the family: id :attr:`gym_id`, the default horizon,
        the parameters as keyword arguments of its entry point."""
        return gymnasium.envs.registration.EnvSpec(
            id=self.gym_id,
            entry_point=functools.partial(_entry, self),
            max_episode_steps=self.default_horizon(),
            reward_threshold=self.reward_threshold,
        )

    def make(
        self,
        params: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
        **kwargs: Any,
    ) -> gymnasium.Env:
        """Build one env of the variant ``params`` (defaults for the others) with horizon
        ``max_episode_steps`` (None: :meth:`default_horizon`), through ``gymnasium.make``
        (``kwargs``, e.g. ``render_mode``, go to it). A copy of the result is a new env of the
        same variant (see the module docstring).

        Raises:
            ParameterError: see :meth:`validate` and :meth:`horizon`.
            EnvsError: a module, env, wrapper or hook of the family that cannot be loaded, or an
                ``"attribute"`` parameter the env does not have.
        """
        setting = self.validate(params or {})
        horizon = self.horizon(max_episode_steps)
        self.import_modules()
        env = gymnasium.make(
            self.env_spec(),
            max_episode_steps=-1 if horizon is None else horizon,
            **setting,
            **kwargs,
        )
        _rebuild_copies(
            env, functools.partial(_reduce_made, self, setting, max_episode_steps, dict(kwargs))
        )
        return env

    def differences(
        self, a: Mapping[str, Any], b: Mapping[str, Any]
    ) -> dict[str, tuple[float, float]]:
        """Parameters whose value differs between two settings: name -> (a's, b's)."""
        fa, fb = self.validate(a), self.validate(b)
        return {k: (fa[k], fb[k]) for k in self.params if fa[k] != fb[k]}

    def inert_parameters(self, steps: int = INERT_CHECK_STEPS, seed: int = 0) -> list[str]:
        """The parameters that change nothing: with the same reset seed and the same actions
        (sampled from the default variant's action space seeded with ``seed``), the variant
        with only that parameter changed (:meth:`Param.changed`) gives the default's spaces
        and the same observations, rewards, terminations and truncations for ``steps`` steps
        (episodes restart without a seed when they end).

        Returns:
            The inert parameters' names, in declaration order (empty when every one acts).
        """
        base_spaces, actions, base = _rollout(self, {}, steps, seed)
        inert = []
        for name, p in self.params.items():
            spaces, _, traj = _rollout(self, {name: p.changed()}, steps, seed, base_spaces, actions)
            if spaces is not None and _same(traj, base):
                inert.append(name)
        return inert

    def _base_spec(self) -> gymnasium.envs.registration.EnvSpec:
        self.import_modules()
        try:
            return gymnasium.spec(self.env)
        except gymnasium.error.Error as exc:
            hint = " (list the module that registers it under imports)" if not self.imports else ""
            raise EnvsError(
                f"env family {self.name!r}: {self.env!r} is not a registered gymnasium id{hint}: "
                f"{exc}"
            ) from None

    def _creator(self) -> tuple[Callable[..., gymnasium.Env], dict[str, Any]]:
        """The callable that builds the bare env, and its fixed keyword arguments."""
        if self.from_module:
            return _load(self.env, f"env of env family {self.name!r}"), {}
        base = self._base_spec()
        entry = base.entry_point
        if not callable(entry):
            entry = _load(str(entry), f"entry point of {self.env!r}")
        return entry, dict(base.kwargs)


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, (str, bytes)) or callable(x):
        return [x]
    return list(x)


def _closest_first(name: str, valid: list[str]) -> list[str]:
    close = difflib.get_close_matches(name, valid, n=len(valid), cutoff=0.0)
    return close + [v for v in valid if v not in close]


def _load(ref: str | Any, what: str) -> Any:
    """The object named ``"module:attr"`` (``attr`` may be dotted); a callable as it is.

    Raises:
        EnvsError: not ``module:attr``, or it cannot be imported (``what`` names it).
    """
    if callable(ref):
        return ref
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise EnvsError(f"{what}: {ref!r} must be 'module:name'")
    module, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001  (a third-party import may fail in any way)
        raise EnvsError(f"cannot load {what}, {ref!r}: {type(exc).__name__}: {exc}") from None
    return obj


# --------------------------------------------------------------------------------------------
# Building a variant's env, and rebuilding it when it is copied.


def _core(
    family: EnvFamily, setting: Mapping[str, float], render_mode: str | None
) -> gymnasium.Env:
    """The family's env with the variant's parameters set and the hook run (no wrappers)."""
    family.import_modules()
    creator, kwargs = family._creator()
    kwargs.update(family.extra_kwargs)
    for name, p in family.params.items():
        if p.via == "kwarg":
            kwargs[p.attribute] = p.cast(setting[name])
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = creator(**kwargs)
    unwrapped = env.unwrapped
    for name, p in family.params.items():
        if p.via == "attribute":
            if not hasattr(unwrapped, p.attribute):
                raise EnvsError(
                    f"env family {family.name!r}: parameter {name!r} is set as the attribute "
                    f"{p.attribute!r} of {type(unwrapped).__name__}, which has no such attribute"
                )
            setattr(unwrapped, p.attribute, p.cast(setting[name]))
    if family.hook is not None:
        _load(family.hook, f"hook of env family {family.name!r}")(unwrapped, dict(setting))
    _rebuild_copies(unwrapped, functools.partial(_reduce_core, family, dict(setting), render_mode))
    return env


def _entry(family: EnvFamily, render_mode: str | None = None, **params: float) -> gymnasium.Env:
    """gymnasium entry point of a family: the env of the variant ``params`` inside the family's
    declared wrappers (gymnasium adds its own, the time limit among them)."""
    env = _core(family, family.validate(params), render_mode)
    for wrapper in family.wrappers:
        env = _load(wrapper, f"wrapper of env family {family.name!r}")(env)
    return env


def _rebuild_copies(env: gymnasium.Env, reduce: Callable[[int], tuple]) -> None:
    """Make ``pickle`` and ``copy`` rebuild ``env`` with ``reduce`` (an instance's
    ``__reduce_ex__`` is what both look up first; other instances of the class are unaffected)."""
    try:
        vars(env)["__reduce_ex__"] = reduce
    except TypeError:  # no instance __dict__ (__slots__): copies follow the class's own rules
        pass


def _reduce_core(
    family: EnvFamily, setting: dict[str, float], render_mode: str | None, protocol: int
) -> tuple:
    return _rebuild_core, (family, setting, render_mode)


def _rebuild_core(
    family: EnvFamily, setting: dict[str, float], render_mode: str | None
) -> gymnasium.Env:
    return _core(family, setting, render_mode).unwrapped


def _reduce_made(
    family: EnvFamily,
    setting: dict[str, float],
    max_episode_steps: int | None,
    kwargs: dict[str, Any],
    protocol: int,
) -> tuple:
    return _rebuild_made, (family, setting, max_episode_steps, kwargs)


def _rebuild_made(
    family: EnvFamily,
    setting: dict[str, float],
    max_episode_steps: int | None,
    kwargs: dict[str, Any],
) -> gymnasium.Env:
    return family.make(setting, max_episode_steps, **kwargs)


def _rollout(
    family: EnvFamily,
    params: Mapping[str, Any],
    steps: int,
    seed: int,
    spaces: tuple | None = None,
    actions: list[Any] | None = None,
) -> tuple[tuple | None, list[Any], list[Any]]:
    """(spaces, actions, trajectory) of ``steps`` steps of the variant; spaces None when they
    differ from ``spaces`` (the variant then differs already)."""
    env = family.make(params)
    try:
        own = (env.observation_space, env.action_space)
        if spaces is not None and not (_same_space(own[0], spaces[0]) and own[1] == spaces[1]):
            return None, [], []
        obs, _ = env.reset(seed=seed)
        if actions is None:
            env.action_space.seed(seed)
            actions = [env.action_space.sample() for _ in range(steps)]
        traj: list[Any] = [obs]
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            traj.append((obs, float(reward), bool(terminated), bool(truncated)))
            if terminated or truncated:
                traj.append(env.reset()[0])
    finally:
        env.close()
    return own, actions, traj


def _same_space(a: gymnasium.Space, b: gymnasium.Space) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (a third-party space's __eq__ may not compare)
        return type(a) is type(b) and str(a) == str(b)


def _same(a: Any, b: Any) -> bool:
    """Equal values, recursively (dicts, sequences, arrays; NaN equals NaN)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


# --------------------------------------------------------------------------------------------
# The built-in families: gymnasium's own envs, their parameters set as attributes of the
# unwrapped env or as constructor arguments, with a hook where the env derives constants.


def _cartpole_constants(env: Any, setting: Mapping[str, float]) -> None:
    """gymnasium's CartPole computes ``total_mass`` and ``polemass_length`` once, in
    ``__init__``: recompute them from the variant's masses and length."""
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


def _lunarlander_wind(env: Any, setting: Mapping[str, float]) -> None:
    """Wind is on when either power is positive (LunarLander reads ``enable_wind`` in
    ``reset`` and ``step`` only; with it on, ``reset`` draws the wind's phase from the env's
    random generator, so the windless default keeps it off)."""
    env.enable_wind = setting["wind_power"] > 0 or setting["turbulence_power"] > 0


def _hopper_physics(env: Any, setting: Mapping[str, float]) -> None:
    """Hopper-v5: every body's mass *and* rotational inertia times ``mass_scale`` (a body
    ``s`` times heavier of the same shape and density distribution), gravity along -z; then
    ``mujoco.mj_setConst`` recomputes the constants MuJoCo derives from the model (subtree
    masses, inverse weights, mean inertia), which otherwise keep the default model's values."""
    import mujoco

    model = env.model
    scale = setting["mass_scale"]
    model.body_mass[:] = model.body_mass * scale
    model.body_inertia[:] = model.body_inertia * scale
    model.opt.gravity[2] = -setting["gravity"]
    mujoco.mj_setConst(model, env.data)


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


_HERE = "envs.families"

CARTPOLE = EnvFamily(
    name="cartpole",
    env="CartPole-v1",
    base_id="CartPole-v1",
    params=(
        Param("gravity", 9.8, 1.0, 30.0, "m/s^2", "gravitational acceleration", via="attribute"),
        Param("masscart", 1.0, 0.1, 10.0, "kg", "mass of the cart", via="attribute"),
        Param("masspole", 0.1, 0.01, 2.0, "kg", "mass of the pole", via="attribute"),
        Param("length", 0.5, 0.1, 3.0, "m", "half the pole's length", via="attribute"),
        Param(
            "force_mag",
            10.0,
            -50.0,
            50.0,
            "N",
            "push force; negative reverses actions",
            via="attribute",
        ),
        Param("tau", 0.02, 0.005, 0.05, "s", "integration time step", via="attribute"),
        Param(
            "sutton_barto_reward",
            0.0,
            0.0,
            1.0,
            "",
            "reward only: 0 per step, -1 on failure",
            kind="bool",
            via="kwarg",
        ),
    ),
    hook=f"{_HERE}:_cartpole_constants",
    max_episode_steps=500,
    r_max_per_step=1.0,
    reward_threshold=475.0,
    r_max_note="the time limit: one reward per step for 500 steps",
    reward_fn=_cartpole_reward,
)
MOUNTAINCAR = EnvFamily(
    name="mountaincar",
    env="MountainCar-v0",
    base_id="MountainCar-v0",
    params=(
        Param(
            "force", 0.001, 0.0002, 0.005, "velocity/step", "engine force per step", via="attribute"
        ),
        Param(
            "gravity",
            0.0025,
            0.0005,
            0.01,
            "velocity/step",
            "gravity along the slope",
            via="attribute",
        ),
    ),
    max_episode_steps=200,
    r_max=-100.0,
    reward_threshold=-110.0,
    r_max_note="reference: about the optimal policy's mean return (-1 per step, ~100 steps per "
    "episode)",
)
MOUNTAINCAR_CONTINUOUS = EnvFamily(
    name="mountaincar-continuous",
    env="MountainCarContinuous-v0",
    base_id="MountainCarContinuous-v0",
    params=(
        Param("power", 0.0015, 0.0003, 0.006, "velocity/step", "engine power", via="attribute"),
    ),
    max_episode_steps=999,
    r_max=100.0,
    reward_threshold=90.0,
    r_max_note="upper bound: the +100 goal reward with no action cost",
)
ACROBOT = EnvFamily(
    name="acrobot",
    env="Acrobot-v1",
    base_id="Acrobot-v1",
    params=tuple(
        Param(name, default, low, high, unit, doc, attr=attr, via="attribute")
        for name, default, low, high, unit, doc, attr in (
            ("link_length_1", 1.0, 0.25, 4.0, "m", "length of link 1", "LINK_LENGTH_1"),
            ("link_mass_1", 1.0, 0.25, 4.0, "kg", "mass of link 1", "LINK_MASS_1"),
            ("link_mass_2", 1.0, 0.25, 4.0, "kg", "mass of link 2", "LINK_MASS_2"),
            ("link_com_pos_1", 0.5, 0.1, 2.0, "m", "centre of mass of link 1", "LINK_COM_POS_1"),
            ("link_com_pos_2", 0.5, 0.1, 2.0, "m", "centre of mass of link 2", "LINK_COM_POS_2"),
            ("link_moi", 1.0, 0.25, 4.0, "kg m^2", "moment of inertia of both links", "LINK_MOI"),
        )
    ),
    max_episode_steps=500,
    r_max=-60.0,
    reward_threshold=-100.0,
    r_max_note="reference: about the best published mean return (-1 per step)",
)
"""Acrobot-v1 with the link constants its dynamics read. ``LINK_LENGTH_2`` is never read by the
equations of motion (only by rendering), so it is not offered: lengthen the second link through
``link_com_pos_2`` and ``link_moi``."""
PENDULUM = EnvFamily(
    name="pendulum",
    env="Pendulum-v1",
    base_id="Pendulum-v1",
    params=(
        Param("m", 1.0, 0.2, 5.0, "kg", "mass of the pendulum", via="attribute"),
        Param("l", 1.0, 0.2, 5.0, "m", "length of the pendulum", via="attribute"),
        Param("g", 10.0, 1.0, 30.0, "m/s^2", "gravitational acceleration", via="attribute"),
    ),
    max_episode_steps=200,
    r_max=-140.0,
    reward_threshold=-200.0,
    r_max_note="reference: about the best published mean return (cost of swinging up)",
)
"""Pendulum-v1; ``max_torque`` and ``max_speed`` are not offered: the action and observation
spaces are built from them."""
LUNARLANDER = EnvFamily(
    name="lunarlander",
    env="LunarLander-v3",
    base_id="LunarLander-v3",
    params=(
        Param("gravity", -10.0, -11.99, -0.01, "m/s^2", "gravity (negative: downwards)"),
        Param("wind_power", 0.0, 0.0, 20.0, "", "maximum linear wind force; 0 = no wind"),
        Param("turbulence_power", 0.0, 0.0, 2.0, "", "maximum rotational turbulence"),
    ),
    hook=f"{_HERE}:_lunarlander_wind",
    max_episode_steps=1000,
    r_max=300.0,
    reward_threshold=200.0,
    r_max_note="reference: a well-trained lander scores about 300",
)
"""LunarLander-v3 (discrete): the parameters are constructor arguments (its Box2D world is built
with the gravity in ``__init__``)."""
HOPPER = EnvFamily(
    name="hopper",
    env="Hopper-v5",
    base_id="Hopper-v5",
    params=(
        Param(
            "mass_scale", 1.0, 0.25, 4.0, "x", "factor on every body's mass and inertia", via="hook"
        ),
        Param("gravity", 9.81, 1.0, 30.0, "m/s^2", "gravitational acceleration", via="hook"),
    ),
    hook=f"{_HERE}:_hopper_physics",
    max_episode_steps=1000,
    r_max=3500.0,
    reward_threshold=2500.0,
    r_max_note="reference: rl-baselines3-zoo's SAC/TD3 agents score about 3,500",
)

BUILTIN: dict[str, EnvFamily] = {
    f.name: f
    for f in (CARTPOLE, MOUNTAINCAR, MOUNTAINCAR_CONTINUOUS, ACROBOT, PENDULUM, LUNARLANDER, HOPPER)
}
"""The built-in families, by name."""

FAMILIES: dict[str, EnvFamily] = dict(BUILTIN)
"""Every registered family, by name (the built-in ones and the user's)."""


# --------------------------------------------------------------------------------------------
# The registry.

ENTRY_POINT_GROUP = "rl_transfer.families"
"""Entry-point group through which a user's package adds env families: each entry point names
an :class:`EnvFamily` object (``myfam = "my_package.envs:MY_FAMILY"``)."""
_entry_points_loaded = False


def register_family(family: EnvFamily, origin: str = "", check: bool = True) -> EnvFamily:
    """Add ``family`` to the registry and register its gymnasium id; return it. Registering the
    same definition again returns the registered one.

    With ``check`` (the default; the built-in families are checked by the test suite instead,
    so that importing :mod:`envs` stays cheap), the family is first checked:

    - it can be pickled (worker processes and Ray tasks receive it with each job);
    - every parameter acts (:meth:`EnvFamily.inert_parameters`), which also builds its env.

    Raises:
        EnvsError: ``family`` is not an EnvFamily, its name is taken by another family, it
            cannot be pickled, or its env cannot be built (``origin``, e.g. an entry point or a
            file, is named in the message).
        ParameterError: a parameter that changes nothing (named).
    """
    where = f"{origin}: " if origin else ""
    if not isinstance(family, EnvFamily):
        raise EnvsError(f"{where}{family!r} is not an envs.EnvFamily")
    taken = FAMILIES.get(family.name)
    if taken is not None:
        if taken == family:
            return taken
        owner = "a built-in family" if family.name in BUILTIN else "another family"
        raise EnvsError(
            f"{where}env family name {family.name!r} is taken by {owner}; give yours another name"
        )
    clash = [f.name for f in FAMILIES.values() if f.gym_id == family.gym_id]
    if clash:
        raise EnvsError(
            f"{where}env family {family.name!r} would be registered with gymnasium as "
            f"{family.gym_id!r}, the id of family {clash[0]!r}; give yours another name"
        )
    if check:
        try:
            _check_family(family)
        except EnvsError as exc:
            raise type(exc)(f"{where}{exc}") from None
    FAMILIES[family.name] = family
    _register_with_gymnasium(family)
    return family


def _check_family(family: EnvFamily) -> None:
    try:
        pickle.loads(pickle.dumps(family))
    except Exception as exc:  # noqa: BLE001  (pickling fails with several error types)
        raise EnvsError(
            f"env family {family.name!r} cannot be sent to worker processes ({type(exc).__name__}:"
            f" {exc}): define its env, hook, wrappers and reward_fn at the top level of an "
            "importable module, or give them as 'module:name' strings"
        ) from None
    try:
        inert = family.inert_parameters()
    except EnvsError:
        raise
    except Exception as exc:  # noqa: BLE001  (a user's env may fail in any way: name it)
        raise EnvsError(
            f"env family {family.name!r}: its env cannot be built and stepped "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if inert:
        raise ParameterError(
            f"env family {family.name!r}: parameter(s) {', '.join(inert)} change nothing (the "
            f"default and a changed value give the same {INERT_CHECK_STEPS}-step trajectories "
            "for the same seed and actions): set them as the env reads them (via: kwarg, "
            "attribute or hook) or remove them"
        )


def _register_with_gymnasium(family: EnvFamily) -> None:
    if family.gym_id not in gymnasium.registry:
        gymnasium.registry[family.gym_id] = family.env_spec()


def unregister_family(name: str) -> None:
    """Remove a user's family from the registry and from gymnasium's (tests clean up with it).

    Raises:
        EnvsError: ``name`` is a built-in family.
    """
    if name in BUILTIN:
        raise EnvsError(f"env family {name!r} is built in")
    family = FAMILIES.pop(name, None)
    if family is not None:
        gymnasium.registry.pop(family.gym_id, None)


def load_family_entry_points() -> None:
    """Register the families of every installed package's ``rl_transfer.families`` entry points
    (once per process, when all of them load; a failure is raised again at every call).

    Raises:
        UnknownFamilyError: an entry point that cannot be loaded.
        EnvsError, ParameterError: a family that :func:`register_family` refuses (the entry
            point is named).
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
        _register_with_gymnasium(fam)


# --------------------------------------------------------------------------------------------
# Families from plain data (pairs files).

FAMILY_KEYS = (
    "name",
    "env",
    "params",
    "imports",
    "wrappers",
    "hook",
    "max_episode_steps",
    "r_max",
    "r_max_per_step",
    "reward_threshold",
    "r_max_note",
    "extra_kwargs",
    "reward_fn",
)
PARAM_KEYS = ("default", "low", "high", "unit", "doc", "kind", "via", "attr")


def family_from_dict(data: Mapping[str, Any]) -> EnvFamily:
    """An :class:`EnvFamily` from plain data (a pairs file's ``families:`` entry): the
    :data:`FAMILY_KEYS`, with ``params`` a mapping of name to ``{default, low, high, unit,
    doc, kind, via, attr}`` (``default``, ``low`` and ``high`` required).

    Raises:
        EnvsError: not a mapping, an unknown or missing key (the closest valid one suggested),
            or what :class:`EnvFamily` refuses.
    """
    if not isinstance(data, Mapping):
        raise EnvsError(f"a family must be a mapping of {', '.join(FAMILY_KEYS)}, got {data!r}")
    _check_keys(data, FAMILY_KEYS, ("name", "env"), "")
    raw_params = data.get("params") or {}
    if not isinstance(raw_params, Mapping):
        raise EnvsError("params must map each parameter's name to {default, low, high, ...}")
    params = []
    for pname, spec in raw_params.items():
        if not isinstance(spec, Mapping):
            raise EnvsError(f"parameter {pname!r} must be a mapping of {', '.join(PARAM_KEYS)}")
        _check_keys(spec, PARAM_KEYS, ("default", "low", "high"), f"parameter {pname!r}: ")
        params.append(Param(name=str(pname), **spec))
    fields = {k: v for k, v in data.items() if k != "params"}
    for key in ("wrappers", "imports"):
        if key in fields:
            fields[key] = tuple(_as_list(fields[key]))
    try:
        return EnvFamily(params=tuple(params), **fields)
    except TypeError as exc:
        raise EnvsError(str(exc)) from None


def _check_keys(
    data: Mapping[str, Any], valid: tuple[str, ...], required: tuple[str, ...], where: str
) -> None:
    unknown = sorted(set(map(str, data)) - set(valid))
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
        raise EnvsError(f"{where}unknown key {unknown[0]!r}{hint}")
    missing = [k for k in required if k not in data]
    if missing:
        raise EnvsError(f"{where}missing key(s) {', '.join(missing)}")
