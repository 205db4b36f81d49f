"""The errors of rl_transfer, one family: every error the workbench raises on purpose derives from
:class:`RLTransferError`, and the ``rl-transfer`` command prints it as one ``error: ...`` line on
stderr (no traceback) and exits with the class's :attr:`~RLTransferError.exit_code`:

==========================  =========  =====================================================
class                       exit code  meaning
==========================  =========  =====================================================
RLTransferError             1          base class (an error of no narrower kind)
SpecError                   2          bad experiment spec, flag or study file (user input)
EnvsError                   2          bad env, variant or pair definition (user input)
ParameterError              2          unknown env parameter, or a value out of bounds
UnknownFamilyError          2          no env family has this name
UnknownPairError            2          no env pair has this name
PairError                   2          invalid pair definition or pairs file
UnknownAlgoError            2          no agent adapter has this algorithm name
TransferError               3          a transfer that cannot be done (shapes, nothing moved)
RecordError                 4          a results file that cannot be read, unknown schema
SchemaVersionError          4          a results file from a newer rl_transfer (upgrade)
BackendError                5          the execution backend is missing or unreachable (Ray)
ClusterLostError            5          the Ray cluster stopped answering during a study
FolderLockedError           6          the experiment folder is in use by another process
SB3CompatibilityError       7          the installed stable-baselines3 changed an internal used
StorageError                8          a results file cannot be written (disk full, read-only)
MissingRunsError            9          runs were started and left no result (none is lost silently)
==========================  =========  =====================================================

Exit status 2 also answers a command line argparse refuses, 1 a run that failed (its error is
recorded in its run.json), 130 an interrupt.

The user-input errors also derive from ``ValueError``, as they did before this family existed.
This module imports the standard library only, so :mod:`envs` and :mod:`agents` import it
without importing the rest of rl_transfer.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_USAGE = 2
"""Exit status of a command line that argparse refuses (the same as user input errors)."""
EXIT_RUN_FAILED = 1
"""Exit status of ``rl-transfer run`` when a run failed (recorded in its run.json)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C or SIGTERM."""


class RLTransferError(Exception):
    """Base class of rl_transfer's errors.

    Attributes:
        exit_code: the ``rl-transfer`` exit status when this error ends a command.
    """

    exit_code: ClassVar[int] = 1


class SpecError(RLTransferError, ValueError):
    """An experiment specification is invalid: unknown name, bad number, unusable folder, bad
    study file or flag."""

    exit_code = 2


class EnvsError(RLTransferError, ValueError):
    """Base class of the errors raised on bad env, variant or pair definitions."""

    exit_code = 2


class ParameterError(EnvsError):
    """An unknown parameter name, or a value outside the declared bounds."""


class UnknownFamilyError(EnvsError):
    """No env family has this name."""


class UnknownPairError(EnvsError):
    """No env pair has this name."""


class PairError(EnvsError):
    """An env pair definition is invalid (spaces, bounds, duplicate name, bad pairs file)."""


class UnknownAlgoError(RLTransferError, ValueError):
    """No agent adapter exists for this algorithm name."""

    exit_code = 2


class TransferError(RLTransferError, ValueError):
    """A transfer that cannot be done: unknown part, shape mismatch, or nothing moved."""

    exit_code = 3


class RecordError(RLTransferError):
    """A results file (run.json, summary.json, experiment.yaml, ...) that cannot be read, or
    that has an unknown schema version."""

    exit_code = 4


class SchemaVersionError(RecordError):
    """A results file written by a newer rl_transfer (a ``schema_version`` this one does not
    know): upgrade to read it."""


class BackendError(RLTransferError):
    """The execution backend is missing or unreachable (Ray not installed, no cluster at the
    address given)."""

    exit_code = 5


class ClusterLostError(BackendError):
    """The Ray cluster stopped answering during a study (its head, or this machine's Ray node,
    died). Finished runs are kept; the same command, once the cluster runs again, finishes the
    study."""


class FolderLockedError(RLTransferError):
    """An experiment folder is being written by another process."""

    exit_code = 6


class SB3CompatibilityError(RLTransferError):
    """The installed stable-baselines3 changed an internal that rl_transfer relies on."""

    exit_code = 7


class StorageError(RLTransferError):
    """A results file cannot be written: the filesystem is full (``ENOSPC``), over quota
    (``EDQUOT``) or read-only (``EROFS``). The experiment stops; finished runs are kept and the
    same command resumes once there is room."""

    exit_code = 8


class MissingRunsError(RLTransferError):
    """Runs that an experiment started left no result in its folder (neither finished nor
    recorded as failed). The reports are written from the runs that are there; the same command
    runs the missing ones."""

    exit_code = 9


def yaml_error_message(path: object, exc: BaseException) -> str:
    """``file:line:column: problem`` for a YAML syntax error (1-based line and column, as
    editors count), or ``file: message`` when PyYAML gives no position.

    ``exc`` is a ``yaml.YAMLError``; a ``MarkedYAMLError`` has ``problem_mark`` (0-based
    ``line``/``column``) and ``problem``.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"{path}: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: {problem}"


def read_yaml(path: object, what: str, error: type[RLTransferError]) -> object:
    """The content of the YAML file ``path`` (a ``what`` file: "study", "pairs", ...).

    Raises:
        error: unreadable (``cannot read <what> file <path>: <reason>``) or invalid YAML
            (``file:line:column: problem (the <what> file is not valid YAML)``), one line.
    """
    from pathlib import Path

    import yaml

    try:
        return yaml.safe_load(Path(str(path)).read_text())
    except OSError as exc:
        raise error(f"cannot read {what} file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(
            f"{yaml_error_message(path, exc)} (the {what} file is not valid YAML)"
        ) from None


__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_RUN_FAILED",
    "EXIT_USAGE",
    "BackendError",
    "ClusterLostError",
    "EnvsError",
    "FolderLockedError",
    "MissingRunsError",
    "PairError",
    "ParameterError",
    "RLTransferError",
    "RecordError",
    "SchemaVersionError",
    "SB3CompatibilityError",
    "SpecError",
    "StorageError",
    "TransferError",
    "UnknownAlgoError",
    "UnknownFamilyError",
    "UnknownPairError",
    "yaml_error_message",
]
