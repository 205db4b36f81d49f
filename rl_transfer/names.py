"""Names that become folder names: pair, method and experiment names are path components of
``runs/<experiment>/<pair>/<algo>/<method>/seed_<k>``, and run folders are cleared with a
recursive delete before a run restarts. A name is therefore checked before it is used, so that
no name (``../../x``, ``a/b``, ``.``) can make the tool write or delete outside the experiment
folder. Standard library only: :mod:`envs` imports it."""

from __future__ import annotations

import re
from collections.abc import Callable

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,99}")
"""A letter or digit, then up to 99 letters, digits or ``_ . + = -``: one path component that
is never ``.`` or ``..`` and holds no separator."""


def check_name(kind: str, name: object, error: Callable[[str], Exception]) -> str:
    """Return ``name`` if it is a safe folder name, else raise ``error`` in one line.

    Args:
        kind: what is named, for the message (``"pair"``, ``"method"``, ``"experiment"``).
        name: the name to check.
        error: builds the exception to raise from the message (the caller's error class).

    Raises:
        error: ``name`` is not a string matching :data:`NAME`.
    """
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise error(
            f"{kind} name {name!r} cannot be a folder name: use letters, digits and _ . + = - "
            "(starting with a letter or digit, at most 100 characters, no '/')"
        )
    return name
