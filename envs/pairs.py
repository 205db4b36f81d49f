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
from envs.families import EnvFamily, get_family
from envs.mappings import Mappings, parse_mappings, spaces_equal


@dataclass(frozen=True)
class Variant:
    """One setting of an env family's parameters (only the non-default ones need be given)."""

    family: str
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def env_family(self) -> EnvFamily:
        return get_family(self.family)

    def make(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of this variant (time limit applied, parameters set)."""
        return self.env_family.make(self.params, **kwargs)

    def describe(self) -> str:
        if not self.params:
            return f"{self.family}(default)"
        inner = ", ".join(f"{k}={v:g}" for k, v in sorted(self.params.items()))
        return f"{self.family}({inner})"


@dataclass(frozen=True)
class Budget:
    """Recommended budget of a pair for one algorithm, in env steps.

    Attributes:
        source_steps: pretraining steps on the source task.
        target_steps: training steps on the target task (both arms).
        eval_every: target steps between two evaluations.
    """

    source_steps: int
    target_steps: int
    eval_every: int


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

    def make_source(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of the source task."""
        return self.source.make(**kwargs)

    def make_target(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of the target task, seen through the pair's mappings (so its
        spaces are the source's)."""
        return self.mappings.wrap(self.target.make(**kwargs))

    def differences(self) -> dict[str, tuple[float, float]]:
        """Parameters that differ: name -> (source value, target value)."""
        if self.source.family != self.target.family:
            return {"family": (self.source.family, self.target.family)}  # type: ignore[dict-item]
        return self.source.env_family.differences(self.source.params, self.target.params)

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
            "source": {"family": self.source.family, "params": dict(self.source.params)},
            "target": {"family": self.target.family, "params": dict(self.target.params)},
            "differences": {k: list(v) for k, v in self.differences().items()},
            "threshold": self.threshold,
            "r_min": self.r_min,
            "r_max": self.r_max,
            "r_min_note": self.r_min_note,
            "budgets": {
                a: {
                    "source_steps": b.source_steps,
                    "target_steps": b.target_steps,
                    "eval_every": b.eval_every,
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


def _as_variant(spec: Variant | tuple[str, Mapping[str, Any]] | Mapping[str, Any]) -> Variant:
    if isinstance(spec, Variant):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        family, params = spec
        return Variant(str(family), dict(params or {}))
    if isinstance(spec, Mapping) and "family" in spec:
        return Variant(str(spec["family"]), dict(spec.get("params") or {}))
    raise PairError(
        f"a variant must be (family, {{param: value}}) or {{'family': ..., 'params': ...}}, "
        f"got {spec!r}"
    )


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
    source: Variant | tuple[str, Mapping[str, Any]],
    target: Variant | tuple[str, Mapping[str, Any]],
    threshold: float,
    r_max: float | None = None,
    r_min: float | None = None,
    budgets: Mapping[str, Budget | Mapping[str, int]] | None = None,
    description: str = "",
    overwrite: bool = False,
    observation_mapping: Mapping[str, Any] | None = None,
    action_mapping: Mapping[str, Any] | None = None,
) -> EnvPair:
    """Validate and register an env pair; return it.

    Args:
        name: registry key (lower-case words joined by ``-``).
        source, target: ``(family, {param: value})`` or :class:`Variant`.
        threshold: time-to-threshold level (return per episode).
        r_max: best achievable return; defaults to the family's maximum where one exists.
        r_min: the random policy's mean return on the target; measured here
            (:func:`random_policy_return`, 1000 episodes, seed 0) when not given.
        budgets: per algorithm, ``{"source_steps", "target_steps", "eval_every"}``.
        overwrite: replace an existing pair of the same name.
        observation_mapping, action_mapping: inter-task mappings applied to the target
            (:func:`envs.mappings.parse_mappings`), e.g. ``{"kind": "values", "table": [[-1.0],
            [0.0], [1.0]]}`` to act with a Discrete(3) source on a Box target.

    Raises:
        PairError: a name that cannot be a folder name, duplicate name, different spaces,
            R_min >= R_max, bad budget.
        ParameterError, UnknownFamilyError: a variant names an unknown family or parameter.
    """
    from rl_transfer.names import check_name

    check_name("pair", name, PairError)
    if name in _BUILTIN:
        raise PairError(f"pair {name!r} is a built-in pair; give yours another name")
    if name in _PAIRS and not overwrite:
        raise PairError(f"pair {name!r} is already registered; pass overwrite=True to replace it")
    src, tgt = _as_variant(source), _as_variant(target)
    src.env_family.validate(src.params)
    tgt.env_family.validate(tgt.params)
    mappings = parse_mappings(observation_mapping, action_mapping)
    _check_spaces(name, src, tgt, mappings)
    if r_max is None:
        r_max = tgt.env_family.r_max
        if r_max is None:
            raise PairError(
                f"pair {name!r}: family {tgt.family!r} has no known maximum; give r_max"
            )
    note = "given at registration"
    if r_min is None:
        probe = EnvPair(name, src, tgt, 0.0, 0.0, 1.0, mappings=mappings)
        r_min = random_policy_return(probe, episodes=100)
        note = "measured at registration: random policy, 100 episodes, seeds 0..99"
    if not r_min < r_max:
        raise PairError(f"pair {name!r}: r_min ({r_min}) must be below r_max ({r_max})")
    parsed: dict[str, Budget] = {}
    for algo, b in (budgets or {}).items():
        keys = ("source_steps", "target_steps", "eval_every")
        if not isinstance(b, Budget) and (not isinstance(b, Mapping) or set(b) != set(keys)):
            raise PairError(
                f"pair {name!r}: the budget for {algo!r} needs exactly the keys "
                f"{', '.join(keys)}, got {b!r}"
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
    )
    _PAIRS[name] = pair
    return pair


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
)


def load_pairs_file(path: str | Path) -> list[EnvPair]:
    """Register every pair of a YAML file (a list under ``pairs:``); return them.

    Each entry takes :func:`register_pair`'s arguments, variants as ``{family, params}``.

    Raises:
        PairError: unreadable file, invalid YAML or an invalid pair, in one line naming the file
            and the pair. Pairs before the bad one stay registered.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PairError(f"cannot read pairs file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        from rl_transfer.errors import yaml_error_message

        raise PairError(
            f"{yaml_error_message(path, exc)} (the pairs file is not valid YAML)"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise PairError(f"pairs file {path} must hold a list under the key 'pairs'")
    out = []
    for i, entry in enumerate(data["pairs"]):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        try:
            if not isinstance(entry, dict):
                raise PairError("each pair must be a mapping")
            unknown = sorted(set(entry) - set(PAIR_FILE_KEYS))
            if unknown:
                close = difflib.get_close_matches(unknown[0], PAIR_FILE_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PairError(f"unknown key {unknown[0]!r}{hint}")
            missing = [k for k in ("name", "source", "target", "threshold") if k not in entry]
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
