"""Reading a plugin entry-point group: the one loader behind ``rl_transfer.methods``,
``rl_transfer.families`` and ``rl_transfer.pairs``. Standard library only, so :mod:`envs` can
import it as it imports :mod:`rl_transfer.errors`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def load_group(
    group: str,
    register: Callable[[str, Any, str], None],
    error: type[Exception],
) -> None:
    """Load every entry point of ``group`` (installed distributions) and pass each to
    ``register(name, loaded object, where)``, ``where`` naming the entry point and its
    distribution for messages.

    Raises:
        error: an entry point that cannot be imported, or whatever ``register`` raises with
            ``where`` in front when its message lacks it (one line).
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        where = f"entry point {ep.name} = {ep.value} of {dist}"
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001  (a plugin's import may fail in any way)
            raise error(f"cannot load {where}: {type(exc).__name__}: {exc}") from None
        register(ep.name, obj, where)
