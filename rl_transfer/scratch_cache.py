"""The scratch cache: finished scratch baselines shared by experiments, keyed by content.

A scratch run whose key (:func:`rl_transfer.spec.scratch_key`) the cache holds is not trained
again: the cached folder is linked into the experiment folder (:func:`fetch`). A scratch run
that finishes ``"done"`` is put into the cache (:func:`store`); a failed one never is. Both
directions copy the folder file by file as hard links when source and destination share a
filesystem, else as copies -- never symlinks -- so the experiment folder stays whole when the
cache is deleted, and the cache when an experiment is. Both build the folder under a temporary
name beside the destination (``.<name>.tmp-<pid>``) and rename it, so neither ever holds half a
run. Hard-linked files are shared: nothing in rl_transfer writes into a finished run's files
(rewrites are atomic renames, which break the link), and nothing else should.

Layout: ``<scratch cache>/<key>/``, the run folder as the run wrote it (run.json with
``scratch_key``, evaluations.npz, transfer_report.json, model.zip, TensorBoard events and, under
``VecNormalize``, vecnormalize.pkl).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from rl_transfer.errors import RecordError
from rl_transfer.io import read_json
from rl_transfer.records import run_status


def cached(cache: Path, key: str) -> bool:
    """True when ``cache/key`` holds a finished scratch run stored under ``key`` (its run.json
    says ``"done"`` and names ``key``)."""
    return _holds(Path(cache) / key, key)  # (one a newer rl_transfer wrote: not reusable)


def _holds(folder: Path, key: str) -> bool:
    """True when ``folder`` holds a finished scratch run stored under ``key``."""
    try:
        if run_status(folder) != "done":
            return False
        return read_json(Path(folder) / "run.json").get("scratch_key") == key
    except (RecordError, OSError, ValueError, AttributeError):
        return False


def fetch(cache: Path, key: str, run_dir: Path) -> dict[str, Any] | None:
    """Link the cached run ``cache/key`` into ``run_dir`` (replacing whatever unfinished run is
    there); return its run.json content. None, with ``run_dir`` left as it was, when the cache
    does not hold ``key`` or the folder could not be linked (the entry was deleted meanwhile):
    the run is then trained."""
    if not cached(cache, key):
        return None
    try:
        link_tree(Path(cache) / key, run_dir, replace=True)
    except OSError:
        return None
    return read_json(Path(run_dir) / "run.json")


def store(run_dir: Path, cache: Path, key: str) -> bool:
    """Put the finished scratch run in ``run_dir`` into the cache under ``key``, unless the cache
    holds it already. Returns True when stored now.

    Raises:
        OSError: the cache cannot be written (the run stays where it is, uncached).
    """
    dst = Path(cache) / key
    if cached(cache, key):
        return False
    try:
        link_tree(run_dir, dst)  # the rename fails when a folder is there
    except OSError:
        if cached(cache, key):  # another experiment stored the same run first: keep theirs
            return False
        if not dst.exists():
            raise
        # not a finished run under this key (left by hand, or unfinished): moved aside first,
        # so that a finished entry renamed in meanwhile is never deleted
        aside = dst.parent / f".{dst.name}.old-{os.getpid()}"
        os.rename(dst, aside)
        if _holds(aside, key):  # finished meanwhile by another experiment: put back, kept
            os.rename(aside, dst)
            return False
        shutil.rmtree(aside, ignore_errors=True)
        link_tree(run_dir, dst)
    return True


def link_tree(src: Path, dst: Path, replace: bool = False) -> None:
    """Build a copy of the folder ``src`` at ``dst`` whose files are hard links to ``src``'s
    (copies where a link cannot be made: another filesystem), under a temporary name beside
    ``dst``, then renamed to ``dst``. ``replace``: remove an existing ``dst`` first (else an
    existing non-empty ``dst`` makes the rename fail). Temporary folders of processes that no
    longer run are removed first.

    Raises:
        OSError: reading ``src`` or writing beside ``dst`` failed (the temporary folder removed).
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(dst)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, copy_function=_link_or_copy)
        if replace and dst.exists():
            shutil.rmtree(dst)
        os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(src, dst)


def remove_orphans(dst: Path) -> None:
    """Delete the temporary folders of ``dst`` (``.<name>.tmp-<pid>``) whose process no longer
    runs (a link or store that was killed)."""
    for tmp in Path(dst).parent.glob(f".{Path(dst).name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            if pid != os.getpid():
                os.kill(pid, 0)
                continue
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["cached", "fetch", "link_tree", "remove_orphans", "store"]
