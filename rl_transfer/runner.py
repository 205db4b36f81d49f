"""Runners: expand a spec into source and target jobs and run them, locally or on Ray.

Sources run first (one per (pair, algo, seed), cached by content hash in the shared source cache
and reused by every method); each target run is scheduled as soon as its source is ready; scratch
runs need no source. Finished target runs (run.json ``"done"``) are reused, unfinished ones start
again from t = 0 in a clean folder. Scratch baselines are cached by content hash too
(:mod:`rl_transfer.scratch_cache`): one the scratch cache holds is linked into the experiment
folder instead of trained, and one that finishes is stored there by the driver, whatever the
backend. Every worker uses one torch thread.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from rl_transfer import bundles
from rl_transfer.errors import (
    BackendError,
    ClusterLostError,
    FolderLockedError,
    RecordError,
    SpecError,
    StorageError,
)
from rl_transfer.io import read_json, storage_fault
from rl_transfer.methods import get_method
from rl_transfer.records import ExperimentRecord, SourceRecord, TargetRecord, run_status
from rl_transfer.scratch_cache import fetch, store
from rl_transfer.spec import ExperimentSpec, default_workers, scratch_key, source_key
from rl_transfer.train import SourceJob, TargetJob, record_failure, train_source, train_target

MAX_ATTEMPTS = 2
"""A job whose worker process died is run once more; then it is recorded as failed. A run that
took more than one attempt has ``"attempts": n`` in its run.json, and ``retrying <label>
(worker died)`` is printed on stderr (even with ``quiet``)."""
STATUS_EVERY_S = 30.0
"""Without a terminal on stderr: the most seconds between two status lines while runs go."""


@dataclass
class Plan:
    """Jobs of an experiment. ``reused``: target runs already done in the folder (not rerun)."""

    sources: list[SourceJob]
    targets: list[TargetJob]
    reused: list[dict[str, Any]] = field(default_factory=list)
    cached_sources: int = 0
    """Sources needed by ``targets`` that the cache already holds (not trained again)."""
    scratch_cache: Path | None = None
    """Where scratch runs that finish are stored (None: they are not)."""
    from_scratch_cache: list[dict[str, Any]] = field(default_factory=list)
    """Scratch runs linked from the scratch cache into the experiment folder (not trained): their
    run.json contents."""
    notes: list[str] = field(default_factory=list)
    """Lines to show when the jobs start (a finished scratch run the cache could not take)."""

    @property
    def scratch_to_train(self) -> int:
        """Scratch runs among ``targets``."""
        return sum(t.method == "scratch" for t in self.targets)


def plan(
    spec: ExperimentSpec,
    root: Path,
    seeds: list[int] | None = None,
    only: set[tuple[str, str, str]] | None = None,
) -> Plan:
    """Expand ``spec`` into jobs: pairs x algos x methods (scratch included) x seeds.

    ``seeds``: the seeds to plan (default: every seed of the spec). ``only``: the
    (pair, algo, method) comparisons still open (adaptive seeds); their scratch runs come
    with them, the other methods are left out.

    A scratch run the scratch cache holds (same :func:`~rl_transfer.spec.scratch_key`) and the
    folder does not is linked into the folder here, not planned (``from_scratch_cache``)."""
    root = root.resolve()
    scratch_dir = spec.scratch_dir().resolve()
    scratch_knobs = get_method("scratch").settings_from(spec.knobs)
    sources: dict[str, SourceJob] = {}
    targets, reused, from_cache, notes = [], [], [], []
    needs_source = any(get_method(m).needs_source for m in spec.all_methods())
    imported = Path(spec.source_model).resolve() if spec.source_model else None
    for pair in spec.pair_objects():
        for algo in spec.algos:
            budget = spec.budget(pair, algo)
            in_force = spec.hyperparams_in_force(pair, algo)
            methods = spec.all_methods()
            if only is not None:
                wanted_methods = {m for p, a, m in only if (p, a) == (pair.name, algo)}
                methods = [m for m in methods if m in wanted_methods or m == "scratch"]
                if len(methods) == 1:
                    continue
            for seed in spec.seed_list() if seeds is None else seeds:
                src = None
                if needs_source and any(get_method(m).needs_source for m in methods):
                    key = source_key(
                        pair,
                        algo,
                        in_force["source"],
                        seed,
                        budget["source_steps"],
                        spec.eval_episodes,
                        imported,
                        budget["eval_every"],
                    )
                    src = sources.setdefault(
                        key,
                        SourceJob(
                            key=key,
                            pair=pair,
                            algo=algo,
                            seed=seed,
                            steps=budget["source_steps"],
                            eval_episodes=spec.eval_episodes,
                            hyperparams=in_force["source"],
                            dir=Path(spec.source_cache).resolve() / key,
                            imported=imported,
                            eval_every=budget["eval_every"],
                        ),
                    )
                for method in methods:
                    skey = None
                    if method == "scratch":
                        skey = scratch_key(
                            pair,
                            algo,
                            in_force[method],
                            seed,
                            budget["target_steps"],
                            budget["eval_every"],
                            spec.eval_episodes,
                            scratch_knobs,
                        )
                    job = TargetJob(
                        pair=pair,
                        algo=algo,
                        method=method,
                        seed=seed,
                        target_steps=budget["target_steps"],
                        eval_every=budget["eval_every"],
                        eval_episodes=spec.eval_episodes,
                        hyperparams=in_force[method],
                        hyperparams_origin=spec.hyperparams_origin(pair, algo, method),
                        dir=_inside(root, pair.name, algo, method, f"seed_{seed}"),
                        source=src if get_method(method).needs_source else None,
                        knobs=spec.knobs,
                        scratch_key=skey,
                    )
                    info = _done_info(job.dir)
                    if info is not None:
                        reused.append(info)
                        if skey is not None and info.get("scratch_key") == skey:
                            # finished, but the driver stopped before storing it
                            notes += _store_scratch(job, scratch_dir)
                    elif skey is not None and (info := fetch(scratch_dir, skey, job.dir)):
                        from_cache.append(info)
                    else:
                        targets.append(job)
    # sources whose every dependent target is already done need not exist
    wanted = {t.source.key for t in targets if t.source is not None}
    needed = [s for k, s in sources.items() if k in wanted]
    cached = [s for s in needed if _done_info(s.dir) is not None]
    return Plan(
        [s for s in needed if s not in cached],
        targets,
        reused,
        len(cached),
        scratch_dir,
        from_cache,
        notes,
    )


def _store_scratch(job: TargetJob, cache: Path) -> list[str]:
    """Put the finished scratch run of ``job`` into the scratch ``cache``; the line to show
    when it cannot be (the run stays in the experiment folder, only uncached)."""
    assert job.scratch_key is not None
    try:
        store(job.dir, cache, job.scratch_key)
    except OSError as exc:
        return [
            f"scratch cache: {job.label} not stored in {cache} ({exc.strerror or exc}); later "
            "experiments will train it again"
        ]
    return []


def missing_runs(p: Plan) -> list[str]:
    """Labels of the target runs of ``p`` whose folder holds no result (no run.json saying
    ``done`` or ``failed``): runs that were started and lost. Empty after every complete
    execution, whatever the backend."""
    return [t.label for t in p.targets if run_status(t.dir) not in ("done", "failed")]


def _inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refused unless it lies inside ``root`` (run folders are cleared with a
    recursive delete: no name may point them elsewhere).

    Raises:
        SpecError: the path leaves ``root``.
    """
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()) or path.resolve() == root.resolve():
        raise SpecError(f"run folder {path} would lie outside the experiment folder {root}")
    return path


