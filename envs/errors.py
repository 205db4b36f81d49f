"""Exceptions raised by :mod:`envs`. All derive from :class:`EnvsError` (a ``ValueError`` and an
:class:`rl_transfer.errors.RLTransferError`); they are defined with the rest of the family in
:mod:`rl_transfer.errors` and importable from here as before."""

from rl_transfer.errors import (
    EnvsError,
    PairError,
    ParameterError,
    UnknownFamilyError,
    UnknownPairError,
)

__all__ = ["EnvsError", "PairError", "ParameterError", "UnknownFamilyError", "UnknownPairError"]
