"""A run folder as one value, so that runs travel through Ray instead of a shared filesystem.

A Ray task of :func:`rl_transfer.runner.execute_ray` builds its run in a folder of its own on
the node it runs on and returns the folder as a *bundle*; the driver writes the bundle into the
experiment folder or the source cache (:func:`unpack`), with the same layout as the local
backend. A target that needs a source receives the source's bundle as a Ray object reference:
Ray moves it to a node once, and the node's tasks unpack it once into a node-local source cache
(:func:`unpack_once`).

A bundle maps each file's path relative to the folder (``"checkpoints/policy_0_steps.pt"``) to
its bytes as a read-only ``numpy.uint8`` array of shape ``(n_bytes,)``: Ray hands numpy arrays
to tasks without copying them out of the node's object store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rl_transfer.io import storage_faults
from rl_transfer.records import run_status

Bundle = dict[str, np.ndarray]
"""Relative path (POSIX, no ``..``) -> the file's bytes, ``numpy.uint8`` of shape ``(n,)``."""


def pack(folder: Path) -> Bundle:
    """Every regular file under ``folder`` (temporary files of atomic writes, whose names start
    with a dot, left out) as a bundle.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    files: Bundle = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            files[path.relative_to(folder).as_posix()] = np.fromfile(path, dtype=np.uint8)
    return files


def n_bytes(files: Mapping[str, np.ndarray]) -> int:
    """Total size of a bundle's files, in bytes."""
    return sum(int(a.nbytes) for a in files.values())


def _write_tree(files: Mapping[str, np.ndarray], folder: Path) -> None:
    """Write ``files`` into the new folder ``folder``; ``run.json`` last (a run counts as
    finished only once its run.json says so)."""
    folder.mkdir(parents=True)
    names = sorted(files, key=lambda name: name == "run.json")
    for name in names:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"bundle path {name!r} leaves its folder")
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(memoryview(np.ascontiguousarray(files[name])))


def _building(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.tmp-{os.getpid()}"


def unpack(files: Mapping[str, np.ndarray], folder: Path) -> None:
    """Make ``folder`` hold exactly ``files``, atomically: the files are written under a
    temporary sibling name, the old folder (if any) is moved aside, the new one renamed into
    place and the old one deleted. A reader sees the old folder or the new one, never a mix.

    Raises:
        StorageError: the filesystem is full or read-only (nothing half-written is left).
        OSError: another write failure.
    """
    folder = Path(folder)
    tmp = _building(folder)
    aside = folder.parent / f".{folder.name}.old-{os.getpid()}"
    try:
        with storage_faults(folder.parent):
            shutil.rmtree(tmp, ignore_errors=True)
            folder.parent.mkdir(parents=True, exist_ok=True)
            _write_tree(files, tmp)
            if folder.exists():
                os.rename(folder, aside)
            try:
                os.rename(tmp, folder)
            except OSError:
                if aside.exists() and not folder.exists():
                    os.rename(aside, folder)  # the old folder back, rather than none
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)


def unpack_once(files: Mapping[str, np.ndarray], folder: Path) -> bool:
    """Unpack a finished run's bundle into ``folder`` unless a finished run is already there;
    a finished folder is never replaced (another process may be reading it). Concurrent callers
    take turns on a lock file beside the folder (``fcntl.flock``), so the first writes the files
    and the others find them; a process that renames a finished folder into place without the
    lock (a local source pretraining) wins, and this copy is dropped. Returns whether this call
    wrote the files.

    Raises:
        StorageError: the filesystem is full or read-only (nothing half-written is left).
    """
    import fcntl

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if run_status(folder) == "done":
            return False
        tmp = _building(folder)
        try:
            with storage_faults(folder.parent):
                shutil.rmtree(tmp, ignore_errors=True)
                _write_tree(files, tmp)
                if folder.exists():  # left unfinished (a finished one returned above)
                    shutil.rmtree(folder)
                try:
                    os.rename(tmp, folder)
                    return True
                except OSError:  # a local pretraining renamed its finished folder in first
                    if run_status(folder) == "done":
                        return False
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["Bundle", "n_bytes", "pack", "unpack", "unpack_once"]
