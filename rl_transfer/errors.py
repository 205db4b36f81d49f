"""Errors of the rl_transfer core. The CLI prints them as one ``error:`` line and exits 2."""

from agents import TransferError, UnknownAlgoError
from envs.errors import EnvsError


class RLTransferError(Exception):
    """Base class of the core's own errors."""


class SpecError(RLTransferError, ValueError):
    """An experiment specification is invalid (unknown name, bad number, unusable folder)."""


class RecordError(RLTransferError):
    """A results file that cannot be read: not JSON / YAML, a field missing, or a
    ``schema_version`` newer than this reader knows."""


class SB3CompatibilityError(RLTransferError):
    """The installed stable-baselines3 changed an internal that rl_transfer relies on."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    RLTransferError,
    EnvsError,
    UnknownAlgoError,
    TransferError,
)
"""Exceptions that are the user's input being wrong (shown without a traceback)."""
