"""Transfer methods: what a target run takes from its source run before learning.

Each method names the adapter parts it moves; the adapter does the moving (see
:mod:`agents.base`). ``scratch`` is the from-scratch baseline and takes nothing.

References: Taylor & Stone 2009 (JMLR 10) for policy / value-function transfer; fine-tuning
moves all weights.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from rl_transfer.errors import SpecError


@dataclass(frozen=True)
class TransferMethod:
    """A transfer method.

    Attributes:
        name: the method's name on the CLI and in run folders.
        parts: adapter parts whose tensors are copied from the source model.
        doc: one line for listings and docs.
    """

    name: str
    parts: tuple[str, ...]
    doc: str

    @property
    def needs_source(self) -> bool:
        return bool(self.parts)


SCRATCH = TransferMethod("scratch", (), "from-scratch baseline: fresh weights, nothing transferred")

METHODS: dict[str, TransferMethod] = {
    m.name: m
    for m in (
        SCRATCH,
        TransferMethod("policy", ("policy",), "the source's policy network (actor) is copied"),
        TransferMethod("value", ("value",), "the source's value network (critic / Q) is copied"),
        TransferMethod("finetune", ("policy", "value"), "all of the source's weights are copied"),
    )
}


def get_method(name: str) -> TransferMethod:
    """The method called ``name``.

    Raises:
        SpecError: unknown name; the closest valid ones are suggested.
    """
    try:
        return METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(METHODS), n=len(METHODS), cutoff=0.0)
        raise SpecError(f"unknown method {name!r}; valid methods: {', '.join(close)}") from None
