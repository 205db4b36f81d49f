"""Atomic file writes: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rl_transfer.errors import StorageError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and rename ``tmp_path`` onto ``path`` (same folder, so atomic).

    ``tmp_path`` keeps ``path``'s suffix (numpy and SB3 add one when it is missing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically. NaN and Infinity are refused (ValueError)."""
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


SOURCE_CURVE_FILE = "source_on_target.npz"
"""In a transfer run's folder: the source's checkpoints during pretraining evaluated on this run's
target (evaluations.npz layout; ``timesteps`` are source steps, ending at the final model)."""
INVOCATIONS_FILE = "invocations.json"
"""An experiment folder's log of the invocations that worked on it (start, wall time, outcome,
machine, workers, backend), one entry per invocation."""
SEQUENTIAL_FILE = "sequential.json"
"""In an adaptive experiment's folder: the looks taken and each hypothesis's decision."""


STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""``errno`` values that mean the filesystem cannot take more writes: full, over quota,
read-only."""
NEARLY_FULL_BYTES = 1 << 20
"""Free space below which a failed write is taken for a full filesystem even when the library
that wrote hid the ``OSError`` (torch's zip writer raises ``RuntimeError: ... file write
failed``)."""


def storage_fault(exc: BaseException, where: Path | None = None) -> StorageError | None:
    """The :class:`~rl_transfer.errors.StorageError` that ``exc`` stands for, or None.

    ``exc`` is one when it, or an exception in its chain (``__cause__``/``__context__``), is an
    ``OSError`` with an errno of :data:`STORAGE_ERRNOS`; or, when ``where`` (the folder being
    written) is given, when that folder's filesystem has less than :data:`NEARLY_FULL_BYTES`
    free. The message is one line: what failed, the path, and what to do.
    """
    if isinstance(exc, StorageError):
        return exc
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            return _storage_error(os.strerror(e.errno), e.filename or where)
        e = e.__cause__ or e.__context__
    if where is not None and _free_bytes(Path(where)) < NEARLY_FULL_BYTES:
        return _storage_error(os.strerror(errno.ENOSPC), where)
    return None


@contextmanager
def storage_faults(where: Path) -> Iterator[None]:
    """Within: an ``OSError`` that :func:`storage_fault` recognises (``where``: the folder
    being written) is raised as its :class:`~rl_transfer.errors.StorageError`; other errors
    pass unchanged."""
    try:
        yield
    except OSError as exc:
        fault = storage_fault(exc, where)
        if fault is None:
            raise
        raise fault from None


def _storage_error(reason: str, path: object) -> StorageError:
    return StorageError(
        f"{reason.lower()} while writing {path}: free space there, or choose a folder on another "
        "filesystem (--out, --source-cache), then run the same command again (finished runs are "
        "kept)"
    )


def _free_bytes(folder: Path) -> int:
    """Free bytes on the filesystem holding ``folder`` (its nearest existing ancestor)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return NEARLY_FULL_BYTES
    return NEARLY_FULL_BYTES
