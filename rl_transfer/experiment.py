"""The public experiment API: ``Experiment(...).run()``."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_transfer.report import print_tables, write_reports
from rl_transfer.runner import FolderLock, Plan, execute_local, execute_ray, plan, write_spec
from rl_transfer.spec import spec_from


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
        **kwargs: fields of :class:`rl_transfer.spec.ExperimentSpec` (``algo="dqn"`` is short for
            ``algos=["dqn"]``), for example
            ``Experiment(pairs=["cartpole-long-pole"], algo="ppo", methods=["policy"], seeds=3)``.

    Running it again with the same spec and folder resumes: finished runs are reused, unfinished
    ones start again from t = 0.

    Raises:
        SpecError, UnknownPairError, UnknownAlgoError: bad input, before anything is written.
    """

    def __init__(self, study: str | Path | None = None, quiet: bool = False, **kwargs: Any):
        self.spec = spec_from(Path(study) if study is not None else None, **kwargs)
        self.spec.validate()
        self.quiet = quiet

    def run(self, on_start: Callable[[Plan], None] | None = None) -> ExperimentResult:
        """Train every source and target run not yet done, then write the reports.

        ``on_start(plan)`` is called once the folder is locked and the jobs are planned.

        Raises:
            SpecError: another process is writing the folder.
        """
        started = time.time()
        root = self.spec.output_dir()
        with FolderLock(root):
            self.spec.check_resumable()
            write_spec(self.spec, root)
            jobs = plan(self.spec, root)
            if on_start is not None:
                on_start(jobs)
            if self.spec.backend == "ray":
                runs = execute_ray(jobs, self.spec.workers, self.quiet, self.spec.ray_address)
            else:
                runs = execute_local(jobs, self.spec.workers, self.quiet)
            summary = write_reports(root)
        return ExperimentResult(
            root, summary, jobs.reused + runs, len(jobs.reused), round(time.time() - started, 1)
        )
