"""DQN adapter (Mnih et al. 2015; stable-baselines3 ``DQN``).

DQN's Q-network is both its policy (greedy action) and its value function: the ``policy`` and
``value`` parts are the same tensors (``q_net``), and ``q_net_target`` is set equal to the copied
``q_net``, so the first TD targets come from the transferred network.

Warm-up and exploration of a transferred arm (SB3 acts uniformly at random before
``learning_starts`` and restarts epsilon at 1.0, which would erase the jumpstart):
``learning_starts`` is kept (the weights do not move during warm-up, so the jumpstart is held while
the buffer fills) and epsilon starts at ``exploration_final_eps`` instead of restarting at 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.base import AgentAdapter

_SAME = "dqn: the Q-network is both policy and value; `policy` and `value` move the same tensors"


class DQNAdapter(AgentAdapter):
    algo = "dqn"
    algo_class = DQN
    action_spaces = (gymnasium.spaces.Discrete,)
    parts = {"policy": ("q_net.",), "value": ("q_net.",), "trunk": ("q_net.q_net.",)}
    target_sync = (("q_net.", "q_net_target."),)
    part_notes = {"policy": _SAME, "value": _SAME}

    def describe_part(self, part: str) -> str:
        if part == "trunk":
            return "`q_net` hidden layers (all but the output layer)"
        return super().describe_part(part)

    def part_keys(self, model: BaseAlgorithm, part: str) -> list[str]:
        """``trunk`` is every layer of ``q_net`` but the last (the output head)."""
        keys = super().part_keys(model, part)
        if part != "trunk":
            return keys
        layers = sorted({int(k.split(".")[2]) for k in keys})
        return [k for k in keys if int(k.split(".")[2]) != layers[-1]]

    def state_value(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        """V(s) = max_a Q(s, a)."""
        with torch.no_grad():
            q = model.q_net(model.policy.obs_to_tensor(obs)[0])
        return q.max(dim=1).values.numpy()

    def describe_start(self, hyperparams: Mapping[str, Any]) -> str:
        start = self._param(hyperparams, "exploration_initial_eps")
        final = self._param(hyperparams, "exploration_final_eps")
        fraction = self._param(hyperparams, "exploration_fraction")
        if start == final:
            return f"{super().describe_start(hyperparams)}; epsilon {final:g} throughout"
        return (
            f"{super().describe_start(hyperparams)}; epsilon {start:g} -> {final:g} over "
            f"the first {fraction:g} of the budget"
        )

    def transfer_overrides(self, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        final = float(hyperparams.get("exploration_final_eps", 0.05))
        return {"exploration_initial_eps": final}
