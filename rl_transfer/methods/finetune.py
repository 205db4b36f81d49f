"""Fine-tuning: every one of the source's weights is copied and trained further on the target;
``optimizer=1`` also carries the optimizer's state (moment estimates, step counts)."""

from __future__ import annotations

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
