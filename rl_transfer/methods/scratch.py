"""The from-scratch baseline: fresh weights, nothing transferred. Every transfer run is compared
with it on the same target, seeds and budget."""

from __future__ import annotations

from rl_transfer.methods.base import TransferMethod


class Scratch(TransferMethod):
    name = "scratch"
    doc = "from-scratch baseline: fresh weights, nothing transferred"
    moves = "nothing (baseline)"
    needs_source = False
