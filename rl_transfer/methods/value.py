"""Value-function transfer: the source's critic (or Q-network) is copied into the target."""

from __future__ import annotations

from rl_transfer.methods.weights import WeightTransfer


class ValueTransfer(WeightTransfer):
    name = "value"
    doc = "the source's value network (critic / Q) is copied"
    moves = "critic / Q weights"
    parts = ("value",)
