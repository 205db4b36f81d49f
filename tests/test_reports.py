"""The reports package: no global state changed, terminal tables that fit 80 columns, censored
speed-ups flagged, the seeds behind an estimate stated, the total-time segment drawn where it
is."""

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from rich.console import Console

from rl_transfer.metrics import Curve
from rl_transfer.reports import decision_line, print_tables, report_md, table_rows
from rl_transfer.reports.plots import curves_figure, total_time_points
from rl_transfer.reports.summary import RunData
from rl_transfer.reports.tensorboard import VIEWS_DIR

REPO = Path(__file__).resolve().parent.parent
CENSORED = "lower bound: scratch censored at t_max"


def test_write_reports_leaves_the_callers_global_state_alone(tiny_experiment, tmp_path):
    """In a fresh interpreter: a program that chose the svg backend, its own rcParams, logging
    and warning filters still has them after a report (importing the package may register its
    dependencies' filters, as numpy and torch do on import; calling it must change nothing)."""
    exp = tmp_path / "exp"
    shutil.copytree(tiny_experiment, exp)
    for name in ("summary.json", "report.md", "curves_cartpole-long-pole_ppo.png"):
        (exp / name).unlink()
    shutil.rmtree(exp / VIEWS_DIR)
    program = textwrap.dedent(
        f"""
        import logging, sys, warnings
        from pathlib import Path
        import matplotlib
        matplotlib.use("svg")
        matplotlib.rcParams["lines.linewidth"] = 3.5
        handler = logging.StreamHandler(sys.stderr)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.ERROR)
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("error", message="the caller's own filter")

        def state():
            return (
                matplotlib.get_backend(),
                dict(matplotlib.rcParams),
                list(logging.getLogger().handlers),
                logging.getLogger().level,
                logging.getLoggerClass(),
                logging.root.manager.disable,
            )

        mine = state()
        own_filters = list(warnings.filters)
        import rl_transfer.reports

        assert state() == mine, "importing changed the caller's state"
        it = iter(warnings.filters)
        assert all(f in it for f in own_filters), "importing dropped or reordered a filter"
        filters = list(warnings.filters)
        rl_transfer.reports.write_reports(Path({str(exp)!r}))
        after = state()
        names = ("backend", "rcParams", "handlers", "level", "logger class", "disable")
        for name, a, b in zip(names, mine, after):
            if name == "rcParams":
                a = {{k: (v, b[k]) for k, v in a.items() if b[k] != v}}
            assert a == b or a == {{}}, (name, a, b)
        assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]
        print("unchanged")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "unchanged"
    for name in ("summary.json", "report.md", "curves_cartpole-long-pole_ppo.png"):
        assert (exp / name).is_file(), name
    assert (exp / VIEWS_DIR / "cartpole-long-pole/ppo/policy/seed_0").is_dir()


def _metric(iqm, ci=None, n_defined=3, notes=None):
    return {"iqm": iqm, "ci": ci, "n_defined": n_defined, "notes": notes or {}}


def _entry(method="policy", censored=False, seeds=(0, 1, 2)):
    """A summary.json result with the widest cells fmt_number writes."""
    wide = _metric(-0.0001234, [-0.0001234, -0.0001234], n_defined=2)
    metrics = {}
    for name in (
        "jumpstart",
        "asymptotic_gain",
        "auc_gain",
        "transfer_ratio",
        "time_to_threshold_transfer",
        "time_to_threshold_gain",
        "forward_transfer",
    ):
        metrics[name] = metrics[name + "_total_time"] = wide
    metrics["time_to_threshold_scratch"] = _metric(28840.0, [21500.0, 34133.0])
    notes = {"1": CENSORED} if censored else {}
    for suffix in ("", "_total_time"):
        metrics["time_to_threshold_speedup" + suffix] = _metric(1.789, [1.234, 2.468], notes=notes)
    return {
        "pair": "lunarlander-heavy-engine",
        "algo": "ppo",
        "method": method,
        "seeds": list(seeds),
        "verdict": "inconclusive",
        "verdict_total_time": "inconclusive",
        "probability_of_improvement": 0.5556,
        "p_value": 0.23,
        "p_value_adjusted": 0.46,
        "p_value_sign_flip": None,
        "seeds_needed": 14,
        "metrics": metrics,
    }


def _render(summary, width=80):
    console = Console(width=width, record=True, file=io.StringIO())
    print_tables(summary, console)
    return console.export_text()


def test_terminal_tables_fit_80_columns_without_splitting_an_interval():
    summary = {"results": [_entry(seeds=range(12)), _entry("value", censored=True)]}
    text = _render(summary)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for line in lines:
        # every bracket opened on a line closes on it: no interval is split across lines
        assert line.count("[") == line.count("]"), line
    assert "[-0.0001234, -0.0001234]" in text
    assert "[1.234, 2.468]" in text
    assert "(2/3 seeds)" in text
    assert "12 seeds: 0-11" in text


def test_tiny_experiment_table_fits_80_columns(tiny_experiment):
    import json

    summary = json.loads((tiny_experiment / "summary.json").read_text())
    lines = _render(summary).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line.count("[") == line.count("]") for line in lines)


def test_censored_speedup_is_flagged_in_the_table_and_report():
    entry = _entry(censored=True)
    rows = dict((label, (a, b)) for label, a, b in table_rows(entry))
    assert rows["speed-up"] == (">= 1.789 [1.234, 2.468]", ">= 1.789 [1.234, 2.468]")
    assert not rows["jumpstart"][0].startswith(">=")
    text = _render({"results": [entry]})
    assert ">= 1.789" in text
    footnote = re.sub(r"\s+", " ", text)
    assert "cells marked >= are lower bounds" in footnote
    assert "in 1 of 3 seeds (censored at t_max)" in footnote
    md = report_md({"results": [entry]}, {"name": "x"})
    assert "| speed-up | >= 1.789 [1.234, 2.468] | >= 1.789 [1.234, 2.468] |" in md
    assert "Cells marked >= are lower bounds" in md
    assert "at least 1.79x sooner" in md
    uncensored = _render({"results": [_entry()]})
    assert ">=" not in uncensored and "lower bound" not in uncensored


def test_seeds_needed_states_the_seeds_it_was_estimated_from():
    assert "a rough estimate from 3 seeds" in decision_line(_entry())
    assert "a rough estimate from 5 seeds" in decision_line(_entry(seeds=range(5)))


def _run(method, seed, t, f, source=None, source_steps=512):
    info = {
        "pair": "p",
        "algo": "ppo",
        "method": method,
        "seed": seed,
        "source_steps": 0 if method == "scratch" else source_steps,
    }
    return RunData(info, Curve(np.array(t, float), np.array(f, float)), Path("."), source)


def test_total_time_segment_is_drawn_at_the_level_it_describes():
    """Over [0, t_src] the total-time curve is the source's segment (its measured checkpoints,
    the last one held up to t_src; R_min without one), then it jumps to the arm's f(0)."""
    grid = np.array([0.0, 256.0, 512.0, 768.0])
    source = Curve(np.array([0.0, 128.0, 384.0, 512.0]), np.array([20.0, 50.0, 80.0, 90.0]))
    measured = _run("policy", 0, grid, [300.0, 310.0, 320.0, 330.0], source)
    t, ys = total_time_points([measured], grid, 512.0, r_min=9.0)
    jump = np.flatnonzero(t == 512.0)
    assert len(jump) == 2  # the segment's end, then the arm's start
    left, right = jump
    before = t[: left + 1]
    np.testing.assert_allclose(ys[0, : left + 1], np.interp(before, source.t, source.f))
    assert list(before) == [0.0, 128.0, 256.0, 384.0, 512.0]  # every checkpoint drawn
    assert ys[0, left] == 90.0  # the final source model's level, up to t_src: no ramp to f(0)
    assert ys[0, right] == 300.0
    np.testing.assert_allclose(ys[0, right:], [300.0, 310.0])  # t = 512, 768

    assumed = _run("policy", 0, grid, [300.0, 310.0, 320.0, 330.0])
    t, ys = total_time_points([assumed], grid, 512.0, r_min=9.0)
    left = int(np.flatnonzero(t == 512.0)[0])
    assert np.all(ys[0, : left + 1] == 9.0)
    assert ys[0, left + 1] == 300.0


