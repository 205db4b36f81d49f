"""One run: pretrain a source agent, or train one target run (transfer or scratch) with evaluation.

Called in worker processes by :mod:`rl_transfer.runner`; everything a job needs travels in the job
(pairs registered in the parent process need not exist in the worker).
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure

from agents import get_adapter
from envs import EnvPair
from rl_transfer import normalization
from rl_transfer.budget import BudgetReached, BudgetStop, StepBudget
from rl_transfer.evaluation import (
    EvalLog,
    Evaluator,
    PeriodicEvalCallback,
    UpdateBoundaryCallback,
    record_eval,
    tb_writer,
)
from rl_transfer.io import SOURCE_CURVE_FILE, atomic_write, storage_fault, storage_faults
from rl_transfer.methods import TargetRun, TransferMethod, get_method
from rl_transfer.methods.replay import REPLAY_FILE
from rl_transfer.records import SourceRecord, TargetRecord, TransferReport, run_status
from rl_transfer.tensorboard import transfer_text
from rl_transfer.versions import package_versions

ProgressFn = Callable[[int], None]
CHECKPOINTS = "checkpoints"
"""A source's folder of policy weights saved during pretraining, ``policy_<t>_steps.pt`` at
t = 0 and at the first update boundary at or after each multiple of the evaluation interval."""


@dataclass(frozen=True)
class SourceJob:
    """Pretraining of one source agent (shared by every method of one (pair, algo, seed))."""

    key: str
    pair: EnvPair
    algo: str
    seed: int
    steps: int
    eval_episodes: int
    hyperparams: Mapping[str, Any]
    dir: Path
    imported: Path | None = None
    eval_every: int | None = None
    """Checkpoint interval (source steps); None saves no checkpoints."""
    home: Path | None = None
    """Where the experiment keeps this source (the driver's source cache), recorded in the
    targets' reports, when ``dir`` is a copy elsewhere (a Ray node's); None: ``dir``."""

    @property
    def label(self) -> str:
        return f"source {self.pair.name}/{self.algo}/seed_{self.seed}"

    @property
    def recorded_dir(self) -> Path:
        """The source's folder as the experiment knows it (:attr:`home`, else :attr:`dir`)."""
        return self.home if self.home is not None else self.dir


@dataclass(frozen=True)
class TargetJob:
    """One target run: (pair, algo, method, seed) trained on the target for ``target_steps``."""

    pair: EnvPair
    algo: str
    method: str
    seed: int
    target_steps: int
    eval_every: int
    eval_episodes: int
    hyperparams: Mapping[str, Any]
    dir: Path
    source: SourceJob | None = None
    knobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Knob values given per method name (``{"shaping": {"scale": 0.5}}``); defaults fill the
    rest."""
    hyperparams_origin: Mapping[str, str] = field(default_factory=dict)
    """Where each hyperparameter that is not the package's came from (key -> ``--hyperparams
    finetune.learning_rate``, ``hyperparameters file F``, ``source model M``)."""
    transfer: TransferMethod | None = None
    """The method object (resolved from ``method`` when not given). It travels with the job, so
    a method registered in the parent process runs in worker processes too."""
    scratch_key: str | None = None
    """Scratch runs: the run's key in the scratch cache (:func:`rl_transfer.spec.scratch_key`),
    recorded in its run.json; None for transfer runs."""

    def __post_init__(self) -> None:
        if self.transfer is None:
            object.__setattr__(self, "transfer", get_method(self.method))

    @property
    def label(self) -> str:
        return f"{self.pair.name}/{self.algo}/{self.method}/seed_{self.seed}"

    def identity(self) -> dict[str, Any]:
        """The fields that name the run in its run.json."""
        return {
            "kind": "target",
            "pair": self.pair.name,
            "algo": self.algo,
            "method": self.method,
            "seed": self.seed,
        }


class _ProgressCallback(BaseCallback):
    def __init__(self, report: ProgressFn | None, every: int = 500) -> None:
        super().__init__()
        self.report = report
        self.every = every
        self.next = every

    def _on_step(self) -> bool:
        if self.report is not None and self.num_timesteps >= self.next:
            self.report(self.num_timesteps)
            self.next = self.num_timesteps + self.every
        return True


class _SourceCheckpoints(UpdateBoundaryCallback):
    """Saves the policy's weights at t = 0 and at the first update boundary (the start of a
    rollout, after the previous update) at or after each multiple of ``every`` source steps."""

    def __init__(self, folder: Path, every: int) -> None:
        super().__init__(every, first=0)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def at_boundary(self, t: int) -> None:
        path = self.folder / f"policy_{t}_steps.pt"
        atomic_write(path, lambda p: torch.save(self.model.policy.state_dict(), p))
        normalization.save_statistics(self.model, self.folder / f"vecnormalize_{t}_steps.pkl")


def source_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(source step, path)`` of each checkpoint of the source in ``folder``, by step."""
    found = []
    for path in (folder / CHECKPOINTS).glob("policy_*_steps.pt"):
        found.append((int(path.name.split("_")[1]), path))
    return sorted(found)


