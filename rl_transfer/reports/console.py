"""Numbers, cells and lines as the report writes them, and the terminal tables.

The cells and lines here (:func:`fmt_cell`, :func:`table_rows`, :func:`decision_line`) are the
same in report.md and in the terminal; :func:`print_tables` and :func:`compare_table` lay them
out with rich so that a table fits the console's width without splitting a number or an
interval across lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rl_transfer.comparison import UNCHANGED_BY_ACCOUNTING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

TABLE_METRICS = (
    ("jumpstart", "jumpstart"),
    ("asymptotic_gain", "asymptotic gain"),
    ("auc_gain", "AUC gain"),
    ("transfer_ratio", "transfer ratio (area)"),
    ("time_to_threshold_transfer", "time to threshold, transfer"),
    ("time_to_threshold_scratch", "time to threshold, scratch"),
    ("time_to_threshold_gain", "time-to-threshold gain"),
    ("time_to_threshold_speedup", "speed-up"),
    ("forward_transfer", "forward transfer (normalized)"),
)
"""(summary key, label) of the metrics shown per method, in table order."""

LOWER_BOUND_NOTE = "lower bound"
"""How summary.json's per-seed ``notes`` start for a right-censored value (scratch never reached
the threshold, so a speed-up is computed from t_max and is a lower bound)."""
LOWER_BOUND_MARK = ">="
"""Put before a cell whose seeds include a lower bound (a right-censored speed-up)."""

_HEADER = "metric (IQM [95% CI])"
_BORDERS = 10  # three columns: 4 rules and 1 space of padding either side of each cell


def fmt_number(x: float | None) -> str:
    """A number as people write it: 4 significant digits, thousands as k and millions as M
    (28.8k steps, not 2.88e+04); ``n/a`` for None."""
    if x is None:
        return "n/a"
    for scale, unit in ((1e6, "M"), (1e4, "k")):
        if abs(x) >= scale:
            return f"{x / (1e3 if unit == 'k' else 1e6):.3g}{unit}"
    return f"{x:.4g}"


def fmt_p(p: float | None) -> str:
    """A p-value with 2 significant digits (``< 0.0001`` below that; ``n/a`` for None)."""
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def cell_parts(entry: dict[str, Any], n: int) -> list[str]:
    """The pieces of :func:`fmt_cell`: ``[IQM, "[lo, hi]", "(k/n seeds)"]`` (the interval and
    the seed count only when there is one); ``["n/a"]`` when undefined.

    Args:
        entry: one metric of a summary.json result (``iqm``, ``ci``, ``n_defined``).
        n: seeds compared.
    """
    if entry["iqm"] is None:
        return ["n/a"]
    parts = [fmt_number(entry["iqm"])]
    if entry["ci"] is not None:
        parts.append(f"[{fmt_number(entry['ci'][0])}, {fmt_number(entry['ci'][1])}]")
    if entry["n_defined"] < n:
        parts.append(f"({entry['n_defined']}/{n} seeds)")
    return parts


def fmt_cell(entry: dict[str, Any], n: int) -> str:
    """``IQM [lo, hi]`` as shown in report.md and the terminal (``n/a`` when undefined), with
    ``(k/n seeds)`` when only k of the n seeds define the metric."""
    return " ".join(cell_parts(entry, n))


def lower_bound_seeds(entry: dict[str, Any]) -> list[str]:
    """Seeds (as summary.json writes them, strings) whose value of this metric is a lower bound
    (right-censored: its note starts with ``lower bound``)."""
    notes = entry.get("notes") or {}
    return sorted(s for s, note in notes.items() if note.startswith(LOWER_BOUND_NOTE))


def metric_cell_parts(entry: dict[str, Any], n: int) -> list[str]:
    """:func:`cell_parts` with ``>=`` before the IQM when some seed's value is a lower bound (the
    IQM and the interval's ends cannot fall when a censored value rises, so they are lower
    bounds too)."""
    parts = cell_parts(entry, n)
    if entry["iqm"] is not None and lower_bound_seeds(entry):
        parts[0] = f"{LOWER_BOUND_MARK} {parts[0]}"
    return parts


def metric_cell(entry: dict[str, Any], n: int) -> str:
    """One table cell: :func:`fmt_cell`, marked ``>=`` when censored (:func:`metric_cell_parts`)."""
    return " ".join(metric_cell_parts(entry, n))


def _tt_key(key: str) -> str:
    return key if key in UNCHANGED_BY_ACCOUNTING else key + "_total_time"


def table_rows(entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, target-only cell, total-time cell) for one summary.json result, one row per
    :data:`TABLE_METRICS`; a censored cell is marked (:func:`metric_cell`)."""
    return _rows(entry, " ".join)


