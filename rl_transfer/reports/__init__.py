"""Reports of an experiment, rebuilt from what is on disk.

:func:`write_reports` is the one entry point: it reads the experiment folder once and writes
summary.json, metrics.csv, report.md, the PNG charts and the TensorBoard views. The pieces:

- :mod:`rl_transfer.reports.summary`: loading the runs, summary.json's content (with the
  study's family of verdicts), metrics.csv and report.md (nothing written);
- :mod:`rl_transfer.reports.plots`: the PNG charts (matplotlib's object-oriented API only);
- :mod:`rl_transfer.reports.tensorboard`: the TensorBoard views, under ``<exp>/report_views``;
- :mod:`rl_transfer.reports.console`: number and cell formatting, the terminal tables.

A report changes nothing of its caller's global state: no matplotlib backend or rcParams, no
logging configuration, no warning filters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rl_transfer.io import write_text
from rl_transfer.records import Summary
from rl_transfer.reports.console import (
    compare_table,
    decision_line,
    fmt_cell,
    fmt_number,
    fmt_p,
    print_tables,
    results_table,
    table_rows,
)
from rl_transfer.reports.plots import (
    Band,
    arm_bands,
    curves_figure,
    plot_curves,
    plot_forward_transfer,
    plot_performance_profile,
    run_scores,
)
from rl_transfer.reports.summary import (
    ALPHA,
    TRANSFER_RATIO_FORM,
    VERDICT_RULE,
    Loaded,
    RunData,
    family_verdicts,
    hypothesis_id,
    load_experiment,
    metrics_csv,
    plain_line,
    report_md,
    summarize,
)
from rl_transfer.reports.tensorboard import REPORT_EVENTS, VIEWS_DIR, write_tensorboard_views

__all__ = [
    "ALPHA",
    "Band",
    "REPORT_EVENTS",
    "TRANSFER_RATIO_FORM",
    "VERDICT_RULE",
    "VIEWS_DIR",
    "Loaded",
    "RunData",
    "arm_bands",
    "compare_table",
    "curves_figure",
    "decision_line",
    "family_verdicts",
    "fmt_cell",
    "fmt_number",
    "fmt_p",
    "hypothesis_id",
    "load_experiment",
    "metrics_csv",
    "plain_line",
    "plot_curves",
    "plot_forward_transfer",
    "plot_performance_profile",
    "print_tables",
    "report_md",
    "results_table",
    "run_scores",
    "summarize",
    "table_rows",
    "write_reports",
    "write_tensorboard_views",
]


def write_reports(root: Path) -> dict[str, Any]:
    """Compute and write the reports of the experiment at ``root``: summary.json, metrics.csv,
    report.md, the PNG charts (``curves_<pair>_<algo>.png``, ``forward_transfer.png``, and
    ``performance_profile.png`` with several pairs) and the TensorBoard views
    (``report_views/``); return the summary (summary.json's content).

    Nothing is written into the run folders, and the caller's global state (matplotlib
    backend and rcParams, logging, warning filters) is left as it was.

    Raises:
        SpecError: ``root`` is not an experiment folder (no experiment.yaml).
    """
    root = Path(root)
    loaded = load_experiment(root)  # read once, used by every writer below
    spec = loaded[0]
    summary = summarize(root, loaded)
    Summary(**summary).write(root)
    write_text(root / "metrics.csv", metrics_csv(summary))
    bands = arm_bands(loaded[1])  # every arm's IQM curve: the PNG and TensorBoard draw these
    plot_curves(root, summary, loaded, bands)
    plot_forward_transfer(root, summary)
    plot_performance_profile(root, summary, loaded)
    write_text(root / "report.md", report_md(summary, spec))
    write_tensorboard_views(root, summary, loaded, bands)
    return summary
