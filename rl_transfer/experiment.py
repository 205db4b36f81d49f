"""The public experiment API: ``Experiment(...).run()``."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rl_transfer.report import print_tables, write_reports
from rl_transfer.runner import execute, plan, write_spec
from rl_transfer.spec import ExperimentSpec


@dataclass
class ExperimentResult:
    """What an experiment produced.

    Attributes:
        out: the experiment folder.
        summary: summary.json's content.
        runs: run.json content of every target run (failed ones have ``status: "failed"``).
        wall_time_s: wall time of the whole experiment, in seconds.
    """

    out: Path
    summary: dict[str, Any]
    runs: list[dict[str, Any]]
    wall_time_s: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") != "done"]

    def table(self) -> str:
        """The per-method metric tables as plain text."""
        from rich.console import Console

        console = Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
        print_tables(self.summary, console)
        return console.export_text()


class Experiment:
    """A transfer experiment: for each pair, method and seed, a transfer run beside a scratch run.

    Accepts the fields of :class:`rl_transfer.spec.ExperimentSpec` as keyword arguments, for
    example ``Experiment(pairs=["cartpole-long-pole"], algo="ppo", methods=["policy"], seeds=3)``.

    Raises:
        SpecError, UnknownPairError, UnknownAlgoError: on bad input, before anything is written.
    """

    def __init__(self, quiet: bool = False, **kwargs: Any) -> None:
        known = {f.name for f in fields(ExperimentSpec)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            from rl_transfer.errors import SpecError

            raise SpecError(f"unknown Experiment argument(s) {unknown}; valid: {sorted(known)}")
        for key in ("out", "source_cache"):
            if kwargs.get(key) is not None:
                kwargs[key] = Path(kwargs[key])
        self.spec = ExperimentSpec(**kwargs)
        self.spec.validate()
        self.quiet = quiet

    def run(self) -> ExperimentResult:
        """Train every source and target run, then write the reports. Returns the result."""
        started = time.time()
        root = self.spec.output_dir()
        root.mkdir(parents=True, exist_ok=True)
        write_spec(self.spec, root)
        jobs = plan(self.spec, root)
        runs = execute(jobs, workers=self.spec.workers, quiet=self.quiet)
        summary = write_reports(root)
        return ExperimentResult(root, summary, runs, round(time.time() - started, 1))