def evaluate_source_segment(
    source: SourceJob, adapter: Any, evaluator: Evaluator, out: Path
) -> int:
    """Evaluate every checkpoint of ``source`` (and its final model, at its last step) on the
    target with ``evaluator``; write them to ``out`` (evaluations.npz layout, timesteps in source
    steps). This is the source's measured curve on the target, the segment that total-time
    accounting charges. Returns the number of points (0 and nothing written when the source has
    no checkpoints: an imported model). A source trained with ``VecNormalize`` is evaluated at
    each checkpoint with the statistics saved with it."""
    checkpoints = source_checkpoints(source.dir)
    if not checkpoints:
        return 0
    final_steps = SourceRecord.read(source.dir / "run.json").source_steps
    model = adapter.load(source.dir / "model.zip")
    inputs, _ = normalization.attach_saved(model, source.dir)
    final = evaluator.evaluate(model)  # before the checkpoints overwrite its weights
    log = EvalLog()
    for t, path in checkpoints:
        if t < final_steps:
            model.policy.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            if inputs is not None:
                stats = normalization.checkpoint_statistics(source.dir, t)
                inputs.set(normalization.load_statistics(stats))
            log.add(t, *evaluator.evaluate(model))
    log.add(final_steps, *final)
    log.save(out)
    return len(log.timesteps)


def _is_done(folder: Path) -> bool:
    return run_status(folder) == "done"


