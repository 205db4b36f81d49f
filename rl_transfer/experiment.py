"""The public experiment API: ``Experiment(...).run()``."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_transfer.errors import ClusterLostError, MissingRunsError, RLTransferError
from rl_transfer.io import INVOCATIONS_FILE, SEQUENTIAL_FILE, storage_faults, write_json
from rl_transfer.reports import ALPHA, hypothesis_id, print_tables, summarize, write_reports
from rl_transfer.runner import (
    FolderLock,
    Plan,
    connect_ray,
    execute_local,
    execute_ray,
    missing_runs,
    plan,
    write_spec,
)
from rl_transfer.spec import (
    MIN_SEEDS,
    STUDY_EXPERIMENTS,
    ExperimentSpec,
    default_workers,
    spec_from,
)
from rl_transfer.stats import look_schedule, sequential_holm_look


@dataclass
class ExperimentResult:
    """What an experiment produced.

    Attributes:
        out: the experiment folder.
        summary: summary.json's content.
        runs: run.json content of every target run (failed ones have ``status: "failed"``).
        reused: how many target runs were already done in ``out`` and not run again.
        wall_time_s: wall time of this invocation, in seconds.
    """

    out: Path
    summary: dict[str, Any]
    runs: list[dict[str, Any]]
    reused: int
    wall_time_s: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") != "done"]

    def table(self) -> str:
        """The per-method metric tables as plain text."""
        from rich.console import Console

        console = Console(record=True, width=120, file=io.StringIO())
        print_tables(self.summary, console)
        return console.export_text()


class Experiment:
    """A transfer experiment: for each pair, algo, method and seed, a transfer run beside a
    scratch run on the same target.

    Args:
        study: optional study file (YAML); keyword arguments override its keys.
        quiet: no progress display.
        entry: which experiment of a study file that lists several under ``experiments``
            (from 0; :func:`rl_transfer.spec.study_size` counts them).
        **kwargs: fields of :class:`rl_transfer.spec.ExperimentSpec` (``algo="dqn"`` is short for
            ``algos=["dqn"]``; ``method_args=`` is the former name of ``knobs=``), for example
            ``Experiment(pairs=["cartpole-long-pole"], algo="ppo", methods=["shaping"], seeds=3,
            knobs={"shaping": {"scale": 0.5}})``.

    Running it again with the same spec and folder resumes: finished runs are reused, unfinished
    ones start again from t = 0.

    Raises:
        SpecError, UnknownPairError, UnknownAlgoError: bad input, before anything is written
            (all :class:`rl_transfer.errors.RLTransferError`); with ``entry``, the message
            starts with ``study file FILE: experiments[ENTRY]:``.
    """

    def __init__(
        self,
        study: str | Path | None = None,
        quiet: bool = False,
        entry: int | None = None,
        **kwargs: Any,
    ):
        try:
            self.spec = spec_from(Path(study) if study is not None else None, entry, **kwargs)
            self.spec.validate()
        except RLTransferError as exc:
            where = f"{STUDY_EXPERIMENTS}[{entry}]"
            if entry is None or where in str(exc):
                raise
            # a study file's experiments are checked together: say which one this is
            raise type(exc)(f"study file {study}: {where}: {exc}") from None
        self.quiet = quiet

    def run(self, on_start: Callable[[Plan], None] | None = None) -> ExperimentResult:
        """Train every source and target run not yet done, then write the reports.

        ``on_start(plan)`` is called once the folder is locked and the jobs are planned (with
        adaptive seeds, once per look).

        Raises:
            FolderLockedError: another process is writing the folder.
            BackendError: ``backend="ray"`` without Ray, or no cluster at ``ray_address``.
            StorageError: the experiment folder or a cache cannot be written (disk full,
                read-only); finished runs are kept and the same call resumes.
            MissingRunsError: runs were started and left no result (the reports are written
                first, from the runs that are there).
        """
        started = time.time()
        root = self.spec.output_dir()
        self._missing: list[str] = []
        ray = None
        if self.spec.backend == "ray":  # connected before anything is written
            ray, started_ray = connect_ray(self.spec.workers, self.spec.ray_address)
            ray = ray if started_ray else None
        try:
            with storage_faults(root), FolderLock(root):
                self.spec.check_resumable()
                write_spec(self.spec, root)
                outcome = "interrupted"
                try:
                    if self.spec.adaptive:
                        reused, runs = self._run_adaptive(root, on_start)
                    else:
                        jobs = plan(self.spec, root)
                        if on_start is not None:
                            on_start(jobs)
                        reused, runs = jobs.reused, self._execute(jobs)
                    outcome = _outcome(runs, self._missing)
                except Exception as exc:
                    outcome = f"stopped: {type(exc).__name__}"
                    raise
                finally:
                    _record_invocation(root, self.spec, started, outcome)
                summary = write_reports(root)
        except ClusterLostError:
            ray = None  # Ray's shutdown would wait for the dead cluster
            raise
        finally:
            if ray is not None:
                ray.shutdown()
        if self._missing:
            shown = ", ".join(self._missing[:5]) + (", ..." if len(self._missing) > 5 else "")
            raise MissingRunsError(
                f"{len(self._missing)} run(s) started and left no result in {root}: {shown}; "
                "the reports hold the runs that finished; run the same command again to run "
                "the missing ones"
            )
        return ExperimentResult(
            root, summary, reused + runs, len(reused), round(time.time() - started, 1)
        )

    def _execute(self, jobs: Plan) -> list[dict[str, Any]]:
        """Run ``jobs`` on the spec's backend; the run.json contents of the runs they ran and of
        the scratch runs the scratch cache gave. Notes the runs that left no result."""
        if self.spec.backend == "ray":
            ran = execute_ray(jobs, self.spec.workers, self.quiet, self.spec.ray_address)
        else:
            ran = execute_local(jobs, self.spec.workers, self.quiet)
        self._missing += missing_runs(jobs)
        return [*jobs.from_scratch_cache, *ran]

    def _run_adaptive(
        self, root: Path, on_start: Callable[[Plan], None] | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Seeds in rounds: at each look (3, 5, 8, ... up to max_seeds), every open comparison
        is tested at its group-sequential level for its share of alpha (alpha / m, more once
        others are rejected: sequential Holm; Lan-DeMets power-family spending) and stops when
        decided or futile; the next round runs more seeds for the open ones
        only. The looks and decisions go to sequential.json (written at every look, so a
        resumed experiment takes the same decisions from the same runs)."""
        spec = self.spec
        seeds = spec.seed_list()
        looks = look_schedule(MIN_SEEDS, spec.max_seeds)
        hypotheses = {"/".join(h): h for h in _hypotheses(spec)}  # id -> (pair, algo, method)
        open_ = set(hypotheses)
        decisions: dict[str, dict[str, Any]] = {}
        reused: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        record: dict[str, Any] = {
            "max_seeds": spec.max_seeds,
            "looks": looks,
            "alpha": ALPHA,
            "alpha_per_hypothesis": ALPHA / len(hypotheses),
            "procedure": "sequential Holm (Maurer & Bretz 2013): a rejection passes its share on",
            "taken": [],
            "decisions": decisions,
        }
        ran: set[tuple[str, str, str, int]] = set()
        for k, n in enumerate(looks):
            jobs = plan(spec, root, seeds=seeds[:n], only={hypotheses[h] for h in open_})
            # runs finished at an earlier look of this invocation are not "reused"
            jobs.reused = [i for i in jobs.reused if _run_id(i) not in ran]
            if on_start is not None:
                on_start(jobs)
            reused += jobs.reused
            new = self._execute(jobs)
            runs += new
            if self._missing:  # no look is taken on incomplete rounds
                break
            ran |= {_run_id(i) for i in new + jobs.reused}
            by_id = {hypothesis_id(r): r for r in summarize(root)["results"]}
            differences = {}
            for h in sorted(open_):
                entry = by_id.get(h, {"seeds": [], "metrics": {"normalized_area_gain": {}}})
                gains = entry["metrics"]["normalized_area_gain"].get("per_seed", [])
                differences[h] = [
                    v for s, v in zip(entry["seeds"], gains) if v is not None and s in seeds[:n]
                ]
            rejected = sum(d["verdict"] != "inconclusive" for d in decisions.values())
            looked = sequential_holm_look(
                differences, k, looks, spec.max_seeds, ALPHA, len(hypotheses), rejected
            )
            for h, look in looked.items():
                if look.status != "continue":
                    decisions[h] = {
                        "status": look.status,  # positive, negative, futile, undecided, failed
                        "verdict": look.status
                        if look.status in ("positive", "negative")
                        else "inconclusive",
                        "n": look.n,
                        "look": k + 1,
                        "p_value": look.p_value,
                        "level": look.level,
                        "seeds_needed": look.seeds_needed,
                    }
                    open_.discard(h)
            statuses = {h: looked[h].status for h in sorted(looked)}
            record["taken"].append(
                {
                    "look": k + 1,
                    "seeds": n,
                    "status": statuses,
                    "p_value": {h: looked[h].p_value for h in statuses},
                    "level": {h: looked[h].level for h in statuses},
                }
            )
            write_json(root / SEQUENTIAL_FILE, record)
            _print_look(k + 1, n, statuses)
            if not open_:
                break
        return reused, runs


