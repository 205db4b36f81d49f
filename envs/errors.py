"""Exceptions raised by :mod:`envs`. All derive from :class:`EnvsError` (a ``ValueError``)."""


class EnvsError(ValueError):
    """Base class of the errors raised on bad env, variant or pair definitions."""


class ParameterError(EnvsError):
    """An unknown parameter name, or a value outside the declared bounds."""


class UnknownFamilyError(EnvsError):
    """No env family has this name."""


class UnknownPairError(EnvsError):
    """No env pair has this name."""


class PairError(EnvsError):
    """An env pair definition is invalid (spaces, bounds, duplicate name)."""
