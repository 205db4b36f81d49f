"""SAC adapter (Haarnoja et al. 2018; stable-baselines3 ``SAC``).

- ``policy``: the actor (``actor.latent_pi``, ``actor.mu``, ``actor.log_std``)
- ``value``: both Q-networks (``critic.qf0``, ``critic.qf1``); ``critic_target`` is set equal to
  the copied critic, so the first TD targets come from it. The entropy coefficient is not
  transferred (learned afresh).

Warm-up (SB3 acts uniformly at random before ``learning_starts``): ``learning_starts`` is kept; the
weights do not move during warm-up, so the jumpstart is held while the buffer fills with uniform
random actions.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.base import AgentAdapter


class SACAdapter(AgentAdapter):
    algo = "sac"
    algo_class = SAC
    action_spaces = (gymnasium.spaces.Box,)
    parts = {"policy": ("actor.",), "value": ("critic.",)}

    def state_value(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        """V(s) = min over the two Q-networks of Q(s, mu(s)), mu the actor's greedy action."""
        with torch.no_grad():
            o = model.policy.obs_to_tensor(obs)[0]
            qs = model.critic(o, model.actor(o, deterministic=True))
        return torch.min(torch.cat(qs, dim=1), dim=1).values.numpy()

    target_sync = (("critic.", "critic_target."),)
