"""Transfer methods: what a target run takes from its source run, one file per method.

=============  ===========================================================================
``scratch``    from-scratch baseline (:mod:`.scratch`)
``policy``     the source's actor is copied (:mod:`.policy`)
``value``      the source's critic / Q-network is copied (:mod:`.value`)
``finetune``   every weight is copied (:mod:`.finetune`)
``feature``    hidden layers copied and frozen (:mod:`.feature`)
``shaping``    potential-based reward shaping with the source's value (:mod:`.shaping`)
``jsrl``       jump-start RL, the source as guide (:mod:`.jsrl`)
``reuse``      pi-reuse exploration (:mod:`.reuse`)
``kickstart``  kickstarting, a KL term toward the source's policy (:mod:`.kickstart`)
``replay``     the source's replay buffer seeds the target's (:mod:`.replay`)
=============  ===========================================================================

Methods combine with ``+`` (``policy+shaping``). A method is a
:class:`~rl_transfer.methods.base.TransferMethod` subclass (its lifecycle hooks are documented
there). A user's package adds one without touching rl_transfer, through the entry-point group
``rl_transfer.methods``::

    # the plugin's pyproject.toml
    [project.entry-points."rl_transfer.methods"]
    mymethod = "my_package.transfer:MyMethod"

or, in one program, :func:`register_method`. Entry points are read on the first look-up of a
name that is not built in (importing this package stays cheap).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from rl_transfer.entrypoints import load_group
from rl_transfer.errors import SpecError
from rl_transfer.methods.base import Combined, Knob, TargetRun, TransferMethod
from rl_transfer.methods.feature import FeatureTransfer
from rl_transfer.methods.finetune import FineTuning
from rl_transfer.methods.jsrl import JumpStartRL
from rl_transfer.methods.kickstart import Kickstart
from rl_transfer.methods.policy import PolicyTransfer
from rl_transfer.methods.replay import ReplayTransfer
from rl_transfer.methods.reuse import Reuse
from rl_transfer.methods.scratch import Scratch
from rl_transfer.methods.shaping import RewardShaping
from rl_transfer.methods.value import ValueTransfer
from rl_transfer.methods.weights import MergedWeights, WeightTransfer
from rl_transfer.names import check_name

ENTRY_POINT_GROUP = "rl_transfer.methods"

_BUILTIN: tuple[type[TransferMethod], ...] = (
    Scratch,
    PolicyTransfer,
    ValueTransfer,
    FineTuning,
    FeatureTransfer,
    RewardShaping,
    JumpStartRL,
    Reuse,
    Kickstart,
    ReplayTransfer,
)
_REGISTRY: dict[str, type[TransferMethod]] = {cls.name: cls for cls in _BUILTIN}
_ORIGIN: dict[str, str] = {cls.name: "rl_transfer" for cls in _BUILTIN}
_entry_points_loaded = False


def register_method(cls: type[TransferMethod], origin: str = "user") -> type[TransferMethod]:
    """Add a method class to the registry (usable as a decorator); return it.

    Its runs in worker processes find it because each target job carries its method object.

    Raises:
        SpecError: ``cls`` is not a TransferMethod subclass, has no ``name``/``doc``, its name
            contains ``+`` or is already taken by another class.
    """
    where = "" if origin == "user" else f"{origin}: "
    if not (isinstance(cls, type) and issubclass(cls, TransferMethod)):
        raise SpecError(f"{where}{cls!r} is not a TransferMethod subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or "+" in name:
        raise SpecError(f"{where}{cls.__qualname__}.name must be a name without '+'")
    check_name("method", name, lambda m: SpecError(where + m))
    if not isinstance(getattr(cls, "doc", None), str):
        raise SpecError(f"{where}{cls.__qualname__}.doc must be a one-line description")
    taken = _REGISTRY.get(name)
    same = taken is not None and (taken.__module__, taken.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )  # the same class defined again (a re-run notebook cell, a reloaded module)
    if taken is not None and not same:
        raise SpecError(
            f"method name {name!r} of {cls.__module__}.{cls.__qualname__} ({origin}) is taken by "
            f"{taken.__module__}.{taken.__qualname__} ({_ORIGIN[name]})"
        )
    _REGISTRY[name] = cls
    _ORIGIN[name] = origin
    return cls


def load_entry_points() -> None:
    """Register the methods of every installed package's ``rl_transfer.methods`` entry points
    (once per process, when all of them load; a failure is raised again at every call).

    Raises:
        SpecError: an entry point that cannot be loaded, is not a TransferMethod subclass or
            takes a name already used (the distribution and entry point are named).
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return

    def register(name: str, cls: Any, where: str) -> None:
        if getattr(cls, "name", None) != name:
            raise SpecError(
                f"{where}: names the method {getattr(cls, 'name', None)!r}; an entry point's "
                "name must be its method's name"
            )
        register_method(cls, origin=where)

    load_group(ENTRY_POINT_GROUP, register, SpecError)
    _entry_points_loaded = True


def method_names() -> list[str]:
    """Every registered method's name: built-in ones first, then plugins, in registration
    order."""
    load_entry_points()
    return list(_REGISTRY)


def origin(name: str) -> str:
    """Where a method comes from: ``rl_transfer``, ``user`` or its entry point."""
    load_entry_points()
    return _ORIGIN[name]


def _unknown(name: str) -> SpecError:
    valid = sorted(n for n in _REGISTRY if n != "scratch")
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return SpecError(f"unknown method {name!r}; {hint}valid methods: {', '.join(valid)}")


def get_method(name: str) -> TransferMethod:
    """A fresh method object for ``name``; ``a+b`` combines methods.

    Raises:
        SpecError: an unknown name (the closest one suggested, then the valid ones sorted,
            scratch left out), ``scratch`` in a combination, or a method repeated.
    """
    load_entry_points()  # every time the same answer, whichever names are asked for
    names = name.split("+")
    for n in names:
        if n not in _REGISTRY:
            raise _unknown(n)
    if len(names) == 1:
        return _REGISTRY[name]()
    if "scratch" in names or len(set(names)) != len(names):
        raise SpecError(
            f"method {name!r}: combine distinct transfer methods with '+', "
            "not scratch (it always runs as the baseline)"
        )
    order = list(_REGISTRY)
    parts = sorted((_REGISTRY[n]() for n in names), key=lambda m: order.index(m.name))
    weights = [m for m in parts if MergedWeights.mergeable(m)]
    if len(weights) > 1:  # one copy of the union of their parts, in the order given
        weights.sort(key=lambda m: names.index(m.name))
        parts = [MergedWeights(weights)] + [m for m in parts if m not in weights]
    return Combined(name, parts)


class _Methods(Mapping[str, TransferMethod]):
    """The registry as a read-only mapping, name -> a method object (entry points included)."""

    def __getitem__(self, name: str) -> TransferMethod:
        if name not in method_names():
            raise KeyError(name)
        return get_method(name)

    def __iter__(self) -> Iterator[str]:
        return iter(method_names())

    def __len__(self) -> int:
        return len(method_names())


METHODS: Mapping[str, TransferMethod] = _Methods()

__all__ = [
    "ENTRY_POINT_GROUP",
    "METHODS",
    "Combined",
    "Knob",
    "TargetRun",
    "TransferMethod",
    "WeightTransfer",
    "get_method",
    "load_entry_points",
    "method_names",
    "origin",
    "register_method",
]