def _rows(entry: dict[str, Any], join: Callable[[list[str]], str]) -> list[tuple[str, str, str]]:
    """:func:`table_rows` with each cell's parts joined by ``join``."""
    n = len(entry["seeds"])
    m = entry["metrics"]
    return [
        (
            label,
            join(metric_cell_parts(m[key], n)),
            join(metric_cell_parts(m[_tt_key(key)], n)),
        )
        for key, label in TABLE_METRICS
    ]


def censored_footnote(entry: dict[str, Any]) -> str | None:
    """What ``>=`` means in this result's table: in how many of its seeds scratch never reached
    the threshold (the speed-up is then computed from the budget t_max); None when no value
    of the table is a lower bound."""
    n = len(entry["seeds"])
    seeds = set()
    for key, _ in TABLE_METRICS:
        for k in (key, _tt_key(key)):
            seeds.update(lower_bound_seeds(entry["metrics"][k]))
    if not seeds:
        return None
    return (
        f"cells marked {LOWER_BOUND_MARK} are lower bounds: scratch did not reach the threshold "
        f"within its budget in {len(seeds)} of {n} seeds (censored at t_max), so their speed-up is "
        "computed as if it had reached it at t_max; the true value is at least the one shown"
    )


def decision_line(entry: dict[str, Any]) -> str:
    """How the verdict was reached: the test's p-value (and Holm-adjusted), the sign-flip check,
    and, when undecided, how many seeds would decide it (estimated from the seeds run)."""
    parts = [f"paired t-test p = {fmt_p(entry['p_value'])}"]
    if entry.get("sequential"):
        seq = entry["sequential"]
        if seq["status"] == "open":
            parts.append(
                f"sequential: not decided yet at {seq['n']} seeds (the adaptive experiment "
                "stopped early; run the same command again to go on)"
            )
        else:
            parts.append(
                f"sequential: {seq['status']} at look {seq['look']} ({seq['n']} seeds, level "
                f"{fmt_p(seq['level'])})"
            )
    elif entry.get("p_value_adjusted") is not None:
        parts.append(f"Holm-adjusted p = {fmt_p(entry['p_value_adjusted'])}")
    if entry.get("p_value_sign_flip") is not None:
        parts.append(f"sign-flip p = {fmt_p(entry['p_value_sign_flip'])}")
    if entry["verdict"] == "inconclusive":
        need = entry.get("seeds_needed")
        n = len(entry["seeds"])
        if need:
            parts.append(
                f"about {need} seeds would decide it (a fixed-seed t-test with 80% power at the "
                f"observed effect, at this family's level; a rough estimate from {n} "
                f"seed{'s' if n != 1 else ''}); to go on, run a new experiment "
                f"(another --name or --out; sources are cached) with --seeds {need} or "
                "--seeds auto and a larger --max-seeds"
            )
        elif entry.get("sequential", {}).get("status") != "failed":
            parts.append(
                "the observed effect is too small for any affordable number of seeds to decide"
            )
    return "; ".join(parts)


