"""rl_transfer: a reinforcement-learning transfer workbench.

Pretrain an agent on a source task, transfer its policy or value function to a related target
task, and measure -- beside a from-scratch baseline with the same seeds and budget -- whether and
how much transfer helped (Taylor & Stone 2009 metrics, rliable-style aggregation).
"""

from envs import (
    EnvPair,
    get_pair,
    list_pairs,
    load_pairs_file,
    register_pair,
    unregister_pair,
)
from rl_transfer.errors import RLTransferError, SpecError
from rl_transfer.experiment import Experiment, ExperimentResult
from rl_transfer.methods import METHODS
from rl_transfer.spec import ExperimentSpec

__all__ = [
    "METHODS",
    "EnvPair",
    "Experiment",
    "ExperimentResult",
    "ExperimentSpec",
    "RLTransferError",
    "SpecError",
    "get_pair",
    "list_pairs",
    "load_pairs_file",
    "register_pair",
    "unregister_pair",
]
__version__ = "0.1.0"
