"""A2C adapter (Mnih et al. 2016; stable-baselines3 ``A2C``). Same policy class as PPO, so the
same parts:

- ``policy``: ``mlp_extractor.policy_net`` + ``action_net`` (+ ``log_std`` for Box actions)
- ``value``: ``mlp_extractor.value_net`` + ``value_net``
"""

from __future__ import annotations

from stable_baselines3 import A2C

from agents.ppo import PPOAdapter


class A2CAdapter(PPOAdapter):
    algo = "a2c"
    algo_class = A2C
