"""Feature transfer: the source's hidden layers are copied and frozen, the output heads start
fresh (a frozen learned representation; Yosinski et al. 2014, "How transferable are features in
deep neural networks?")."""

from __future__ import annotations

from rl_transfer.methods.weights import WeightTransfer


class FeatureTransfer(WeightTransfer):
    name = "feature"
    doc = "the source's hidden layers are copied and frozen; output heads are fresh"
    reference = "Yosinski et al. 2014, How transferable are features in deep neural networks?"
    parts = ("trunk",)
    moves = "hidden layers, frozen"
    freeze = ("trunk",)