def _fresh_dir(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _remove_orphans(folder: Path) -> None:
    """Delete temporary folders of ``folder`` left by processes that no longer run (a source
    pretraining that was killed)."""
    for tmp in folder.parent.glob(f".{folder.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Train on one torch thread (runs share the cores), restoring the caller's setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _building_dir(job: SourceJob) -> Path:
    """The temporary folder this process builds ``job``'s source in (renamed when complete)."""
    return job.dir.parent / f".{job.dir.name}.tmp-{os.getpid()}"


def train_source(job: SourceJob, report: ProgressFn | None = None) -> dict[str, Any]:
    """Pretrain the source agent into ``job.dir`` (unless a finished one is already there).

    The folder is built under a temporary name and renamed when complete, so the cache never
    holds a half-written source. Returns its ``run.json`` content; a pretraining that raises
    returns ``{"kind": "source", "status": "failed", "error"}`` (its temporary folder removed)
    and the targets that need it are recorded as failed with that error.

    Raises:
        StorageError: the source cache's filesystem is full or read-only (the experiment stops:
            no other run could write either).
    """
    if _is_done(job.dir):
        info = SourceRecord.read(job.dir / "run.json").to_dict()
        info["reused"] = True
        return info
    try:
        with one_torch_thread():
            return _train_source(job, report)
    except Exception as exc:  # the experiment goes on with the runs that do not need it
        shutil.rmtree(_building_dir(job), ignore_errors=True)
        fault = storage_fault(exc, job.dir.parent)
        if fault is not None:
            raise fault from None
        return {"kind": "source", "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def _train_source(job: SourceJob, report: ProgressFn | None) -> dict[str, Any]:
    started = time.time()
    _remove_orphans(job.dir)
    tmp = _building_dir(job)
    _fresh_dir(tmp)
    adapter = get_adapter(job.algo)
    replaced: list[str] | None = None
    hyperparams = dict(job.hyperparams)
    if job.imported is not None:
        model = adapter.load(job.imported)
        replaced = adapter.replaced_objects(job.imported) or None
        hyperparams = adapter.saved_hyperparams(model, replaced or [])
        model.set_logger(configure(str(tmp), ["tensorboard"]))
    else:
        model = adapter.make_model(job.pair.make_source, job.hyperparams, job.seed)
        model.set_logger(configure(str(tmp), ["tensorboard"]))
        callbacks: list[BaseCallback] = [_ProgressCallback(report)]
        if job.eval_every:
            callbacks.append(_SourceCheckpoints(tmp / CHECKPOINTS, job.eval_every))
        model.learn(total_timesteps=job.steps, callback=CallbackList(callbacks))
    statistics = normalization.source_record(model, tmp, job.imported)
    if job.imported is not None:
        normalization.attach_saved(model, tmp)
    act = normalization.normalizing_act(adapter.act)
    evaluator = Evaluator(job.pair.make_source, job.eval_episodes, act=act)
    log = EvalLog()
    mean = record_eval(model, log, evaluator, model.num_timesteps)
    evaluator.close()
    log.save(tmp / "evaluations.npz")
    atomic_write(tmp / "model.zip", lambda p: model.save(str(p)))
    if adapter.off_policy and job.imported is None:
        adapter.save_replay(model, tmp / REPLAY_FILE)
    model.logger.close()
    record = SourceRecord(
        key=job.key,
        pair=job.pair.name,
        source=job.pair.to_dict()["source"],
        algo=job.algo,
        seed=job.seed,
        source_steps=int(model.num_timesteps),
        requested_steps=job.steps,
        checkpoint_every=job.eval_every if job.imported is None else None,
        imported_from=str(job.imported) if job.imported else None,
        replaced_objects=replaced,
        final_eval_mean_return_on_source=mean,
        hyperparams=hyperparams,
        normalization=statistics,
        versions=package_versions(),
        wall_time_s=round(time.time() - started, 2),
    )
    record.write(tmp)
    info = record.to_dict()
    job.dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, job.dir)
    except OSError:  # another process finished the same source first: keep theirs
        if not _is_done(job.dir):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return {**info, "reused": False}


def train_target(
    job: TargetJob,
    report: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train one target run into ``job.dir``; return its ``run.json`` content.

    Steps: build the target model (seed ``job.seed``), apply the transfer method, evaluate at
    t = 0, learn ``target_steps`` (rounded up to whole rollouts, the same for every arm:
    :class:`rl_transfer.budget.StepBudget`) with an evaluation at the first update boundary at or
    after each multiple of ``eval_every`` and one after the final update, then write
    evaluations.npz, transfer_report.json, model.zip (and vecnormalize.pkl under
    ``VecNormalize``: :mod:`rl_transfer.normalization`) and -- last -- run.json with
    ``status: "done"``. A failure writes run.json with ``status: "failed"``.

    Raises:
        StorageError: the run folder's filesystem is full or read-only. The folder is removed
            (nothing half-written stays) and the experiment stops: no other run could write.
    """
    started = time.time()
    try:
        _fresh_dir(job.dir)
        with one_torch_thread():
            return _train_target(job, report, started)
    except Exception as exc:  # recorded, and the experiment goes on with the other runs
        fault = storage_fault(exc, job.dir)
        if fault is not None:
            shutil.rmtree(job.dir, ignore_errors=True)
            raise fault from None
        return record_failure(job, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def record_failure(job: TargetJob, error: str, trace: str | None = None) -> dict[str, Any]:
    """Write ``run.json`` with ``status: "failed"`` and the error for ``job``; return it.

    Raises:
        StorageError: the run folder's filesystem is full or read-only.
    """
    record = TargetRecord(**job.identity(), status="failed", error=error, traceback=trace)
    with storage_faults(job.dir):
        job.dir.mkdir(parents=True, exist_ok=True)
        record.write(job.dir)
    return record.to_dict()


def _train_target(job: TargetJob, report: ProgressFn | None, started: float) -> dict[str, Any]:
    assert job.transfer is not None
    method = job.transfer.fresh()
    adapter = get_adapter(job.algo)
    knobs = method.settings_from(job.knobs)
    overrides = method.hyperparam_overrides(adapter, job.hyperparams)
    run = TargetRun(job.pair, job.algo, job.seed, job.hyperparams, adapter, knobs)
    transfer = TransferReport(
        method=method.name,
        doc=method.doc,
        parts=list(method.parts),
        frozen_parts=list(method.freeze),
        knobs=knobs,
        hyperparameter_overrides=overrides,
    )
    source_steps = 0
    source_stats = None
    if job.source is not None:
        source_steps = SourceRecord.read(job.source.dir / "run.json").source_steps
        run.source = adapter.load(job.source.dir / "model.zip")
        run.source_dir = job.source.dir
        run.source_inputs, source_stats = normalization.attach_saved(run.source, job.source.dir)
        normalization.check_run(
            method, knobs, job.hyperparams, source_stats, job.source.recorded_dir
        )
        transfer.source = {
            "key": job.source.key,
            "dir": str(job.source.recorded_dir),
            "steps": source_steps,
        }

    # 1. the target model, on training envs the method may wrap (around each Monitor)
    model = adapter.make_model(
        job.pair.make_target, job.hyperparams, job.seed, overrides, method.env_wrapper(run)
    )
    model.set_logger(configure(str(job.dir), ["tensorboard"]))
    budget = StepBudget(job.target_steps, adapter.rollout_steps(model), int(model.n_envs))
    run.model, run.budget = model, budget
    source_dir = None if job.source is None else job.source.recorded_dir
    transfer.normalization = normalization.start_statistics(
        model, knobs.get(normalization.KNOB), source_stats, source_dir
    )

    # 2. the transfer: what moves before learning, and the method's callbacks
    entries, method_callbacks = method.before_learning(run)
    transfer.add(entries)
    writer = tb_writer(model)
    if writer is not None:
        writer.add_text("transfer/report", transfer_text(transfer.to_dict()), 0)

    # 3. evaluation at t = 0, on the source's measured segment, and learning to the budget
    act = normalization.normalizing_act(adapter.act)
    evaluator = Evaluator(job.pair.make_target, job.eval_episodes, act=act)
    if job.source is not None:
        transfer.source_segment = (
            "measured: the source's checkpoints evaluated on this target"
            if evaluate_source_segment(job.source, adapter, evaluator, job.dir / SOURCE_CURVE_FILE)
            else "none (imported source): total-time accounting assumes R_min"
        )
    log = EvalLog()
    record_eval(model, log, evaluator, 0)
    callbacks = [
        *method_callbacks,  # first: a method's steps (jsrl's guide) count before others read t
        BudgetStop(budget),
        PeriodicEvalCallback(evaluator, log, job.eval_every),
        _ProgressCallback(report),
    ]
    try:
        model.learn(
            total_timesteps=budget.steps,
            callback=CallbackList(callbacks),
            reset_num_timesteps=True,
        )
    except BudgetReached:  # at an update boundary: the last update is done
        pass
    steps = int(model.num_timesteps)

    # 4. the method's teardown (hooks removed: the saved model is plain SB3) and its report
    transfer.add(method.after_learning(run, steps))
    run.source = None
    if log.timesteps[-1] != steps:
        record_eval(model, log, evaluator, steps)
    eval_seconds = evaluator.seconds
    evaluator.close()

    # 5. the results, run.json last
    normalization.finish_statistics(model, transfer.normalization)
    log.save(job.dir / "evaluations.npz")
    transfer.write(job.dir)
    atomic_write(job.dir / "model.zip", lambda p: model.save(str(p)))
    normalization.save_statistics(model, job.dir / normalization.STATISTICS_FILE)
    model.logger.close()
    record = TargetRecord(
        **job.identity(),
        status="done",
        source_steps=source_steps,
        target_steps=steps,
        requested_target_steps=job.target_steps,
        rollout_steps=budget.rollout,
        steps_note=budget.describe(steps),
        eval_every=job.eval_every,
        eval_episodes=job.eval_episodes,
        source_key=job.source.key if job.source else None,
        scratch_key=job.scratch_key,
        hyperparams=dict(job.hyperparams),
        hyperparams_origin=dict(job.hyperparams_origin) or None,
        hyperparameter_overrides=overrides,
        knobs=knobs,
        normalization=normalization.summary(transfer.normalization),
        versions=package_versions(),
        wall_time_s=round(time.time() - started, 2),
        eval_time_s=round(eval_seconds, 2),
        n_evaluations=len(log.timesteps),
    )
    record.write(job.dir)
    return record.to_dict()
