"""PPO adapter (Schulman et al. 2017; stable-baselines3 ``PPO`` with ``MlpPolicy``).

Parts of the default ``ActorCriticPolicy`` (separate policy and value MLPs, no shared trunk):

- ``policy``: ``mlp_extractor.policy_net`` + ``action_net`` (+ ``log_std`` for Box actions)
- ``value``: ``mlp_extractor.value_net`` + ``value_net``
- ``trunk``: the hidden layers of both (``mlp_extractor``); the output heads are ``action_net``,
  ``value_net`` (and ``log_std``)

State value for shaping: the critic, ``policy.predict_values``.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.base import AgentAdapter


class PPOAdapter(AgentAdapter):
    algo = "ppo"
    algo_class = PPO
    parts = {
        "policy": ("mlp_extractor.policy_net.", "action_net.", "log_std"),
        "value": ("mlp_extractor.value_net.", "value_net."),
        "trunk": ("mlp_extractor.",),
    }

    def state_value(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0])
        return values.numpy().reshape(-1)
