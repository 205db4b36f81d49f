"""A real TensorBoard server over a tiny experiment: every run and the eval tag are served."""

import json
import time
import urllib.request

import pytest
from conftest import cli

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
    deadline = time.time() + 90
    tags = {}
    while time.time() < deadline:
        try:
            tags = _get(server, "/data/plugin/scalars/tags")
            if expected | views <= set(tags) and all(tag in tags[r] for r in views):
                break
        except OSError:
            pass
        time.sleep(1)
    assert expected | views <= set(tags), f"served runs: {sorted(tags)}"
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
    assert hparams == {"pair", "algo", "method", "seed"}
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"final/mean_reward", "final/forward_transfer"} <= metrics
    layout = _get(server, "/data/plugin/custom_scalars/layout")
    charts = layout["category"][0]["chart"]
    assert any("cartpole-long-pole / ppo" in c["title"] for c in charts)


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
    proc = cli("tensorboard", str(tmp_path), cwd=tmp_path)
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