def test_curves_figure_draws_the_assumed_segment_at_r_min():
    grid = [0.0, 256.0, 512.0, 768.0]
    runs = [
        _run("scratch", s, grid, [20.0 + s, 50.0, 100.0, 200.0 + s], source_steps=0) for s in (0, 1)
    ] + [_run("policy", s, grid, [300.0 + s, 310.0, 320.0, 330.0]) for s in (0, 1)]
    spec = {"pairs": {"p": {"r_min": 9.0, "r_max": 500.0, "threshold": 475.0}}}
    fig = curves_figure(spec, runs, "p", "ppo")
    total = fig.axes[1]  # axes are row-major: target-only, then total-time
    assert total.get_title() == "policy vs scratch (total-time)"
    (line,) = [ln for ln in total.get_lines() if ln.get_label() == "policy (n=2)"]
    x, y = line.get_xdata(), line.get_ydata()
    held = x <= 512.0
    held[np.flatnonzero(x == 512.0)[-1]] = False  # the arm's own start at t_src
    assert np.all(y[held] == 9.0)
    assert list(y[x == 512.0]) == [9.0, 300.5]  # the jump at t_src, upright
    assert y[x > 512.0][0] == 310.0  # f_T(256) of both seeds, at 512 + 256
    labels = total.get_legend_handles_labels()[1]
    assert "source training (assumed at R_min)" in labels