def seed_ranges(seeds: list[int]) -> str:
    """Seeds with runs of 3 or more consecutive numbers shortened: ``[0, 1, 2, 3, 5, 7, 8]`` ->
    ``0-3, 5, 7, 8``."""
    runs: list[list[int]] = []
    for s in sorted(seeds):
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def _pack(parts: list[str], width: int) -> str:
    """``parts`` joined by spaces, starting a new line where the next part would pass ``width``
    (a part is never split, so an interval stays on one line)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def results_table(entry: dict[str, Any], width: int = 80) -> Table:
    """One summary.json result as a rich table that fits ``width`` columns: metric, target-only
    and total-time cells (IQM [95% interval]); a cell too wide for its column is broken between
    the IQM, the interval and the seed count, never inside them.

    Args:
        entry: one result of summary.json.
        width: the console's width in characters (80 or more keeps every interval whole).
    """
    from rich.table import Table

    n = len(entry["seeds"])
    seeds = f"{n} seed{'s' if n != 1 else ''}: {seed_ranges(entry['seeds'])}"
    caption = (
        f"verdict: {entry['verdict']}  |  total-time verdict: {entry['verdict_total_time']}"
        f"  |  P(transfer > scratch) = {fmt_number(entry['probability_of_improvement'])}\n"
        f"{decision_line(entry)}"
    )
    note = censored_footnote(entry)
    if note:
        caption += f"\n{note}"
    t = Table(
        title=f"{entry['pair']} / {entry['algo']} / {entry['method']} vs scratch  ({seeds})",
        caption=caption,
    )
    cell_width = max(1, (width - _BORDERS - len(_HEADER)) // 2)
    t.add_column(_HEADER, min_width=len(_HEADER), overflow="fold")
    t.add_column("target-only", justify="right", no_wrap=True)
    t.add_column("total-time", justify="right", no_wrap=True)
    for row in _rows(entry, lambda parts: _pack(parts, cell_width)):
        t.add_row(*row)
    return t


def compare_table(summaries: dict[str, dict[str, Any]], width: int = 80) -> Table:
    """A rich table comparing experiment folders: per (pair, algo, method), forward transfer
    (IQM [95% interval]) and verdict in each folder (``-`` where a folder lacks it). A cell too
    wide for its column is broken between the IQM, the interval and the verdict, never inside
    them.

    Args:
        summaries: folder name -> its summary.json content.
        width: the console's width in characters.
    """
    from rich.table import Table

    t = Table(title="forward transfer (IQM [95% CI]) and verdict, per experiment folder")
    label = "pair / algo / method"
    t.add_column(label, min_width=len(label), overflow="fold")
    for name in summaries:
        t.add_column(name, no_wrap=True)
    k = max(1, len(summaries))
    cell_width = max(1, (width - (3 * (k + 1) + 1) - len(label)) // k)
    keys = sorted(
        {(r["pair"], r["algo"], r["method"]) for s in summaries.values() for r in s["results"]}
    )
    for key in keys:
        cells = []
        for s in summaries.values():
            match = [r for r in s["results"] if (r["pair"], r["algo"], r["method"]) == key]
            if not match:
                cells.append("-")
                continue
            r = match[0]
            parts = cell_parts(r["metrics"]["forward_transfer"], len(r["seeds"]))
            parts[-1] += ":"
            cells.append(_pack([*parts, r["verdict"]], cell_width))
        t.add_row(" / ".join(key), *cells)
    return t


def print_tables(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print one table per (pair, algo, method) of a summary with rich (:func:`results_table`,
    at the console's width).

    Args:
        summary: summary.json's content.
        console: where to print (default: a new ``rich.console.Console()`` on stdout).
    """
    from rich.console import Console

    console = console or Console()
    fam = summary.get("family")
    if fam and fam["size"] > 1:
        console.print(f"verdicts: {fam['error']} over {fam['size']} comparisons ({fam['design']})")
    for e in summary["results"]:
        console.print(results_table(e, console.width))
