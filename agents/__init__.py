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
        UnknownAlgoError: unknown name; the closest one suggested, then the valid ones sorted.
    """
    try:
        return ADAPTERS[algo]()
    except KeyError:
        close = difflib.get_close_matches(algo, list(ADAPTERS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownAlgoError(
            f"unknown algo {algo!r}; {hint}valid algos: {', '.join(sorted(ADAPTERS))}"
        ) from None


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
