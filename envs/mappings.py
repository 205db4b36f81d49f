"""Inter-task mappings (Taylor, Stone & Liu 2007): make a target task look like the source task.

An observation mapping turns a target observation into a source-shaped one; an action mapping
turns a source-shaped action into a target action. :class:`MappedEnv` applies both to the target
env, so an agent built for the source's spaces acts on the target task (both arms, transfer and
scratch, see the same mapped target).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.errors import PairError

OBSERVATION_KINDS = ("select", "pad", "affine")
ACTION_KINDS = ("index", "values", "thresholds")


@dataclass(frozen=True)
class ObservationMapping:
    """Target observation -> source observation (Box spaces, 1-D).

    Kinds:
        ``select``: ``obs[indices]`` (selects and reorders components).
        ``pad``: ``concat(obs, values)`` (constant components appended).
        ``affine``: ``obs * scale + shift`` (component-wise; scale and shift shape [n]).
    """

    kind: str
    indices: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    shift: tuple[float, ...] = ()

    def apply(self, obs: np.ndarray) -> np.ndarray:
        if self.kind == "select":
            return obs[list(self.indices)]
        if self.kind == "pad":
            return np.concatenate([obs, np.asarray(self.values, dtype=obs.dtype)])
        return (obs * np.asarray(self.scale) + np.asarray(self.shift)).astype(obs.dtype)

    def space(self, target: spaces.Space) -> spaces.Box:
        """The mapped observation space, from the target's (bounds mapped too).

        Raises:
            PairError: a non-Box space, an index out of range, or a scale/shift of wrong length.
        """
        if not isinstance(target, spaces.Box) or len(target.shape) != 1:
            raise PairError(f"observation mappings need a 1-D Box target space, got {target}")
        n = target.shape[0]
        if self.kind == "select":
            bad = [i for i in self.indices if not -n <= i < n]
            if bad or not self.indices:
                raise PairError(
                    f"observation mapping 'select': indices {list(self.indices)} "
                    f"must be within the target's {n} components"
                )
        elif self.kind == "pad":
            if not self.values:
                raise PairError("observation mapping 'pad' needs values to append")
        elif self.kind == "affine":
            if len(self.scale) != n or len(self.shift) != n:
                raise PairError(
                    f"observation mapping 'affine': scale and shift need {n} values "
                    f"(the target's components), got {len(self.scale)} and "
                    f"{len(self.shift)}"
                )
        else:
            raise PairError(
                f"unknown observation mapping {self.kind!r}; valid: {', '.join(OBSERVATION_KINDS)}"
            )
        low, high = self.apply(target.low), self.apply(target.high)
        return spaces.Box(np.minimum(low, high), np.maximum(low, high), dtype=target.dtype)


@dataclass(frozen=True)
class ActionMapping:
    """Source action -> target action.

    Kinds:
        ``index``: Discrete -> Discrete, ``table[i]`` is the target action for source action i.
        ``values``: Discrete -> Box (discretisation of the target's continuous actions): source
            action i becomes the target action vector ``table[i]``.
        ``thresholds``: Box(1) -> Discrete (thresholding): source action a becomes the number of
            ``table`` edges below a (``np.searchsorted``), so len(table) + 1 target actions.
    """

    kind: str
    table: tuple[Any, ...] = ()

    def apply(self, action: Any) -> Any:
        if self.kind == "index":
            return int(self.table[int(action)])
        if self.kind == "values":
            return np.asarray(self.table[int(action)], dtype=np.float32)
        return int(np.searchsorted(np.asarray(self.table), float(np.asarray(action).ravel()[0])))

    def source_space(self, target: spaces.Space) -> spaces.Space:
        """The action space the agent sees (the source's), given the target's.

        Raises:
            PairError: the mapping does not fit the target space (both named).
        """
        if self.kind == "index":
            if not isinstance(target, spaces.Discrete) or not self.table:
                raise PairError(f"action mapping 'index' needs a Discrete target, got {target}")
            bad = [a for a in self.table if not 0 <= int(a) < target.n]
            if bad:
                raise PairError(
                    f"action mapping 'index': {bad} outside the target's Discrete({target.n})"
                )
            return spaces.Discrete(len(self.table))
        if self.kind == "values":
            if not isinstance(target, spaces.Box) or not self.table:
                raise PairError(f"action mapping 'values' needs a Box target, got {target}")
            for v in self.table:
                arr = np.asarray(v, dtype=np.float32)
                if arr.shape != target.shape or not target.contains(arr):
                    raise PairError(
                        f"action mapping 'values': {list(np.ravel(arr))} is not in "
                        f"the target's action space {target}"
                    )
            return spaces.Discrete(len(self.table))
        if self.kind == "thresholds":
            if not isinstance(target, spaces.Discrete) or len(self.table) + 1 != target.n:
                raise PairError(
                    f"action mapping 'thresholds' needs a Discrete target with "
                    f"len(table) + 1 = {len(self.table) + 1} actions, got {target}"
                )
            return spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        raise PairError(f"unknown action mapping {self.kind!r}; valid: {', '.join(ACTION_KINDS)}")


class MappedEnv(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """The target env seen through the mappings: source-shaped observations and actions."""

    def __init__(
        self,
        env: gymnasium.Env,
        observation: ObservationMapping | None,
        action: ActionMapping | None,
    ) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, observation=observation, action=action)
        gymnasium.Wrapper.__init__(self, env)
        self.obs_map, self.act_map = observation, action
        if observation is not None:
            self.observation_space = observation.space(env.observation_space)
        if action is not None:
            self.action_space = action.source_space(env.action_space)

    def _obs(self, obs: Any) -> Any:
        return self.obs_map.apply(obs) if self.obs_map is not None else obs

    def reset(self, **kwargs: Any):  # noqa: ANN201
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), info

    def step(self, action: Any):  # noqa: ANN201
        target_action = self.act_map.apply(action) if self.act_map is not None else action
        obs, reward, terminated, truncated, info = self.env.step(target_action)
        return self._obs(obs), reward, terminated, truncated, info


@dataclass(frozen=True)
class Mappings:
    """The optional observation and action mappings of a pair."""

    observation: ObservationMapping | None = None
    action: ActionMapping | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.observation is not None or self.action is not None

    def wrap(self, env: gymnasium.Env) -> gymnasium.Env:
        return MappedEnv(env, self.observation, self.action) if self else env

    def to_dict(self) -> dict[str, Any]:
        """Plain (YAML- and JSON-safe) description, in :func:`parse_mappings`' format."""

        def plain(v: Any) -> Any:
            if isinstance(v, (list, tuple, np.ndarray)):
                return [plain(x) for x in v]
            if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
                return int(v)
            if isinstance(v, (np.floating, float)):
                return float(v)
            return v

        out: dict[str, Any] = {}
        if self.observation is not None:
            out["observation_mapping"] = {
                k: plain(v) for k, v in vars(self.observation).items() if v not in ((), None)
            }
        if self.action is not None:
            out["action_mapping"] = {"kind": self.action.kind, "table": plain(self.action.table)}
        return out


def _tuple(x: Any) -> tuple:
    if isinstance(x, (list, tuple)):
        return tuple(tuple(v) if isinstance(v, list) else v for v in x)
    return (x,)


def parse_mappings(
    observation: Mapping[str, Any] | None, action: Mapping[str, Any] | None
) -> Mappings:
    """Mappings from plain dicts (Python API and YAML):
    ``{"kind": "select", "indices": [...]}``, ``{"kind": "values", "table": [[-1.0], ...]}``.

    Raises:
        PairError: unknown kind or unknown field.
    """
    obs = act = None
    if observation:
        fields_ok = {"kind", "indices", "values", "scale", "shift"}
        extra = set(observation) - fields_ok
        if extra:
            raise PairError(
                f"observation mapping: unknown field(s) {sorted(extra)}; valid: {sorted(fields_ok)}"
            )
        obs = ObservationMapping(
            kind=str(observation.get("kind")),
            **{
                k: _tuple(observation[k])
                for k in ("indices", "values", "scale", "shift")
                if k in observation
            },
        )
    if action:
        extra = set(action) - {"kind", "table"}
        if extra:
            raise PairError(f"action mapping: unknown field(s) {sorted(extra)}; valid: kind, table")
        act = ActionMapping(kind=str(action.get("kind")), table=_tuple(action.get("table", ())))
    return Mappings(obs, act)


def describe_space(space: spaces.Space) -> str:
    return str(space)


def spaces_equal(a: spaces.Space, b: spaces.Space) -> bool:
    """Same type, shape, dtype and (for Box) bounds; (for Discrete) n and start."""
    if type(a) is not type(b) or a.shape != b.shape:
        return False
    if isinstance(a, spaces.Box):
        return (
            a.dtype == b.dtype and np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)
        )
    return a == b


__all__ = [
    "ActionMapping",
    "MappedEnv",
    "Mappings",
    "ObservationMapping",
    "parse_mappings",
    "spaces_equal",
    "Sequence",
]