def _record_invocation(root: Path, spec: ExperimentSpec, started: float, outcome: str) -> None:
    """Append this invocation to ``invocations.json`` (atomically): when it started, its wall
    time, how it ended, the machine, workers and backend; a study resumed across restarts adds
    one entry per invocation. A write that fails (full disk) is skipped: the runs matter more."""
    from rl_transfer.io import read_json
    from rl_transfer.versions import machine

    path = root / INVOCATIONS_FILE
    try:
        history = read_json(path) if path.is_file() else []
    except (OSError, ValueError):
        history = []
    if not isinstance(history, list):  # not this log (edited by hand): start it again
        history = []
    history.append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "wall_time_s": round(time.time() - started, 1),
            "outcome": outcome,
            "machine": machine(),
            "workers": spec.workers or default_workers(),
            "backend": spec.backend,
        }
    )
    try:
        write_json(path, history)
    except OSError:
        pass


def _outcome(runs: list[dict[str, Any]], missing: list[str]) -> str:
    """How an invocation that ran to its end went: ``finished``, or ``finished: N run(s)
    failed[, M left no result]`` when some of the target runs it ran did not finish."""
    failed = sum(r.get("status") != "done" for r in runs)
    problems = [f"{failed} run(s) failed"] if failed else []
    problems += [f"{len(missing)} left no result"] if missing else []
    return "finished" + (f": {', '.join(problems)}" if problems else "")


def _run_id(info: dict[str, Any]) -> tuple[str, str, str, int]:
    return (info.get("pair", ""), info.get("algo", ""), info.get("method", ""), info["seed"])


def _hypotheses(spec: ExperimentSpec) -> list[tuple[str, str, str]]:
    return [
        (p, a, m)
        for p in spec.pairs
        for a in spec.algos
        for m in spec.all_methods()
        if m != "scratch"
    ]


def _print_look(k: int, n: int, statuses: dict[str, str]) -> None:
    """One line per look on stderr (a decision, shown even with --quiet)."""
    import sys

    parts = ", ".join(f"{h}: {s}" for h, s in statuses.items())
    print(f"look {k} ({n} seeds): {parts}", file=sys.stderr)
