"""TD3 adapter (Fujimoto et al. 2018; stable-baselines3 ``TD3``).

- ``policy``: the actor (``actor.mu``); ``actor_target`` is set equal to it, so the first target
  actions are the source's
- ``value``: both Q-networks (``critic.qf0``, ``critic.qf1``); ``critic_target`` set equal

Warm-up (SB3 acts uniformly at random before ``learning_starts``): ``learning_starts`` is kept; the
weights do not move during warm-up.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import torch
from stable_baselines3 import TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.base import AgentAdapter


class TD3Adapter(AgentAdapter):
    algo = "td3"
    algo_class = TD3
    action_spaces = (gymnasium.spaces.Box,)
    parts = {"policy": ("actor.",), "value": ("critic.",)}

    def state_value(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        """V(s) = min over the two Q-networks of Q(s, mu(s)), mu the actor's greedy action."""
        with torch.no_grad():
            o = model.policy.obs_to_tensor(obs)[0]
            qs = model.critic(o, model.actor(o))
        return torch.min(torch.cat(qs, dim=1), dim=1).values.numpy()

    target_sync = (("actor.", "actor_target."), ("critic.", "critic_target."))
