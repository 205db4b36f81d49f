"""Agent adapters over stable-baselines3, one per algorithm (:class:`agents.base.AgentAdapter`)."""

from __future__ import annotations

import difflib

from agents.a2c import A2CAdapter
from agents.base import AgentAdapter, TransferRecord
from agents.dqn import DQNAdapter
from agents.ppo import PPOAdapter
from agents.sac import SACAdapter
from agents.td3 import TD3Adapter
from rl_transfer.errors import TransferError, UnknownAlgoError

ADAPTERS: dict[str, type[AgentAdapter]] = {
    "ppo": PPOAdapter,
    "a2c": A2CAdapter,
    "dqn": DQNAdapter,
    "sac": SACAdapter,
    "td3": TD3Adapter,
}


def get_adapter(algo: str) -> AgentAdapter:
    """The adapter for ``algo`` (``"ppo"``, ``"a2c"``, ``"dqn"``, ``"sac"``, ``"td3"``).

    Raises:
        UnknownAlgoError: unknown name; the closest valid ones are suggested.
    """
    try:
        return ADAPTERS[algo]()
    except KeyError:
        close = difflib.get_close_matches(algo, list(ADAPTERS), n=len(ADAPTERS), cutoff=0.0)
        raise UnknownAlgoError(f"unknown algo {algo!r}; valid algos: {', '.join(close)}") from None


__all__ = [
    "ADAPTERS",
    "A2CAdapter",
    "AgentAdapter",
    "DQNAdapter",
    "PPOAdapter",
    "SACAdapter",
    "TD3Adapter",
    "TransferError",
    "TransferRecord",
    "UnknownAlgoError",
    "get_adapter",
]
