"""Env pairs: a source task and a target task, with what is needed to score transfer between them.

A pair names a source variant and a target variant (each an env family plus its parameters), the
threshold used for time to threshold, and the normalization bounds R_min / R_max used for ratios
and forward transfer (see the project's docs/metrics.md). Every check runs at registration, never
in the middle of training.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from envs.errors import EnvsError, PairError, UnknownPairError
from envs.families import (
    BUILTIN,
    FAMILIES,
    EnvFamily,
    family_from_dict,
    get_family,
    register_family,
)
from envs.mappings import Mappings, parse_mappings, spaces_equal


@dataclass(frozen=True)
class Variant:
    """One setting of an env family's parameters (only the non-default ones need be given) and,
    optionally, its own horizon.

    Attributes:
        family: the family's name (an :class:`EnvFamily` is accepted and kept as
            :attr:`definition`).
        params: parameter values by name.
        max_episode_steps: the variant's horizon (env steps per episode at most; an episode it
            cuts ends truncated); None takes the family's.
        definition: the family itself, carried with the variant so that a job pickled into a
            worker process or a Ray task builds the same env, whether or not the family is
            registered there (a family registered in the parent process by Python or by a pairs
            file is not). Filled from the registry of built-in and registered families when not
            given.
    """

    family: str
    params: Mapping[str, float] = field(default_factory=dict)
    max_episode_steps: int | None = None
    definition: EnvFamily | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.family, EnvFamily):
            object.__setattr__(self, "definition", self.family)
            object.__setattr__(self, "family", self.family.name)
        elif self.definition is None and self.family in FAMILIES:
            object.__setattr__(self, "definition", FAMILIES[self.family])

    @property
    def env_family(self) -> EnvFamily:
        """The variant's family (carried, else looked up by name).

        Raises:
            UnknownFamilyError: the family is neither carried nor registered.
        """
        return self.definition if self.definition is not None else get_family(self.family)

    @property
    def horizon(self) -> int | None:
        """Env steps per episode at most: :attr:`max_episode_steps`, else the family's."""
        return self.env_family.horizon(self.max_episode_steps)

    def make(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of this variant (parameters set, horizon applied)."""
        return self.env_family.make(self.params, self.max_episode_steps, **kwargs)

    def describe(self) -> str:
        items = [f"{k}={v:g}" for k, v in sorted(self.params.items())]
        if self.max_episode_steps is not None:
            items.append(f"max_episode_steps={self.max_episode_steps}")
        return f"{self.family}({', '.join(items) or 'default'})"

    def to_dict(self) -> dict[str, Any]:
        """``{"family", "params"}``, ``"max_episode_steps"`` when the variant sets one (so the
        experiment identity of a variant without its own horizon is what it always was), and
        for a family that is not built in ``"family_definition"``
        (:meth:`envs.EnvFamily.definition_digest`)."""
        out: dict[str, Any] = {"family": self.family, "params": dict(self.params)}
        if self.max_episode_steps is not None:
            out["max_episode_steps"] = self.max_episode_steps
        family = self.env_family
        if BUILTIN.get(self.family) is not family:  # a user's family: its definition counts
            out["family_definition"] = family.definition_digest()
        return out


@dataclass(frozen=True)
class Budget:
    """Budget of a pair for one algorithm, in env steps.

    Attributes:
        source_steps: pretraining steps on the source task.
        target_steps: training steps on the target task (both arms).
        eval_every: target steps between two evaluations.
        basis: where the numbers come from: measured here (and what was seen), or derived
            from rl-baselines3-zoo's ``n_timesteps`` without being run; empty when not stated.
    """

    source_steps: int
    target_steps: int
    eval_every: int
    basis: str = ""


@dataclass(frozen=True)
class EnvPair:
    """A source task -> target task pair.

    Attributes:
        name: registry key, for example ``"cartpole-long-pole"``.
        source, target: the two variants.
        threshold: return level for time to threshold (per episode, undiscounted).
        r_min: the random policy's mean return on the target (measured, see ``r_min_note``).
        r_max: the best achievable return on the target.
        budgets: recommended :class:`Budget` per algorithm name.
        description: one line saying what the pair studies and why its numbers are what they are.
        threshold_outside_range: the reason the threshold lies outside [R_min, R_max], when
            it does (empty otherwise).
    """

    name: str
    source: Variant
    target: Variant
    threshold: float
    r_min: float
    r_max: float
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    description: str = ""
    r_min_note: str = ""
    mappings: Mappings = field(default_factory=Mappings)
    r_min_episodes: int = 1000
    threshold_outside_range: str = ""

    def make_source(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of the source task."""
        return self.source.make(**kwargs)

    def make_target(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of the target task, seen through the pair's mappings (so its
        spaces are the source's)."""
        return self.mappings.wrap(self.target.make(**kwargs))

    def differences(self) -> dict[str, tuple[Any, Any]]:
        """What differs: parameter name (or ``family``, ``max_episode_steps``) -> (source's,
        target's)."""
        if self.source.family != self.target.family:
            out: dict[str, tuple[Any, Any]] = {"family": (self.source.family, self.target.family)}
        else:
            out = dict(self.source.env_family.differences(self.source.params, self.target.params))
        if self.source.max_episode_steps != self.target.max_episode_steps:
            horizons = (self.source.horizon, self.target.horizon)
            if horizons[0] != horizons[1]:
                out["max_episode_steps"] = horizons
        return out

    def describe_differences(self) -> str:
        """One line: what differs between source and target (and the mappings used)."""

        def fmt(v: Any) -> str:
            return f"{v:g}" if isinstance(v, float) else str(v)

        text = ", ".join(f"{k}: {fmt(a)} -> {fmt(b)}" for k, (a, b) in self.differences().items())
        if self.mappings:
            kinds = [m.kind for m in (self.mappings.observation, self.mappings.action) if m]
            text += f" (mapped: {', '.join(kinds)})"
        return text or "nothing (same variant)"

    def budget(self, algo: str) -> Budget | None:
        return self.budgets.get(algo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "differences": {k: list(v) for k, v in self.differences().items()},
            "threshold": self.threshold,
            **(
                {"threshold_outside_range": self.threshold_outside_range}
                if self.threshold_outside_range
                else {}
            ),
            "r_min": self.r_min,
            "r_max": self.r_max,
            "r_min_note": self.r_min_note,
            "budgets": {
                a: {
                    "source_steps": b.source_steps,
                    "target_steps": b.target_steps,
                    "eval_every": b.eval_every,
                    **({"basis": b.basis} if b.basis else {}),
                }
                for a, b in self.budgets.items()
            },
            "description": self.description,
            **self.mappings.to_dict(),
        }


_PAIRS: dict[str, EnvPair] = {}


def random_policy_return(variant: Variant | EnvPair, episodes: int = 1000, seed: int = 0) -> float:
    """Mean undiscounted return of the uniform random policy on ``variant``.

    Episode ``i`` is reset with seed ``seed + i``; actions come from the action space seeded with
    ``seed``. Used to measure a pair's R_min (Taylor & Stone 2009 normalisation).

    Returns:
        The mean return over ``episodes`` episodes (time limit applied).
    """
    env = variant.make_target() if isinstance(variant, EnvPair) else variant.make()
    env.action_space.seed(seed)
    total = 0.0
    for i in range(episodes):
        env.reset(seed=seed + i)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


VARIANT_KEYS = ("family", "params", "max_episode_steps")


def _as_variant(
    spec: Variant | tuple[str, Mapping[str, Any]] | Mapping[str, Any],
) -> Variant:
    """A :class:`Variant` carrying its family, from a Variant, ``(family, params)`` or
    ``{family, params, max_episode_steps}`` (``family`` a name or an :class:`EnvFamily`, which
    is then registered: :func:`envs.register_family`); parameters and horizon checked.

    Raises:
        PairError: none of those forms, or an unknown key.
        UnknownFamilyError, ParameterError: an unknown family, parameter or bad value.
        EnvsError: a family object that :func:`envs.register_family` refuses.
    """
    if isinstance(spec, Variant):
        variant = spec
    elif isinstance(spec, tuple) and len(spec) == 2:
        family, params = spec
        variant = Variant(family, dict(params or {}))
    elif isinstance(spec, Mapping) and "family" in spec:
        unknown = sorted(set(spec) - set(VARIANT_KEYS))
        if unknown:
            close = difflib.get_close_matches(unknown[0], VARIANT_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PairError(
                f"unknown variant key {unknown[0]!r}{hint} (valid: {', '.join(VARIANT_KEYS)})"
            )
        variant = Variant(
            spec["family"], dict(spec.get("params") or {}), spec.get("max_episode_steps")
        )
    else:
        raise PairError(
            "a variant must be (family, {param: value}) or {'family': ..., 'params': ..., "
            f"'max_episode_steps': ...}}, got {spec!r}"
        )
    family = variant.env_family
    if FAMILIES.get(family.name) is not family:
        family = register_family(family)  # a family given as an object: checked and registered
    family.validate(variant.params)
    family.horizon(variant.max_episode_steps)
    return Variant(family, dict(variant.params), variant.max_episode_steps)


def _check_spaces(name: str, source: Variant, target: Variant, mappings: Mappings) -> None:
    src, tgt = source.make(), mappings.wrap(target.make())
    try:
        for what in ("observation_space", "action_space"):
            a, b = getattr(src, what), getattr(tgt, what)
            if not spaces_equal(a, b):
                label = what.replace("_", " ")
                hint = " after the mappings" if mappings else "; give a mapping that makes them so"
                raise PairError(
                    f"pair {name!r}: source and target {label}s differ{hint} (source {a}, "
                    f"target {b})"
                )
    finally:
        src.close()
        tgt.close()


def register_pair(
    name: str,
    source: Variant | tuple[str, Mapping[str, Any]] | Mapping[str, Any],
    target: Variant | tuple[str, Mapping[str, Any]] | Mapping[str, Any],
    threshold: float | None = None,
    r_max: float | None = None,
    r_min: float | None = None,
    budgets: Mapping[str, Budget | Mapping[str, int]] | None = None,
    description: str = "",
    overwrite: bool = False,
    observation_mapping: Mapping[str, Any] | None = None,
    action_mapping: Mapping[str, Any] | None = None,
    threshold_outside_range: str | None = None,
) -> EnvPair:
    """Validate and register an env pair; return it.

    Args:
        name: registry key (letters, digits and ``_ . + = -``; it becomes a folder name).
        source, target: ``(family, {param: value})``, ``{"family", "params",
            "max_episode_steps"}`` or :class:`Variant`. ``max_episode_steps`` is the variant's
            horizon (None: the family's).
        threshold: time-to-threshold level (return per episode, undiscounted); defaults to the
            target family's ``reward_threshold`` at the target's horizon where it has one.
        r_max: best achievable return on the target; defaults to the target family's R_max at
            the target's horizon (CartPole: 1 per step, so 200 with ``max_episode_steps: 200``).
            Where the family's R_max is per step, a larger value is refused.
        r_min: the random policy's mean return on the target; measured here
            (:func:`random_policy_return`, 100 episodes, seeds 0..99) when not given.
        budgets: per algorithm, ``{"source_steps", "target_steps", "eval_every"}`` and
            optionally ``"basis"`` (where the numbers come from, as ``pairs show`` prints it).
        overwrite: replace an existing pair of the same name.
        observation_mapping, action_mapping: inter-task mappings applied to the target
            (:func:`envs.mappings.parse_mappings`), e.g. ``{"kind": "values", "table": [[-1.0],
            [0.0], [1.0]]}`` to act with a Discrete(3) source on a Box target.
        threshold_outside_range: the reason for a threshold outside [R_min, R_max] (a threshold
            there is refused without one), recorded with the pair.

    Raises:
        PairError: a name that cannot be a folder name, duplicate name, different spaces, no
            threshold or R_max known at the target's horizon, R_max above the most the target
            can return, a threshold outside [R_min, R_max] without a stated reason,
            R_min >= R_max, bad budget.
        ParameterError, UnknownFamilyError: a variant names an unknown family or parameter, or
            a bad value or horizon.
    """
    from rl_transfer.names import check_name

    check_name("pair", name, PairError)
    for key, value in (("threshold", threshold), ("r_max", r_max), ("r_min", r_min)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise PairError(f"pair {name!r}: {key} must be a number, got {value!r}")
    if name in _BUILTIN:
        raise PairError(f"pair {name!r} is a built-in pair; give yours another name")
    if name in _PAIRS and not overwrite:
        raise PairError(f"pair {name!r} is already registered; pass overwrite=True to replace it")
    src, tgt = _as_variant(source), _as_variant(target)
    mappings = parse_mappings(observation_mapping, action_mapping)
    _check_spaces(name, src, tgt, mappings)
    family, horizon = tgt.env_family, tgt.horizon
    steps = "no time limit" if horizon is None else f"{horizon} steps"
    r_max = _pair_r_max(name, tgt, r_max)
    if threshold is None:
        threshold = family.threshold_at(horizon)
        if threshold is None:
            raise PairError(
                f"pair {name!r}: family {tgt.family!r} has no reward_threshold at the target's "
                f"horizon ({steps}); give threshold"
            )
    reason = (threshold_outside_range or "").strip()
    if threshold_outside_range is not None and not reason:
        raise PairError(f"pair {name!r}: threshold_outside_range must state a reason")
    if threshold > r_max and not reason:
        raise PairError(
            f"pair {name!r}: threshold {threshold:g} is above R_max {r_max:g} (target: "
            f"{tgt.describe()}, {steps}), so no run can reach it; lower it, or state why with "
            "threshold_outside_range"
        )
    note = "given at registration"
    if r_min is None:
        probe = EnvPair(name, src, tgt, 0.0, 0.0, 1.0, mappings=mappings)
        r_min = random_policy_return(probe, episodes=100)
        note = "measured at registration: random policy, 100 episodes, seeds 0..99"
    if not r_min < r_max:
        raise PairError(f"pair {name!r}: r_min ({r_min}) must be below r_max ({r_max})")
    if threshold < r_min and not reason:
        raise PairError(
            f"pair {name!r}: threshold {threshold:g} is below R_min {r_min:g} (the random "
            "policy's mean return), so every run reaches it at t = 0; raise it, or state why "
            "with threshold_outside_range"
        )
    parsed: dict[str, Budget] = {}
    for algo, b in (budgets or {}).items():
        keys = ("source_steps", "target_steps", "eval_every")
        if not isinstance(b, Budget) and (
            not isinstance(b, Mapping) or not set(keys) <= set(b) <= {*keys, "basis"}
        ):
            raise PairError(
                f"pair {name!r}: the budget for {algo!r} needs exactly the keys "
                f"{', '.join(keys)} (and optionally basis: where the numbers come from), "
                f"got {b!r}"
            )
        budget = b if isinstance(b, Budget) else Budget(**b)
        if min(budget.source_steps, budget.target_steps, budget.eval_every) <= 0:
            raise PairError(f"pair {name!r}: budget for {algo!r} must be positive, got {budget}")
        parsed[algo] = budget
    pair = EnvPair(
        name=name,
        source=src,
        target=tgt,
        threshold=float(threshold),
        r_min=float(r_min),
        r_max=float(r_max),
        budgets=parsed,
        description=description,
        r_min_note=note,
        mappings=mappings,
        threshold_outside_range=reason,
    )
    _PAIRS[name] = pair
    return pair


def _pair_r_max(name: str, target: Variant, r_max: float | None) -> float:
    """The pair's R_max: ``r_max`` checked against the most the target can return at its
    horizon (where the family's R_max is per step), else the family's R_max there."""
    family, horizon = target.env_family, target.horizon
    steps = "no time limit" if horizon is None else f"{horizon} steps"
    if r_max is None:
        r_max = family.r_max_at(horizon)
        if r_max is None:
            known = (
                f"its R_max {family.r_max:g} holds for {family.default_horizon()}-step episodes"
                if family.r_max is not None
                else "it has no known maximum"
            )
            raise PairError(
                f"pair {name!r}: family {target.family!r} gives no R_max at the target's "
                f"horizon ({steps}): {known}; give r_max"
            )
        return float(r_max)
    if family.r_max_per_step is not None and horizon is not None:
        most = family.r_max_per_step * horizon
        if r_max > most:
            raise PairError(
                f"pair {name!r}: r_max {r_max:g} is more than the target can return in "
                f"{horizon} steps ({most:g} = {family.r_max_per_step:g} per step); give at most "
                f"{most:g}"
            )
    return float(r_max)


PAIR_FILE_KEYS = (
    "name",
    "source",
    "target",
    "threshold",
    "r_max",
    "r_min",
    "budgets",
    "description",
    "observation_mapping",
    "action_mapping",
    "threshold_outside_range",
)


def load_pairs_file(path: str | Path) -> list[EnvPair]:
    """Register the env families (a list under ``families:``), then the pairs (a list under
    ``pairs:``) of a YAML file; return the pairs.

    A family entry takes :class:`envs.EnvFamily`'s fields (:func:`envs.families.family_from_dict`)
    and is registered with :func:`envs.register_family` (checked: picklable, every parameter
    acts); registering the same definition again is a no-op. A pair entry takes
    :func:`register_pair`'s arguments, variants as ``{family, params, max_episode_steps}``.

    Raises:
        PairError: unreadable file, invalid YAML, an invalid family or pair, in one line naming
            the file and the family or pair. Entries before the bad one stay registered.
    """
    from rl_transfer.errors import read_yaml

    path = Path(path)
    data = read_yaml(path, "pairs", PairError)
    sections = ("families", "pairs")
    if not isinstance(data, dict) or not any(isinstance(data.get(k), list) for k in sections):
        raise PairError(
            f"pairs file {path} must hold a list under the key 'pairs' (and may hold one under "
            "'families')"
        )
    unknown = sorted(set(map(str, data)) - set(sections))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sections, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PairError(
            f"pairs file {path}: unknown section {unknown[0]!r}{hint} (valid: families, pairs)"
        )
    for key in sections:
        if key in data and not isinstance(data[key], list):
            raise PairError(f"pairs file {path}: {key} must be a list")
    for i, entry in enumerate(data.get("families") or []):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        try:
            register_family(family_from_dict(entry))
        except (EnvsError, TypeError) as exc:
            text = str(exc).removeprefix(f"env family {label!r}: ")
            raise PairError(f"pairs file {path}: family {label!r}: {text}") from None
    out = []
    for i, entry in enumerate(data.get("pairs") or []):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        try:
            if not isinstance(entry, dict):
                raise PairError("each pair must be a mapping")
            unknown = sorted(set(entry) - set(PAIR_FILE_KEYS))
            if unknown:
                close = difflib.get_close_matches(unknown[0], PAIR_FILE_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PairError(f"unknown key {unknown[0]!r}{hint}")
            missing = [k for k in ("name", "source", "target") if k not in entry]
            if missing:
                raise PairError(f"missing key(s) {', '.join(missing)}")
            out.append(register_pair(**entry, overwrite=True))
        except (EnvsError, TypeError) as exc:
            text = str(exc).removeprefix(f"pair {label!r}: ")
            raise PairError(f"pairs file {path}: pair {label!r}: {text}") from None
    return out


DEFAULT_PAIRS_DIR = "pairs"
"""Pair files (``*.yaml``) in this folder of the working directory are loaded by the CLI;
the environment variable ``RL_TRANSFER_PAIRS_DIR`` names another folder."""

ENTRY_POINT_GROUP = "rl_transfer.pairs"
"""Packages contribute pairs with an entry point in this group: a callable taking no argument
that calls :func:`register_pair` (or returns a list of its keyword-argument dicts)."""


def load_user_pairs(files: list[str | Path] | None = None) -> list[EnvPair]:
    """Load pairs from installed packages' entry points, the default pairs folder, and
    ``files`` (in that order; a later definition of a name replaces an earlier one).

    Raises:
        PairError: a bad file or a failing entry point, naming it.
    """
    import os

    from rl_transfer.entrypoints import load_group

    loaded: list[EnvPair] = []

    def register(name: str, pairs_fn: Any, where: str) -> None:
        try:
            for kwargs in pairs_fn() or []:
                loaded.append(register_pair(**kwargs, overwrite=True))
        except EnvsError as exc:
            raise PairError(f"{where}: {exc}") from None
        except Exception as exc:  # noqa: BLE001  (a third-party plugin: name it, never hide it)
            raise PairError(f"{where} failed: {type(exc).__name__}: {exc}") from None

    load_group(ENTRY_POINT_GROUP, register, PairError)
    folder = Path(os.environ.get("RL_TRANSFER_PAIRS_DIR", DEFAULT_PAIRS_DIR))
    if folder.is_dir():
        for f in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            loaded += load_pairs_file(f)
    for f in files or []:
        loaded += load_pairs_file(f)
    return loaded


_BUILTIN: set[str] = set()


def _register_builtin(pair: EnvPair) -> None:
    """Register a catalog pair whose R_min was measured once and is stored with it."""
    _PAIRS[pair.name] = pair
    _BUILTIN.add(pair.name)


def unregister_pair(name: str) -> None:
    """Remove a pair from the registry (tests clean up their registrations with it)."""
    _PAIRS.pop(name, None)


def get_pair(name: str) -> EnvPair:
    """Return the registered pair ``name``.

    Raises:
        UnknownPairError: no such pair; the closest names are suggested.
    """
    try:
        return _PAIRS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_PAIRS), n=3, cutoff=0.3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownPairError(
            f"unknown pair {name!r}{hint} (`rl-transfer pairs` lists all {len(_PAIRS)})"
        ) from None


def list_pairs() -> list[EnvPair]:
    """All registered pairs, sorted by name."""
    return [_PAIRS[k] for k in sorted(_PAIRS)]


def evaluation_seeds(n: int, base: int = 1_000_000) -> np.ndarray:
    """The fixed evaluation reset seeds: ``base, base + 1, ..., base + n - 1`` (shape ``[n]``)."""
    return np.arange(base, base + n, dtype=np.int64)
