"""rl_transfer: a reinforcement-learning transfer workbench.

Pretrain an agent on a source task, transfer its policy or value function to a related target
task, and measure -- beside a from-scratch baseline with the same seeds and budget -- whether and
how much transfer helped (Taylor & Stone 2009 metrics, rliable-style aggregation, calibrated
tests).

Public names are imported on first use, so ``import rl_transfer`` stays light:
``rl_transfer.compare`` needs numpy and scipy only, not torch or stable-baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EnvPair": "envs",
    "get_pair": "envs",
    "list_pairs": "envs",
    "load_pairs_file": "envs",
    "register_pair": "envs",
    "register_family": "envs",
    "unregister_pair": "envs",
    "RLTransferError": "rl_transfer.errors",
    "SpecError": "rl_transfer.errors",
    "Experiment": "rl_transfer.experiment",
    "ExperimentResult": "rl_transfer.experiment",
    "METHODS": "rl_transfer.methods",
    "TransferMethod": "rl_transfer.methods",
    "Knob": "rl_transfer.methods",
    "register_method": "rl_transfer.methods",
    "get_method": "rl_transfer.methods",
    "ExperimentSpec": "rl_transfer.spec",
    "compare": "rl_transfer.comparison",
    "Comparison": "rl_transfer.comparison",
    "ComparisonError": "rl_transfer.comparison",
}

__all__ = sorted(_LAZY)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rl_transfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
