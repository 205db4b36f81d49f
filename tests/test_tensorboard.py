"""A real TensorBoard server over a tiny experiment: every run and the eval tag are served."""

import json
import re
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from conftest import cli, cli_forked

from rl_transfer.reports import REPORT_EVENTS, VIEWS_DIR
from rl_transfer.reports.tensorboard import compare_tag
from rl_transfer.tensorboard import free_port, serve


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def server(tiny_experiment):
    port = free_port()
    proc = serve(tiny_experiment, port)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tensorboard_serves_every_run_and_tag(server, tiny_experiment):
    """Training runs carry the evaluation curve; their report runs (a tree of their own) carry
    the overlay tag and the final metrics; HParams and the Custom Scalars layout are served."""
    tag = compare_tag("cartpole-long-pole", "ppo")
    expected = {
        f"cartpole-long-pole/ppo/{m}/seed_{s}"
        for m in ("scratch", "policy", "value")
        for s in (0, 1)
    }
    views = {f"{VIEWS_DIR}/{run}" for run in expected}
    aggregates = {
        f"{VIEWS_DIR}/cartpole-long-pole/ppo/{m}/iqm" for m in ("scratch", "policy", "value")
    }
    deadline = time.time() + 90
    tags = {}
    while time.time() < deadline:
        try:
            tags = _get(server, "/data/plugin/scalars/tags")
            if expected | views | aggregates <= set(tags) and all(tag in tags[r] for r in views):
                break
        except OSError:
            pass
        time.sleep(1)
    assert expected | views | aggregates <= set(tags), f"served runs: {sorted(tags)}"
    for run in expected:
        assert "eval/mean_reward" in tags[run]
        assert tag not in tags[run], "report views were written into a training run"
        assert tag in tags[f"{VIEWS_DIR}/{run}"]
        assert "final/mean_reward" in tags[f"{VIEWS_DIR}/{run}"]
    # the eval curve starts at t = 0 and has the 4 evaluations of the tiny budget
    run = "cartpole-long-pole/ppo/policy/seed_0"
    points = _get(server, f"/data/plugin/scalars/scalars?run={run}&tag=eval/mean_reward")
    assert [p[1] for p in points] == [0, 256, 512, 768]
    overlay = _get(server, f"/data/plugin/scalars/scalars?run={VIEWS_DIR}/{run}&tag={tag}")
    assert [(p[1], p[2]) for p in overlay] == [(p[1], p[2]) for p in points]
    req = urllib.request.Request(
        f"http://127.0.0.1:{server}/data/plugin/hparams/experiment",
        data=json.dumps({"experimentName": ""}).encode(),
        headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        experiment = json.loads(resp.read())
    hparams = {h["name"] for h in experiment["hparamInfos"]}
    assert hparams == {"experiment", "pair", "algo", "method", "seed"}
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"final/mean_reward", "final/forward_transfer"} <= metrics
    layout = _get(server, "/data/plugin/custom_scalars/layout")
    charts = layout["category"][0]["chart"]
    assert any("cartpole-long-pole / ppo" in c["title"] for c in charts)
    # the margin chart's data as its card asks for it: per run, the regex of its series' tags
    (series,) = [s for s in charts[0]["margin"]["series"] if s["value"].endswith("/policy")]
    regex = "|".join(f"({re.escape(series[k])})" for k in ("value", "lower", "upper"))
    run = f"{VIEWS_DIR}/cartpole-long-pole/ppo/policy/iqm"
    query = urllib.parse.urlencode({"run": run, "tag": regex})
    data = _get(server, f"/data/plugin/custom_scalars/scalars?{query}")
    assert data["regex_valid"] and set(data["tag_to_events"]) == set(series.values())
    assert [p[1] for p in data["tag_to_events"][series["value"]]] == [0, 256, 512, 768]


