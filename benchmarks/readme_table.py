"""Print the README's result table from an experiment folder's summary.json.

    python benchmarks/readme_table.py runs/<experiment>

One row per method: jumpstart, time to threshold (scratch's in the header), speed-up, forward
transfer (IQM [95% interval]), the seeds that decided it, the p-value and the verdicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rl_transfer.reports import fmt_cell
from rl_transfer.reports.console import metric_cell


def table(summary: dict) -> str:
    results = summary["results"]
    most = max(results, key=lambda r: len(r["seeds"])) if results else None
    scratch = (
        fmt_cell(most["metrics"]["time_to_threshold_scratch"], len(most["seeds"]))
        if most
        else "n/a"
    )
    lines = [
        f"| method | seeds | jumpstart | time to threshold (scratch {scratch}) | speed-up "
        "| forward transfer | p | verdict | total-time verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m, n = r["metrics"], len(r["seeds"])
        p = r["p_value"]
        verdict = r["verdict"]
        seq = r.get("sequential")
        if seq:
            verdict += f" ({seq['status']} at {seq['n']} seeds)"
        if verdict.startswith(("positive", "negative")):
            verdict = f"**{verdict.split(' ')[0]}**" + verdict[len(verdict.split(" ")[0]) :]
        lines.append(
            f"| {r['method']} | {n} | {fmt_cell(m['jumpstart'], n)} "
            f"| {fmt_cell(m['time_to_threshold_transfer'], n)} "
            f"| {metric_cell(m['time_to_threshold_speedup'], n)} "
            f"| {fmt_cell(m['forward_transfer'], n)} | {'n/a' if p is None else f'{p:.2g}'} "
            f"| {verdict} | {r['verdict_total_time']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads((Path(sys.argv[1]) / "summary.json").read_text())))
