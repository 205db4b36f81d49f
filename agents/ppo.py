"""PPO adapter (Schulman et al. 2017; stable-baselines3 ``PPO`` with ``MlpPolicy``).

Parts of the default ``ActorCriticPolicy`` (separate policy and value MLPs, no shared trunk):

- ``policy``: ``mlp_extractor.policy_net`` + ``action_net`` (+ ``log_std`` for Box actions)
- ``value``: ``mlp_extractor.value_net`` + ``value_net``
"""

from __future__ import annotations

from stable_baselines3 import PPO

from agents.base import AgentAdapter


class PPOAdapter(AgentAdapter):
    algo = "ppo"
    algo_class = PPO
    parts = {
        "policy": ("mlp_extractor.policy_net.", "action_net.", "log_std"),
        "value": ("mlp_extractor.value_net.", "value_net."),
    }