def _done_info(folder: Path) -> dict[str, Any] | None:
    """The run.json content of a finished run in ``folder``; None when not finished."""
    if run_status(folder) != "done":
        return None
    return read_json(folder / "run.json")


# ----------------------------------------------------------------------------------------------
# Worker side

_QUEUE: Any = None


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the process that started it dies (kill -9 of the main
    process must not leave workers writing into a folder that a rerun is cleaning)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _worker_init(q: Any) -> None:
    global _QUEUE
    import torch

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    torch.set_num_threads(1)
    _quiet_storage_faults_in_threads()
    _QUEUE = q


def _reporter(label: str, total: int) -> Callable[[int], None] | None:
    if _QUEUE is None:
        return None
    return lambda t: _QUEUE.put((label, t, total))


def run_source_job(job: SourceJob) -> dict[str, Any]:
    return train_source(job, _reporter(job.label, job.steps))


def run_target_job(job: TargetJob) -> dict[str, Any]:
    return train_target(job, _reporter(job.label, job.target_steps))


# ----------------------------------------------------------------------------------------------
# Progress


class Display:
    """Progress on stderr.

    On a terminal, with rich: the grid (runs done of total, elapsed, estimated time left) and
    one line per running job (env steps done of its budget). Otherwise (stderr piped to a file
    or another program) plain lines: ``[k/N] <label> done (x s)`` per finished run and, while
    runs go, ``[k/N runs done, m:ss elapsed]`` at most every :data:`STATUS_EVERY_S` seconds.
    ``quiet`` shows neither; :meth:`note` lines are always shown.

    Args:
        total: runs (sources + targets) to run.
        reused: finished runs reused (shown in the grid's label).
        quiet: no progress.
        stream: where to write (default: ``sys.stderr``).
        status_every: seconds between plain status lines.
    """

    def __init__(
        self,
        total: int,
        reused: int,
        quiet: bool,
        stream: TextIO | None = None,
        status_every: float = STATUS_EVERY_S,
    ) -> None:
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self.started_at = time.monotonic()
        self.status_every = status_every
        self.last_status = self.started_at
        self.run_started: dict[str, float] = {}
        self.progress: Any = None
        isatty = getattr(self.stream, "isatty", None)
        self.plain = not (isatty is not None and isatty())
        if quiet or self.plain:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
        )
        label = "runs (sources + targets)" + (f", {reused} reused" if reused else "")
        self.grid = self.progress.add_task(label, total=total)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def started(self, label: str) -> None:
        """``label`` was handed to a worker (its duration counts from here)."""
        self.run_started.setdefault(label, time.monotonic())

    def update(self, label: str, t: int, total: int) -> None:
        """``label`` has done ``t`` of its ``total`` env steps."""
        if self.progress is None:
            return
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(f"  {label}", total=total)
        self.progress.update(self.tasks[label], completed=t)

    def finish(self, label: str, status: str = "done", seconds: float | None = None) -> None:
        """``label`` ended (``status``: ``done`` or ``failed``) after ``seconds`` of training
        (None: since it was handed to a worker)."""
        self.done += 1
        began = self.run_started.pop(label, None)
        if seconds is None and began is not None:
            seconds = time.monotonic() - began
        if self.progress is not None:
            task = self.tasks.pop(label, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.grid)
        elif self.plain and not self.quiet:
            took = f" ({seconds:.0f} s)" if seconds is not None else ""
            self._print(f"[{self.done}/{self.total}] {label} {status}{took}")

    def retrying(self, label: str) -> None:
        """``label``'s worker died and it runs again."""
        self.run_started.pop(label, None)
        self.note(f"retrying {label} (worker died)")

    def note(self, line: str) -> None:
        """A line shown even with ``quiet`` (above the progress display on a terminal)."""
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            self._print(line)

    def tick(self) -> None:
        """Called while runs go: a plain status line when :attr:`status_every` has passed."""
        if self.quiet or not self.plain:
            return
        now = time.monotonic()
        if now - self.last_status >= self.status_every:
            self.last_status = now
            elapsed = int(now - self.started_at)
            self._print(
                f"[{self.done}/{self.total} runs done, {elapsed // 60}:{elapsed % 60:02d} elapsed]"
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


# ----------------------------------------------------------------------------------------------
# Scheduling shared by the backends


class _Scheduler:
    """Dependency bookkeeping: which jobs can start, and the results."""

    def __init__(self, p: Plan, display: Display) -> None:
        self.display = display
        self.ready: list[tuple[str, Any]] = [("source", s) for s in p.sources]
        training = {s.key for s in p.sources}
        self.ready += [
            ("target", t) for t in p.targets if t.source is None or t.source.key not in training
        ]
        self.waiting: dict[str, list[TargetJob]] = {}
        for t in p.targets:
            if t.source is not None and t.source.key in training:
                self.waiting.setdefault(t.source.key, []).append(t)
        self.results: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.scratch_cache = p.scratch_cache
        for line in p.notes:
            display.note(line)

    def take_ready(self) -> list[tuple[str, Any]]:
        out, self.ready = self.ready, []
        for _, job in out:
            self.attempts[job.label] = self.attempts.get(job.label, 0) + 1
            self.display.started(job.label)
        return out

    def done(self, kind: str, job: Any, info: dict[str, Any]) -> None:
        """``job`` ended with ``info``: its run.json content, or :func:`failure`'s. A scratch
        run that ended ``"done"`` is stored in the scratch cache from ``job.dir``: its folder
        must be complete when this is called."""
        info = self._count_attempts(kind, job, info)
        if kind == "target" and job.scratch_key and self.scratch_cache is not None:
            if info.get("status") == "done":  # a failed run is never cached
                for line in _store_scratch(job, self.scratch_cache):
                    self.display.note(line)
        took = None if info.get("reused") else info.get("wall_time_s")  # reused: not run now
        self.display.finish(job.label, info.get("status", "failed"), took)
        if kind == "source":
            for dep in self.waiting.pop(job.key, []):
                if info.get("status") == "done":
                    self.ready.append(("target", dep))
                else:
                    self.results.append(record_failure(dep, f"source failed: {info.get('error')}"))
                    self.display.finish(dep.label, "failed")
        else:
            self.results.append(info)

    def _count_attempts(self, kind: str, job: Any, info: dict[str, Any]) -> dict[str, Any]:
        """A job run more than once gets ``attempts`` in its run.json (and in ``info``)."""
        n = self.attempts.get(job.label, 1)
        if n <= 1:
            return info
        record_cls = TargetRecord if kind == "target" else SourceRecord
        try:
            record = record_cls.read(job.dir / "run.json")
        except RecordError:  # a source that never got its folder: nothing to annotate
            return {**info, "attempts": n}
        record.attempts = n
        record.write(job.dir)
        return {**info, "attempts": n}

    def died(self, kind: str, job: Any, error: str) -> None:
        """The worker running ``job`` died: retry (``retrying <label> (worker died)`` on
        stderr) up to :data:`MAX_ATTEMPTS` attempts in all, then record the failure."""
        if self.attempts.get(job.label, 0) < MAX_ATTEMPTS:
            self.display.retrying(job.label)
            self.ready.append((kind, job))
        else:
            self.done(kind, job, failure(kind, job, error))


def failure(kind: str, job: Any, error: str) -> dict[str, Any]:
    """The result of a job whose worker died: a target's failure is recorded in its run.json
    (:func:`~rl_transfer.train.record_failure`); a source's is returned only (its dependent
    targets record it)."""
    if kind == "target":
        return record_failure(job, error)
    return {"kind": "source", "status": "failed", "error": error}


_UNLOADABLE = (
    "a worker process cannot load the job ({}); a transfer method or env family registered in "
    "your program must be defined in an importable module (or at the top level of the script), "
    "not inside `if __name__ == '__main__':` or a notebook cell, and installed wherever runs run"
)


def _call_pickled(kind: str, blob: bytes) -> dict[str, Any]:
    """Run a job sent pickled: a job the worker cannot unpickle (a class it cannot import)
    comes back as ``{"status": "unloadable", "error"}`` instead of killing the worker."""
    try:
        job = pickle.loads(blob)
    except (AttributeError, ImportError) as exc:
        return {
            "status": "unloadable",
            "error": _UNLOADABLE.format(f"{type(exc).__name__}: {exc}"),
        }
    return _call(kind, job)


def _call(kind: str, job: Any) -> dict[str, Any]:
    return run_source_job(job) if kind == "source" else run_target_job(job)


def execute_local(p: Plan, workers: int | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Run every job of ``p`` in a pool of ``workers`` processes; return the target runs'
    run.json contents (failed ones included).

    A run that raises is recorded as failed and the others go on; a worker process that dies
    (killed, out of memory) breaks the pool: a new pool is started and the runs it held are run
    again (at most :data:`MAX_ATTEMPTS` times in all).
    """
    workers = workers or default_workers()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    display = Display(len(p.sources) + len(p.targets), len(p.reused), quiet)
    sched = _Scheduler(p, display)
    pool: ProcessPoolExecutor | None = None
    try:
        running: dict[Future, tuple[str, Any]] = {}
        while sched.ready or running:
            if pool is None:
                pool = ProcessPoolExecutor(
                    max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(q,)
                )
            for kind, job in sched.take_ready():
                running[pool.submit(_call_pickled, kind, pickle.dumps(job))] = (kind, job)
            done, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
            _drain(q, display)
            display.tick()
            broken = False
            for fut in done:
                kind, job = running.pop(fut)
                try:
                    info = fut.result()
                    if info.get("status") == "unloadable":  # recorded as the job's failure
                        info = failure(kind, job, info["error"])
                    sched.done(kind, job, info)
                except BrokenProcessPool:
                    broken = True
                    sched.died(kind, job, "its worker process died")
            if broken:
                for fut, (kind, job) in list(running.items()):
                    fut.cancel()
                    sched.died(kind, job, "its worker process died")
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = None
    except BaseException:
        if pool is not None:
            _kill_pool(pool)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        display.close()
    return sched.results


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: terminate its worker processes (their unfinished runs restart at the
    next invocation)."""
    procs = list(getattr(pool, "_processes", {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)


def execute_ray(
    p: Plan, workers: int | None = None, quiet: bool = False, address: str | None = None
) -> list[dict[str, Any]]:
    """Run every job of ``p`` as Ray tasks (one CPU each) on a fresh local Ray started with
    ``workers`` CPUs, or on the cluster at ``address``; return the target runs' run.json
    contents. Writes the same folders, with the same results, as the local backend.

    No filesystem is shared with the nodes: a task receives its job, and a target the bundle of
    its source (:mod:`rl_transfer.bundles`: model.zip, replay buffer, checkpoints, statistics)
    as a Ray object reference that reaches each node once; it builds its run in a folder of its
    own on its node and returns the folder's files, which this process (the driver) writes
    atomically into the experiment folder or the source cache. An imported source model is
    read here, where its file is. A task whose worker or node dies is run once more
    (:data:`MAX_ATTEMPTS`); tasks wait for a node with a free CPU. Progress shows finished runs
    (no per-step lines).

    Raises:
        BackendError: Ray is not installed (``pip install 'rl-transfer[ray]'``), no Ray cluster
            answers at ``address``, or a local Ray cannot start.
        StorageError: the experiment folder or source cache cannot be written (disk full), or a
            node's temporary folder cannot.
    """
    ray, started_here = connect_ray(workers, address)
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)  # retried by the scheduler
    display = Display(len(p.sources) + len(p.targets), len(p.reused), quiet)
    sched = _Scheduler(p, display)
    shipping = _Shipping(ray, p)
    watch = _ClusterWatch(ray)
    running: dict[Any, tuple[str, Any]] = {}
    try:
        while sched.ready or running:
            for kind, job in sched.take_ready():
                if kind == "source" and job.imported is not None:
                    sched.done(kind, job, run_source_job(job))  # its file is on this machine
                    continue
                if kind == "target":  # an old result must not stand for this one
                    shutil.rmtree(job.dir, ignore_errors=True)
                source = shipping.ref(job.source) if kind == "target" and job.source else None
                running[remote.remote(kind, job, source)] = (kind, job)
            try:
                done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            except OSError:  # the connection to this machine's Ray node broke
                raise watch.lose() from None
            display.tick()
            watch.check()
            for ref in done:
                kind, job = running.pop(ref)
                info = _land(ray, kind, job, ref, watch)
                if info is None:  # its worker or node died
                    sched.died(kind, job, "its Ray worker or node died")
                    continue
                sched.done(kind, job, info)
                if kind == "target":
                    shipping.finished(job)
    except BaseException:
        if not watch.lost:
            for ref in running:
                ray.cancel(ref, force=True)
        raise
    finally:
        display.close()
        if started_here and not watch.lost:
            ray.shutdown()
    return sched.results


CLUSTER_LOST_AFTER_S = 10.0
"""Seconds without a TCP answer from the cluster's GCS after which the study stops with one line
(Ray itself ends the driver process after 60 s, printing its own log lines)."""


class _ClusterWatch:
    """Notices that the Ray cluster's head (its GCS) stopped answering."""

    def __init__(self, ray: Any) -> None:
        try:
            self.address: str | None = ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001  (Ray Client and older Rays: not watched)
            self.address = None
        self.last_answer = time.monotonic()
        self.last_probe = 0.0
        self.lost = False

    def check(self) -> None:
        """Probe the GCS (at most once a second).

        Raises:
            BackendError: no answer for :data:`CLUSTER_LOST_AFTER_S` seconds.
        """
        now = time.monotonic()
        if self.address is None or now - self.last_probe < 1.0:
            return
        self.last_probe = now
        if _tcp_refusal(self.address, 2.0) is None:
            self.last_answer = time.monotonic()
        elif time.monotonic() - self.last_answer >= CLUSTER_LOST_AFTER_S:
            raise self.lose() from None

    def lose(self) -> ClusterLostError:
        """The error that ends the study; Ray is left as it is (no cancel, no shutdown: they
        would wait for the dead cluster)."""
        self.lost = True
        return ClusterLostError(
            f"lost the Ray cluster at {self.address or 'this machine'} (it stopped answering); "
            "finished runs are kept: start the cluster again and run the same command to finish "
            "the study"
        )


RAY_PROBE_TIMEOUT_S = 10.0
"""Seconds to wait for a TCP answer at ``--ray-address`` before saying no cluster answers (Ray's
own connection attempts can retry for many minutes)."""


def connect_ray(workers: int | None, address: str | None) -> tuple[Any, bool]:
    """Ray, connected: to the cluster at ``address``, or to a fresh local Ray with ``workers``
    CPUs (``address="local"``: never a cluster that happens to run on this machine). A Ray the
    caller already initialized is used as it is. Returns ``(ray, started_here)``.

    Raises:
        BackendError: Ray missing, nothing answering at ``address``, or Ray's own refusal (bad
            address, authentication), in one line.
    """
    try:
        import ray
    except ImportError:
        raise BackendError("--backend ray needs Ray: pip install 'rl-transfer[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the machine
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        _probe(address)
        kwargs["address"] = address
    else:
        kwargs.update(address="local", num_cpus=workers or default_workers())
    try:
        with _stderr_held():  # Ray's core logs every failed attempt (a wrong token: one a second)
            ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001  (Ray raises many kinds; each ends in one line)
        first = _first_line(str(exc))
        cause = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        if address:
            raise BackendError(
                f"--ray-address {address}: cannot connect ({cause}); check the address (`ray "
                "status` on the head prints it) and, when the cluster uses token authentication, "
                "that RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH gives this machine its token"
            ) from None
        raise BackendError(
            f"cannot start a local Ray ({cause}); run with --backend local, or give a cluster "
            "with --ray-address"
        ) from None
    return ray, True


@contextmanager
def _stderr_held() -> Iterator[None]:
    """Send what is written to file descriptor 2 (by Ray's C++ core as well) to a discarded
    file while connecting; the outcome is said once, by the caller."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _probe(address: str) -> None:
    """Refuse at once a ``host:port`` address where nothing accepts TCP connections.

    Raises:
        BackendError: nothing answers, or the address has no port.
    """
    if address == "auto" or "://" in address:
        return  # Ray's own forms (the local cluster's record, Ray Client): Ray checks them
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise BackendError(
            f"--ray-address {address}: expected HOST:PORT of a Ray head (its GCS port, 6379 by "
            "default), e.g. --ray-address 10.0.0.5:6379"
        )
    refusal = _tcp_refusal(address, RAY_PROBE_TIMEOUT_S)
    if refusal is not None:
        raise BackendError(
            f"--ray-address {address}: no Ray cluster answers ({refusal}); check the address "
            "(`ray status` on the head prints it), or omit --ray-address to start a local Ray"
        )


def _tcp_refusal(address: str, timeout: float) -> str | None:
    """Why nothing accepts a TCP connection at ``HOST:PORT`` within ``timeout`` seconds (the
    system's reason), or None when something does."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout).close()
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


class _Shipping:
    """The driver's side of the sources' travel: each source's bundle is put in Ray's object
    store once (by the driver, so that it outlives the node that trained it) and released when
    no target of the plan still needs it."""

    def __init__(self, ray: Any, p: Plan) -> None:
        self.ray = ray
        self.refs: dict[str, Any] = {}
        self.pending: dict[str, int] = {}
        for t in p.targets:
            if t.source is not None:
                self.pending[t.source.key] = self.pending.get(t.source.key, 0) + 1

    def ref(self, source: SourceJob) -> Any:
        """The object reference of ``source``'s bundle (read from the source cache once)."""
        if source.key not in self.refs:
            self.refs[source.key] = self.ray.put(bundles.pack(source.dir))
        return self.refs[source.key]

    def finished(self, target: TargetJob) -> None:
        """``target`` ended: its source's bundle is released after its last target."""
        if target.source is None:
            return
        key = target.source.key
        self.pending[key] = self.pending.get(key, 1) - 1
        if self.pending[key] <= 0:
            self.refs.pop(key, None)


SYSTEM_FAILURES = (
    "WorkerCrashedError",
    "NodeDiedError",
    "LocalRayletDiedError",
    "ObjectLostError",
    "OutOfMemoryError",
)
"""Ray's exceptions (and their subclasses) for a task whose worker, node, argument or result was
lost: the task is run again (up to :data:`MAX_ATTEMPTS` attempts), as the local backend does for
a worker that died. ``ObjectLostError`` covers its subclasses: ``OwnerDiedError``,
``ObjectFetchTimedOutError`` and ``ObjectReconstructionFailedError`` (a finished task's result
lived on a node that died before this process fetched it; tasks run with ``max_retries=0``, so
Ray cannot rebuild it). ``OutOfMemoryError``: Ray's memory monitor killed the worker."""


def is_system_failure(ray: Any, exc: BaseException) -> bool:
    """Whether ``exc``, raised by ``ray.get`` on a task's result, means the task's worker, node
    or data was lost (run it again), not that the task itself raised (a failure of its job).
    Matches the classes named in :data:`SYSTEM_FAILURES` and their subclasses."""
    classes = tuple(
        c for c in (getattr(ray.exceptions, n, None) for n in SYSTEM_FAILURES) if c is not None
    )
    return isinstance(exc, classes)


def _land(ray: Any, kind: str, job: Any, ref: Any, watch: _ClusterWatch) -> dict[str, Any] | None:
    """The result of the task ``ref`` for ``job``, its files written into ``job.dir`` on this
    machine; None when the task's worker or node died (to be run again). A task that raised is
    a failure of the job, recorded with its cause.

    Raises:
        StorageError: the files cannot be written here, or the task's node is out of room.
    """
    try:
        out = ray.get(ref)
    except Exception as exc:  # noqa: BLE001  (a task that died, or raised)
        if isinstance(exc, OSError) and not isinstance(exc, ray.exceptions.RayError):
            raise watch.lose() from None  # not the task's: the link to this machine's Ray broke
        if is_system_failure(ray, exc):
            return None
        cause = getattr(exc, "cause", None)
        if isinstance(cause, StorageError):
            raise StorageError(
                f"a Ray node's temporary folder is full or read-only ({cause}); give that node "
                "more room (or start it with TMPDIR on a larger disk); finished runs are kept: "
                "run the same command again"
            ) from None
        return failure(kind, job, _task_error(exc))
    info, files = out["info"], out["files"]
    if kind == "source":
        if info.get("status") == "done":
            bundles.unpack_once(files, job.dir)  # a finished copy already there is kept
        return info
    if not files:
        return failure(kind, job, info.get("error", "the task returned no run folder"))
    bundles.unpack(files, job.dir)
    return info


def _task_error(exc: BaseException) -> str:
    """``Type: first line`` of what made a Ray task fail (its own exception, not Ray's
    wrapper); a job a node cannot unpickle gets the local backend's explanation."""
    cause = getattr(exc, "cause", None)
    if cause is None and exc.args and isinstance(exc.args[0], BaseException):
        cause = exc.args[0]  # RaySystemError wraps the deserialization error
    inner = cause if isinstance(cause, BaseException) else exc
    text = str(inner)
    if isinstance(inner, (ImportError, AttributeError)) or "No module named" in text:
        return _UNLOADABLE.format(f"{type(inner).__name__}: {_first_line(text)}").replace(
            "a worker process", "a Ray node"
        )
    return f"{type(inner).__name__}: {_first_line(text)}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


NODE_SOURCES = "rl-transfer-sources"
"""On a Ray node, in the Ray session's folder (``/tmp/ray/session_*`` by default, so it goes
with the cluster's other temporary files): sources unpacked for its tasks, one folder per source
key (content-addressed, so one copy serves every study the cluster runs)."""


NODE_TASKS = "rl-transfer-tasks"
"""On a Ray node, in the Ray session's folder: one folder per running task
(``<pid namespace>-<pid>-<random>``), removed when the task ends; those of tasks whose process
died (in this PID namespace) are removed by the next task on the node."""


def _session_dir() -> Path:
    """This node's Ray session folder (the system's temporary folder when it is unknown)."""
    try:
        import ray

        return Path(ray._private.worker.global_worker.node.get_session_dir_path())
    except Exception:  # noqa: BLE001  (a private attribute of Ray; the fallback is as good)
        return Path(tempfile.gettempdir())


def _node_sources() -> Path:
    """This node's folder of unpacked sources (:data:`NODE_SOURCES`)."""
    return _session_dir() / NODE_SOURCES


def _task_folder() -> Path:
    """A new folder for this task under :data:`NODE_TASKS`, after removing those of tasks of
    this PID namespace whose process no longer runs (killed, or its worker restarted)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        namespace = "0"
    tasks = _session_dir() / NODE_TASKS
    tasks.mkdir(parents=True, exist_ok=True)
    for old in tasks.glob(f"{namespace}-*"):
        try:
            os.kill(int(old.name.split("-")[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue
    return Path(tempfile.mkdtemp(prefix=f"{namespace}-{os.getpid()}-", dir=tasks))


def _quiet_storage_faults_in_threads() -> None:
    """A full disk in a writer thread (TensorBoard's event writer) is not printed as a
    traceback: the run's own thread meets the same fault and ends the study in one line."""
    import threading

    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if storage_fault(args.exc_value) is None:
            default(args)

    threading.excepthook = hook


def _ray_call(kind: str, job: Any, source: bundles.Bundle | None = None) -> dict[str, Any]:
    """A Ray task: run ``job`` in a folder of its own on this node (the driver's paths need not
    exist here) and return ``{"info": run.json content, "files": the run folder's bundle}``.

    A target's source arrives as ``source`` (its bundle) and is unpacked once per node into
    :data:`NODE_SOURCES`. What the run records names the driver's folders, not this node's: the
    reports name the driver's source folder, and an error message's node paths are replaced by
    the driver's.
    """
    import torch

    torch.set_num_threads(1)
    _quiet_storage_faults_in_threads()
    work = _task_folder()
    try:
        renames: dict[str, str] = {}
        if kind == "source":
            here = replace(job, dir=work / job.key)
        else:
            local_source = None
            if job.source is not None:
                assert source is not None
                folder = _node_sources() / job.source.key
                bundles.unpack_once(source, folder)
                local_source = replace(job.source, dir=folder, home=job.source.recorded_dir)
                renames[str(folder)] = str(job.source.recorded_dir)
            here = replace(job, dir=work / "run", source=local_source)
        renames[str(here.dir)] = str(job.dir)
        info = _call(kind, here)
        if info.get("status") != "done":
            info = _as_on_the_driver(kind, here, info, renames)
        files = bundles.pack(here.dir) if here.dir.is_dir() else {}
        return {"info": info, "files": files}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _as_on_the_driver(
    kind: str, job: Any, info: dict[str, Any], renames: dict[str, str]
) -> dict[str, Any]:
    """A failed run's record with this node's paths replaced by the driver's (its run.json in
    ``job.dir`` rewritten too, for a target)."""

    def fix(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for here, there in renames.items():
            text = text.replace(here, there)
        return text

    info = {**info, "error": fix(info.get("error")), "traceback": fix(info.get("traceback"))}
    if kind == "target" and (job.dir / "run.json").is_file():
        record = TargetRecord.read(job.dir / "run.json")
        record.error, record.traceback = info["error"], info["traceback"]
        record.write(job.dir)
    return info


def _drain(q: Any, display: Display) -> None:
    while True:
        try:
            label, t, total = q.get_nowait()
        except (queue_mod.Empty, OSError, ValueError):
            return
        display.update(label, t, total)


def write_spec(spec: ExperimentSpec, root: Path) -> None:
    """Write experiment.yaml (the resolved spec, :class:`ExperimentRecord`) atomically."""
    ExperimentRecord(**spec.resolved()).write(root)


class FolderLock:
    """An exclusive lock on an experiment folder (``<out>/.lock``, fcntl.flock): released when the
    process ends, however it ends.

    Raises:
        FolderLockedError: another process holds it (its pid is named).
    """

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderLockedError(
                f"{self.path.parent} is being written by another rl-transfer process (pid "
                f"{other}); wait for it to finish or stop it, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


__all__ = [
    "FolderLock",
    "Plan",
    "execute_local",
    "connect_ray",
    "execute_ray",
    "missing_runs",
    "plan",
    "write_spec",
]
