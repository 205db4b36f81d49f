"""DQN adapter (Mnih et al. 2015; stable-baselines3 ``DQN``).

DQN's Q-network is both its policy (greedy action) and its value function: the ``policy`` and
``value`` parts are the same tensors (``q_net``), and ``q_net_target`` is set equal to the copied
``q_net`` (pitfall 10).

Warm-up and exploration of a transferred arm (pitfall 3): ``learning_starts`` is kept (the weights
do not move during warm-up, so the jumpstart is held while the buffer fills) and epsilon starts at
``exploration_final_eps`` instead of restarting at 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stable_baselines3 import DQN

from agents.base import AgentAdapter

_SAME = "dqn: the Q-network is both policy and value; `policy` and `value` move the same tensors"


class DQNAdapter(AgentAdapter):
    algo = "dqn"
    algo_class = DQN
    off_policy = True
    parts = {"policy": ("q_net.",), "value": ("q_net.",)}
    target_sync = (("q_net.", "q_net_target."),)
    part_notes = {"policy": _SAME, "value": _SAME}

    def transfer_overrides(self, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        final = float(hyperparams.get("exploration_final_eps", 0.05))
        return {"exploration_initial_eps": final}
