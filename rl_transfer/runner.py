"""The local runner: expand a spec into source and target jobs and run them in worker processes.

Sources run first (one per (pair, algo, seed), cached by content hash in the shared source cache
and reused by every method); each target run is scheduled as soon as its source is ready; scratch
runs need no source. Every worker process uses one torch thread.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import get_adapter
from rl_transfer.io import write_text
from rl_transfer.methods import get_method
from rl_transfer.spec import ExperimentSpec, default_workers, source_key
from rl_transfer.train import SourceJob, TargetJob, train_source, train_target


@dataclass
class Plan:
    sources: list[SourceJob]
    targets: list[TargetJob]


def plan(spec: ExperimentSpec, root: Path) -> Plan:
    """Expand ``spec`` into jobs: pairs x methods (scratch included) x seeds."""
    adapter = get_adapter(spec.algo)
    sources: dict[str, SourceJob] = {}
    targets = []
    for pair in spec.pair_objects():
        budget = spec.budget(pair)
        hp = adapter.hyperparams(pair.target.family)
        for seed in range(spec.seeds):
            src = None
            if any(get_method(m).needs_source for m in spec.all_methods()):
                key = source_key(
                    pair, spec.algo, hp, seed, budget["source_steps"], spec.eval_episodes
                )
                src = sources.setdefault(
                    key,
                    SourceJob(
                        key=key,
                        pair=pair,
                        algo=spec.algo,
                        seed=seed,
                        steps=budget["source_steps"],
                        eval_episodes=spec.eval_episodes,
                        hyperparams=hp,
                        dir=Path(spec.source_cache).resolve() / key,
                    ),
                )
            for method in spec.all_methods():
                targets.append(
                    TargetJob(
                        pair=pair,
                        algo=spec.algo,
                        method=method,
                        seed=seed,
                        target_steps=budget["target_steps"],
                        eval_every=budget["eval_every"],
                        eval_episodes=spec.eval_episodes,
                        hyperparams=hp,
                        dir=root / pair.name / spec.algo / method / f"seed_{seed}",
                        source=src if get_method(method).needs_source else None,
                    )
                )
    return Plan(list(sources.values()), targets)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_source(job: SourceJob, q: Any) -> dict[str, Any]:
    return train_source(job, lambda t: q.put((job.label, t, job.steps)))


def _run_target(job: TargetJob, q: Any) -> dict[str, Any]:
    return train_target(job, lambda t: q.put((job.label, t, job.target_steps)))


class _Display:
    """Progress on stderr with rich: the grid (runs done of total, elapsed, ETA) and one line
    per running job (env steps done of its budget)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.quiet = quiet
        if quiet:
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
            console=Console(stderr=True),
        )
        self.grid = self.progress.add_task("runs (sources + targets)", total=total)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def start(self, label: str, total: int) -> None:
        if not self.quiet and label not in self.tasks:
            self.tasks[label] = self.progress.add_task(f"  {label}", total=total)

    def update(self, label: str, t: int, total: int) -> None:
        if self.quiet:
            return
        self.start(label, total)
        self.progress.update(self.tasks[label], completed=t)

    def finish(self, label: str) -> None:
        if self.quiet:
            return
        task = self.tasks.pop(label, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.grid)

    def close(self) -> None:
        if not self.quiet:
            self.progress.stop()


def execute(p: Plan, workers: int | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Run every job of ``p``; return the target runs' run.json contents (failed ones included).

    Source failures mark their dependent target runs as failed; other runs go on.
    """
    workers = workers or default_workers()
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    q = manager.Queue()
    display = _Display(len(p.sources) + len(p.targets), quiet)
    results: list[dict[str, Any]] = []
    waiting: dict[str, list[TargetJob]] = {}
    for job in p.targets:
        if job.source is not None:
            waiting.setdefault(job.source.key, []).append(job)
    try:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init
        ) as pool:
            running: dict[Future, tuple[str, Any]] = {}
            for src in p.sources:
                running[pool.submit(_run_source, src, q)] = ("source", src)
            for job in p.targets:
                if job.source is None:
                    running[pool.submit(_run_target, job, q)] = ("target", job)
            while running:
                done, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(q, display)
                for fut in done:
                    kind, job = running.pop(fut)
                    display.finish(job.label)
                    try:
                        info = fut.result()
                    except Exception as exc:  # the worker process itself died
                        info = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    if kind == "source":
                        for dep in waiting.pop(job.key, []):
                            if info.get("status") == "done":
                                running[pool.submit(_run_target, dep, q)] = ("target", dep)
                            else:
                                results.append(
                                    _mark_failed(dep, f"source failed: {info.get('error')}")
                                )
                                display.finish(dep.label)
                    else:
                        results.append(info if "pair" in info else _mark_failed(job, info["error"]))
    finally:
        display.close()
        manager.shutdown()
    return results


def _drain(q: Any, display: _Display) -> None:
    while True:
        try:
            label, t, total = q.get_nowait()
        except queue_mod.Empty:
            return
        display.update(label, t, total)


def _mark_failed(job: TargetJob, error: str) -> dict[str, Any]:
    from rl_transfer.io import write_json

    info = {
        "kind": "target",
        "pair": job.pair.name,
        "algo": job.algo,
        "method": job.method,
        "seed": job.seed,
        "status": "failed",
        "error": error,
    }
    job.dir.mkdir(parents=True, exist_ok=True)
    write_json(job.dir / "run.json", info)
    return info


def write_spec(spec: ExperimentSpec, root: Path) -> None:
    import yaml

    write_text(root / "experiment.yaml", yaml.safe_dump(spec.resolved(), sort_keys=False))


__all__ = ["Plan", "execute", "plan", "write_spec"]