def test_compare_table_keeps_intervals_whole():
    from rl_transfer.reports import compare_table

    summaries = {f"runs/folder-{i}": {"results": [_entry(), _entry("value")]} for i in range(2)}
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(compare_table(summaries))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line.count("[") == line.count("]") for line in lines)
    assert sum(line.count("[-0.0001234, -0.0001234]") for line in lines) == 4
    assert "lunarlander-heavy-e…" not in "\n".join(lines)  # long names fold, not cropped


def test_plots_stay_bounded_for_30_pairs(tmp_path):
    """30 pairs x 2 methods = 60 comparisons: the forward-transfer chart is cut into pages of at
    most 30 rows, whole pairs together, each image of bounded height; report.md shows every page;
    a smaller re-report removes the pages it no longer has. A curves figure of 6 methods wraps
    at 4 side by side."""
    from PIL import Image

    from rl_transfer.reports.plots import MAX_COLUMNS, plot_forward_transfer
    from rl_transfer.reports.summary import FORWARD_TRANSFER_ROWS, forward_transfer_pages

    results = []
    for k in range(30):
        for method in ("policy", "value"):
            e = _entry(method)
            e["pair"] = f"pair-{k:02d}"
            e["p_value"], e["p_value_adjusted"] = 0.5, 0.5
            results.append(e)
    summary = {"results": results}
    pages = forward_transfer_pages(results)
    assert [len(p) for p in pages] == [30, 30]
    assert all(len({r["pair"] for r in p}) == 15 for p in pages)  # no pair split across pages
    paths = plot_forward_transfer(tmp_path, summary)
    assert [p.name for p in paths] == ["forward_transfer.png", "forward_transfer_2.png"]
    heights = [Image.open(p).size[1] for p in paths]
    assert max(heights) <= 90 * (1.2 + 0.6 * FORWARD_TRANSFER_ROWS) + 1
    md = report_md(summary, {"name": "big"})
    assert "(forward_transfer.png)" in md and "(forward_transfer_2.png)" in md
    assert [p.name for p in plot_forward_transfer(tmp_path, {"results": results[:4]})] == [
        "forward_transfer.png"
    ]
    assert not (tmp_path / "forward_transfer_2.png").exists()

    grid = [0.0, 256.0, 512.0, 768.0]
    methods = ["scratch", "a", "b", "c", "d", "e", "f"]
    runs = [_run(m, s, grid, [20.0 + s, 50.0, 100.0, 200.0 + s]) for m in methods for s in (0, 1)]
    spec = {"pairs": {"p": {"r_min": 9.0, "r_max": 500.0, "threshold": 475.0}}}
    fig = curves_figure(spec, runs, "p", "ppo")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 * 6 and MAX_COLUMNS == 4
    assert fig.get_size_inches()[0] <= 5 * MAX_COLUMNS
    titles = [ax.get_title() for ax in visible]
    assert titles[:4] == [f"{m} vs scratch (target-only)" for m in "abcd"]
    assert titles[4:8] == [f"{m} vs scratch (total-time)" for m in "abcd"]
