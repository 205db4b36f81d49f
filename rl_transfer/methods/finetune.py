"""Fine-tuning: every one of the source's weights is copied and trained further on the target;
``optimizer=1`` also carries the optimizer's state (moment estimates, step counts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rl_transfer.methods.base import Knob
from rl_transfer.methods.weights import WeightTransfer


class FineTuning(WeightTransfer):
    name = "finetune"
    doc = "all of the source's weights are copied"
    moves = "all weights"
    parts = ("policy", "value")
    knobs = {
        "optimizer": Knob(
            0.0,
            0.0,
            1.0,
            "1: also carry the source's optimizer state (moment estimates, step counts)",
            flag=True,
        )
    }

    def models_problem(self, source: Any, target: Any, knobs: Mapping[str, Any]) -> str | None:
        if not knobs.get("optimizer"):
            return None
        a, b = type(source.policy.optimizer), type(target.policy.optimizer)
        if a is b:
            return None
        return (
            f"finetune.optimizer=1 carries the source's optimizer state, and the source's "
            f"optimizer is {a.__name__}, this arm's {b.__name__}: give both the same "
            "optimizer_class, or leave finetune.optimizer at 0"
        )
