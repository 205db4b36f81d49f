"""Policy transfer: the source's actor (policy network) is copied into the target."""

from __future__ import annotations

from rl_transfer.methods.weights import WeightTransfer


class PolicyTransfer(WeightTransfer):
    name = "policy"
    doc = "the source's policy network (actor) is copied"
    moves = "actor weights"
    parts = ("policy",)
