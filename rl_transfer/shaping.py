"""Potential-based reward shaping with the source's value as potential (Ng, Harada & Russell
1999): r' = r + scale * (gamma * Phi(s') - Phi(s)), with Phi(s) = V_src(s) and Phi = 0 at a
terminal state (``terminated``; a time-limit truncation keeps Phi(s')). gamma is the learner's.
Shaping of this form leaves the optimal policies unchanged. Applied to the training envs only;
evaluation returns are unshaped.

The wrapper goes outside SB3's Monitor (``AgentAdapter.make_vec_env``), so TensorBoard's
``rollout/ep_rew_mean`` stays the task's own (unshaped) return, as in every other arm; the shaped
return the learner optimises is logged as ``rollout/ep_shaped_rew_mean`` by
:class:`ShapedReturnLog`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

Potential = Callable[[np.ndarray], float]


class PotentialShaping(gymnasium.Wrapper):
    """Adds ``scale * (gamma * Phi(s') - Phi(s))`` to each reward; the term is also in
    ``info["shaping"]`` and the unshaped reward in ``info["reward_unshaped"]``. At an episode's
    last step (terminated or truncated), ``info["shaped_episode"] = {"r": shaped return,
    "l": length}``.

    Args:
        env: the training env.
        potential: Phi, one observation -> float (the source's value estimate).
        gamma: the learner's discount factor.
        scale: factor on the shaping term.
    """

    def __init__(
        self, env: gymnasium.Env, potential: Potential, gamma: float, scale: float = 1.0
    ) -> None:
        super().__init__(env)
        self.potential, self.gamma, self.scale = potential, gamma, scale
        self._phi = 0.0
        self._return, self._length = 0.0, 0

    def reset(self, **kwargs: Any):  # noqa: ANN201
        obs, info = self.env.reset(**kwargs)
        self._phi = self.potential(obs)
        self._return, self._length = 0.0, 0
        return obs, info

    def step(self, action: Any):  # noqa: ANN201
        obs, reward, terminated, truncated, info = self.env.step(action)
        phi_next = 0.0 if terminated else self.potential(obs)
        term = self.scale * (self.gamma * phi_next - self._phi)
        self._phi = phi_next
        shaped = float(reward) + term
        self._return += shaped
        self._length += 1
        info = {**info, "shaping": term, "reward_unshaped": reward}
        if terminated or truncated:
            info["shaped_episode"] = {"r": self._return, "l": self._length}
        return obs, shaped, terminated, truncated, info


class ShapedReturnLog(BaseCallback):
    """Logs ``rollout/ep_shaped_rew_mean``: the mean shaped return of the last episodes (SB3's
    window, ``stats_window_size``, 100 by default), next to SB3's ``rollout/ep_rew_mean`` (the
    unshaped return) and written with it.

    Recorded at each episode end (off-policy learners write their logs right after one) and at
    each rollout's end (on-policy learners write theirs after the rollout).
    """

    def __init__(self) -> None:
        super().__init__()
        self.returns: deque[float] = deque()

    def _on_training_start(self) -> None:
        self.returns = deque(maxlen=self.model._stats_window_size)

    def _record(self) -> None:
        if self.returns:
            self.logger.record("rollout/ep_shaped_rew_mean", float(np.mean(self.returns)))

    def _on_step(self) -> bool:
        ended = [i["shaped_episode"]["r"] for i in self.locals["infos"] if "shaped_episode" in i]
        if ended:
            self.returns.extend(ended)
            self._record()
        return True

    def _on_rollout_end(self) -> None:
        self._record()
