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
from typing import Any

import gymnasium
import numpy as np

from envs.errors import PairError, UnknownPairError
from envs.families import EnvFamily, get_family


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

    def make_source(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of the source task."""
        return self.source.make(**kwargs)

    def make_target(self, **kwargs: Any) -> gymnasium.Env:
        """A new gymnasium env of the target task."""
        return self.target.make(**kwargs)

    def differences(self) -> dict[str, tuple[float, float]]:
        """Parameters that differ: name -> (source value, target value)."""
        if self.source.family != self.target.family:
            return {"family": (self.source.family, self.target.family)}  # type: ignore[dict-item]
        return self.source.env_family.differences(self.source.params, self.target.params)

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
        }


_PAIRS: dict[str, EnvPair] = {}


def random_policy_return(variant: Variant, episodes: int = 1000, seed: int = 0) -> float:
    """Mean undiscounted return of the uniform random policy on ``variant``.

    Episode ``i`` is reset with seed ``seed + i``; actions come from the action space seeded with
    ``seed``. Used to measure a pair's R_min (Taylor & Stone 2009 normalisation).

    Returns:
        The mean return over ``episodes`` episodes (time limit applied).
    """
    env = variant.make()
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


def _check_spaces(name: str, source: Variant, target: Variant) -> None:
    src, tgt = source.make(), target.make()
    try:
        for what in ("observation_space", "action_space"):
            a, b = getattr(src, what), getattr(tgt, what)
            if (
                type(a) is not type(b)
                or getattr(a, "shape", None) != getattr(b, "shape", None)
                or (isinstance(a, gymnasium.spaces.Discrete) and a.n != b.n)
            ):
                raise PairError(
                    f"pair {name!r}: source and target {what.replace('_', ' ')}s differ "
                    f"(source {a}, target {b}); give both tasks the same spaces"
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

    Raises:
        PairError: duplicate name, different spaces, R_min >= R_max, bad budget.
        ParameterError, UnknownFamilyError: a variant names an unknown family or parameter.
    """
    if not name or not isinstance(name, str):
        raise PairError(f"a pair name must be a non-empty string, got {name!r}")
    if name in _PAIRS and not overwrite:
        raise PairError(f"pair {name!r} is already registered; pass overwrite=True to replace it")
    src, tgt = _as_variant(source), _as_variant(target)
    src.env_family.validate(src.params)
    tgt.env_family.validate(tgt.params)
    _check_spaces(name, src, tgt)
    if r_max is None:
        r_max = tgt.env_family.r_max
        if r_max is None:
            raise PairError(
                f"pair {name!r}: family {tgt.family!r} has no known maximum; give r_max"
            )
    note = "given at registration"
    if r_min is None:
        r_min = random_policy_return(tgt)
        note = "measured at registration: random policy, 1000 episodes, seeds 0..999"
    if not r_min < r_max:
        raise PairError(f"pair {name!r}: r_min ({r_min}) must be below r_max ({r_max})")
    parsed: dict[str, Budget] = {}
    for algo, b in (budgets or {}).items():
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
    )
    _PAIRS[name] = pair
    return pair


def _register_builtin(pair: EnvPair) -> None:
    """Register a catalog pair whose R_min was measured once and is stored with it."""
    _PAIRS[pair.name] = pair


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
