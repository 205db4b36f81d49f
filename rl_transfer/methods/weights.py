"""Weight transfer: the source's tensors copied into a freshly built target model.

The agent adapter names each algorithm's parts (``policy``, ``value``, ``trunk``: prefixes of
``policy.state_dict()`` keys) and copies them (:meth:`agents.base.AgentAdapter.copy_parts`):
only the named tensors move; schedules, hyperparameters and optimizer state stay the target's
(unless ``finetune.optimizer=1``), and target networks are set equal to the copied online
network. Reference: Taylor & Stone 2009 (JMLR 10), policy and value-function transfer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rl_transfer.methods.base import Combined, TargetRun, TransferMethod


class WeightTransfer(TransferMethod):
    """Base of the methods that copy (and possibly freeze) parts of the source's networks."""

    reference = "Taylor & Stone 2009, Transfer Learning for RL Domains: A Survey (JMLR 10)"

    def missing(self, adapter: Any) -> list[str]:
        return [
            f"the part {p!r}"
            for p in dict.fromkeys(self.parts + self.freeze)
            if p not in adapter.parts
        ]

    def hyperparam_overrides(self, adapter: Any, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        """The adapter's overrides for an arm that starts from copied weights (SB3's off-policy
        warm-up and DQN's epsilon restarting at 1.0 would throw the jumpstart away)."""
        return dict(adapter.transfer_overrides(hyperparams))

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[Any]]:
        adapter, model = run.adapter, run.model
        report: dict[str, Any] = adapter.copy_parts(run.source, model, list(self.parts)).to_dict()
        if "optimizer" in self.knobs and run.knobs.get("optimizer"):
            report["optimizer_state"] = adapter.copy_optimizer_state(run.source, model)
        if self.freeze:
            keys = [k for part in self.freeze for k in adapter.part_keys(model, part)]
            report["frozen"] = adapter.freeze(model, keys)
        return report, []


class MergedWeights(Combined, WeightTransfer):
    """Weight transfers combined (``policy+value``): one copy of the union of their parts (the
    weight transfer's own hook); every other hook is each member's, as in any combination."""

    def __init__(self, members: list[WeightTransfer]) -> None:
        super().__init__("+".join(m.name for m in members), list(members))

    before_learning = WeightTransfer.before_learning

    @staticmethod
    def mergeable(method: TransferMethod) -> bool:
        """A weight transfer whose copy is the shared one (it does not replace the copy hook)."""
        return (
            isinstance(method, WeightTransfer)
            and type(method).before_learning is WeightTransfer.before_learning
        )
