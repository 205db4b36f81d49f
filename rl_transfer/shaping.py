"""Potential-based reward shaping with the source's value as potential (Ng, Harada & Russell
1999): r' = r + scale * (gamma * Phi(s') - Phi(s)), with Phi(s) = V_src(s) and Phi = 0 at a
terminal state (``terminated``; a time-limit truncation keeps Phi(s')). gamma is the learner's.
Shaping of this form leaves the optimal policies unchanged. Applied to the training envs only;
evaluation returns are unshaped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

Potential = Callable[[np.ndarray], float]


class PotentialShaping(gymnasium.Wrapper):
    """Adds ``scale * (gamma * Phi(s') - Phi(s))`` to each reward; the term is also in
    ``info["shaping"]`` and the unshaped reward in ``info["reward_unshaped"]``.

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

    def reset(self, **kwargs: Any):  # noqa: ANN201
        obs, info = self.env.reset(**kwargs)
        self._phi = self.potential(obs)
        return obs, info

    def step(self, action: Any):  # noqa: ANN201
        obs, reward, terminated, truncated, info = self.env.step(action)
        phi_next = 0.0 if terminated else self.potential(obs)
        term = self.scale * (self.gamma * phi_next - self._phi)
        self._phi = phi_next
        info = {**info, "shaping": term, "reward_unshaped": reward}
        return obs, float(reward) + term, terminated, truncated, info
