"""TD3 adapter (Fujimoto et al. 2018; stable-baselines3 ``TD3``).

- ``policy``: the actor (``actor.mu``); ``actor_target`` is set equal to it (pitfall 10)
- ``value``: both Q-networks (``critic.qf0``, ``critic.qf1``); ``critic_target`` set equal

Warm-up (pitfall 3): ``learning_starts`` is kept; the weights do not move during warm-up.
"""

from __future__ import annotations

from stable_baselines3 import TD3

from agents.base import AgentAdapter


class TD3Adapter(AgentAdapter):
    algo = "td3"
    algo_class = TD3
    off_policy = True
    parts = {"policy": ("actor.",), "value": ("critic.",)}
    target_sync = (("actor.", "actor_target."), ("critic.", "critic_target."))