def test_report_rewrites_not_duplicates_tensorboard_views(tiny_experiment, tmp_path):
    """Re-reporting leaves the run folders as training wrote them and replaces each view (one
    events file per report run, the same points); a legacy view in a run folder is removed."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    copy = tmp_path / "copy"
    shutil.copytree(tiny_experiment, copy)
    rel = "cartpole-long-pole/ppo/value/seed_1"
    run, view = copy / rel, copy / VIEWS_DIR / rel
    before = sorted(p.name for p in run.iterdir())
    assert REPORT_EVENTS not in before
    (run / REPORT_EVENTS).write_bytes((view / REPORT_EVENTS).read_bytes())  # as once written
    (copy / REPORT_EVENTS).write_bytes((copy / VIEWS_DIR / REPORT_EVENTS).read_bytes())
    (copy / VIEWS_DIR / "cartpole-long-pole/ppo/value/seed_7").mkdir()  # a run since removed
    for _ in range(2):
        assert cli("report", str(copy), cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in run.iterdir()) == before
    assert not (copy / REPORT_EVENTS).exists()
    assert not (copy / VIEWS_DIR / "cartpole-long-pole/ppo/value/seed_7").exists()
    assert [p.name for p in view.iterdir()] == [REPORT_EVENTS]
    acc = EventAccumulator(str(view / REPORT_EVENTS)).Reload()
    steps = [e.step for e in acc.Scalars(compare_tag("cartpole-long-pole", "ppo"))]
    assert steps == [0, 256, 512, 768]


def test_tensorboard_command_refuses_a_non_experiment(tmp_path):
    proc = cli_forked("tensorboard", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")


def test_transfer_report_is_text_at_step_0_with_every_tensor(tiny_experiment):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tiny_experiment / "cartpole-long-pole/ppo/policy/seed_0"
    report = json.loads((run / "transfer_report.json").read_text())
    events = [p for p in run.glob("events.out.tfevents.*") if p.name != REPORT_EVENTS]
    acc = EventAccumulator(str(events[0]), size_guidance={"tensors": 0}).Reload()
    (text,) = acc.Tensors("transfer/report/text_summary")
    assert text.step == 0
    body = text.tensor_proto.string_val[0].decode()
    assert body.startswith("**method `policy`**")
    for action in ("copied", "reinitialised"):
        assert report[action]
        for tensor in report[action]:
            assert f"| `{tensor['name']}` | {tensor['shape']} | {action} |" in body


def test_aggregate_runs_hold_the_reports_iqm_and_band_in_margin_charts(tiny_experiment):
    """Each arm (scratch included) has an aggregate run whose IQM is the trimmed mean over its
    seeds of the evaluation curves on scratch's grid (computed here from evaluations.npz), whose
    band is stats.aggregate's interval at each step and encloses the IQM, and which the curves
    PNG draws too; the Custom Scalars layout holds one margin chart per (pair, algo) with a
    series per arm, and the per-seed chart in a collapsed category."""
    from scipy import stats
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    from rl_transfer.records import ExperimentRecord
    from rl_transfer.reports import load_experiment
    from rl_transfer.reports.plots import curves_figure
    from rl_transfer.reports.tensorboard import (
        AGGREGATE_CATEGORY,
        AGGREGATE_RUN,
        PER_SEED_CATEGORY,
        iqm_tags,
    )
    from rl_transfer.stats import aggregate

    pair, algo = "cartpole-long-pole", "ppo"
    group = tiny_experiment / pair / algo

    def curves(method):
        out = []
        for seed in (0, 1):
            with np.load(group / method / f"seed_{seed}" / "evaluations.npz") as data:
                out.append((data["timesteps"].astype(float), data["results"].mean(axis=1)))
        return out

    grid = curves("scratch")[0][0]
    spec = ExperimentRecord.read(tiny_experiment / "experiment.yaml").to_dict()
    fig = curves_figure(spec, load_experiment(tiny_experiment)[1], pair, algo)
    for method in ("scratch", "policy", "value"):
        ys = np.stack([np.interp(grid, t, f) for t, f in curves(method)])
        expected = stats.trim_mean(ys, 0.25, axis=0)
        run = tiny_experiment / VIEWS_DIR / pair / algo / method / AGGREGATE_RUN
        acc = EventAccumulator(str(run / REPORT_EVENTS)).Reload()
        value, lower, upper = (acc.Scalars(tag) for tag in iqm_tags(pair, algo, method))
        assert [e.step for e in value] == [e.step for e in lower] == [e.step for e in upper]
        assert [e.step for e in value] == list(grid.astype(int))
        got = np.array([e.value for e in value])
        lo, hi = np.array([e.value for e in lower]), np.array([e.value for e in upper])
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        assert np.all(lo <= got) and np.all(got <= hi)
        assert np.any(lo < hi), "a band that never opens"
        bands = [aggregate(list(col)) for col in ys.T]
        np.testing.assert_allclose(lo, [b.ci[0] if b.ci else b.iqm for b in bands], rtol=1e-6)
        np.testing.assert_allclose(hi, [b.ci[1] if b.ci else b.iqm for b in bands], rtol=1e-6)
        # the PNG draws the same curve (the target-only panel: the figure's first axes)
        (line,) = [
            ln
            for ln in fig.axes[0 if method != "value" else 1].get_lines()
            if ln.get_label() == f"{method} (n=2)"
        ]
        np.testing.assert_allclose(line.get_ydata(), got, rtol=1e-6)
    acc = EventAccumulator(
        str(tiny_experiment / VIEWS_DIR / REPORT_EVENTS), size_guidance={"tensors": 0}
    ).Reload()
    (config,) = acc.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    aggregate_cat, per_seed = layout.category
    assert (aggregate_cat.title, aggregate_cat.closed) == (AGGREGATE_CATEGORY, False)
    assert (per_seed.title, per_seed.closed) == (PER_SEED_CATEGORY, True)
    (chart,) = aggregate_cat.chart
    assert chart.WhichOneof("content") == "margin"
    series = [(s.value, s.lower, s.upper) for s in chart.margin.series]
    assert series == [iqm_tags(pair, algo, m) for m in ("scratch", "policy", "value")]
    (seeds_chart,) = per_seed.chart
    assert list(seeds_chart.multiline.tag) == [f"^{compare_tag(pair, algo)}$"]


def _post(port: int, path: str, body: dict):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_hparams_lists_every_run_of_every_experiment_in_one_logdir(tiny_experiment, tmp_path):
    """Two experiments (different pairs, methods, seeds) under one --logdir: the HParams
    dashboard, queried as its page does (every value of each hparam's domain ticked), lists the
    sessions of both, each with every hparam column and its final metrics."""
    import shutil

    from conftest import ONE_SEED

    logdir = tmp_path / "runs"
    shutil.copytree(tiny_experiment, logdir / "first")
    proc = cli(
        "run", "--pair", "cartpole-heavy-cart", "--methods", "finetune", *ONE_SEED,
        "--out", str(logdir / "second"), "--source-cache", str(tmp_path / "src"), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first = {
        f"first/{VIEWS_DIR}/cartpole-long-pole/ppo/{m}/seed_{s}"
        for m in ("scratch", "policy", "value")
        for s in (0, 1)
    }
    second = {
        f"second/{VIEWS_DIR}/cartpole-heavy-cart/ppo/{m}/seed_0" for m in ("scratch", "finetune")
    }
    port = free_port()
    server = serve(logdir, port)
    try:
        deadline = time.time() + 90
        runs: set[str] = set()
        while time.time() < deadline:
            try:
                runs = set(_get(port, "/data/plugin/scalars/tags"))
                if first | second <= runs:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert first | second <= runs, sorted(runs)
        experiment = _post(port, "/data/plugin/hparams/experiment", {"experimentName": ""})
        infos = {h["name"]: h for h in experiment["hparamInfos"]}
        assert {"experiment", "pair", "algo", "method", "seed"} <= set(infos)
        metrics = [m["name"] for m in experiment["metricInfos"]]
        assert {"group": "", "tag": "final/mean_reward"} in [
            {"group": m.get("group", ""), "tag": m["tag"]} for m in metrics
        ]
        cols = []
        for name, info in infos.items():
            col = {"hparam": name, "includeInResult": True}
            if "domainDiscrete" in info:  # the page ticks every value of the domain
                col["filterDiscrete"] = info["domainDiscrete"]
            elif "domainInterval" in info:
                col["filterInterval"] = info["domainInterval"]
            cols.append(col)
        cols += [{"metric": m, "includeInResult": True} for m in metrics]
        groups = _post(
            port,
            "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
                "colParams": cols,
                "startIndex": 0,
                "sliceSize": 1000,
            },
        )["sessionGroups"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    by_name = {g["name"]: g for g in groups}
    assert first | second <= set(by_name), sorted(by_name)
    for name in first | second:
        hparams = by_name[name]["hparams"]
        assert set(hparams) == {"experiment", "pair", "algo", "method", "seed"}
        exp, rel = name.split("/", 1)
        _, pair, algo, method, seed = rel.split("/")
        assert (hparams["pair"], hparams["algo"], hparams["method"]) == (pair, algo, method)
        assert hparams["seed"] == int(seed.removeprefix("seed_"))
        values = {m["name"]["tag"] for m in by_name[name]["metricValues"]}
        assert "final/mean_reward" in values
