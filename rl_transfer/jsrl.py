"""Jump-start RL (Uchendu et al. 2023): a guide policy (the source's) acts for the first h steps of
every training episode, then the learner takes over; h is annealed from H to 0.

The learner never sees the guide's steps (its episode starts where the guide stops), so its own
transitions stay on-policy for PPO and A2C. The guide's steps are target env steps all the same:
they are added to the learner's step counter, so they count toward t (the budget, the evaluation
grid and every metric).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

Guide = Callable[[np.ndarray], Any]


class GuideRollIn(gymnasium.Wrapper):
    """On reset, the guide acts for ``horizon`` steps (restarting the episode if it ends) and the
    learner starts from the state reached.

    Attributes:
        horizon: h, the guide's steps per episode (set by :class:`JSRLCallback`).
        pending: guide steps taken and not yet counted by the learner.
        last_guide_actions: the actions the guide took in the latest roll-in.
    """

    def __init__(self, env: gymnasium.Env, guide: Guide, horizon: int) -> None:
        super().__init__(env)
        self.guide, self.horizon = guide, int(horizon)
        self.pending = 0
        self.last_guide_actions: list[Any] = []

    def reset(self, **kwargs: Any):  # noqa: ANN201
        obs, info = self.env.reset(**kwargs)
        self.last_guide_actions = []
        for _ in range(self.horizon):
            action = self.guide(obs)
            self.last_guide_actions.append(action)
            obs, _, terminated, truncated, info = self.env.step(action)
            self.pending += 1
            if terminated or truncated:  # the guide finished the episode: start a new one
                obs, info = self.env.reset()
                self.last_guide_actions = []
        return obs, info

    def set_horizon(self, horizon: int) -> None:
        self.horizon = int(horizon)

    def take_guide_steps(self) -> int:
        n, self.pending = self.pending, 0
        return n


class JSRLCallback(BaseCallback):
    """Anneals h = H * max(0, 1 - t / (anneal * budget)) and adds the guide's steps to the
    learner's step counter. ``guide_steps`` totals them."""

    def __init__(self, horizon: int, anneal: float) -> None:
        super().__init__()
        self.horizon, self.anneal = horizon, anneal
        self.guide_steps = 0

    def _current(self) -> int:
        budget = max(1.0, self.anneal * self.model._total_timesteps)
        return int(round(self.horizon * max(0.0, 1.0 - self.num_timesteps / budget)))

    def _on_training_start(self) -> None:
        self.training_env.env_method("set_horizon", self.horizon)

    def _on_step(self) -> bool:
        taken = int(sum(self.training_env.env_method("take_guide_steps")))
        if taken:
            self.guide_steps += taken
            self.model.num_timesteps += taken
        self.training_env.env_method("set_horizon", self._current())
        return True
