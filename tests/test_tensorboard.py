"""A real TensorBoard server over a tiny experiment: every run and the eval tag are served."""

import json
import time
import urllib.request

import pytest
from conftest import cli

from rl_transfer.tensorboard import REPORT_EVENTS, compare_tag, free_port, serve


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
    expected = {
        f"cartpole-long-pole/ppo/{m}/seed_{s}"
        for m in ("scratch", "policy", "value")
        for s in (0, 1)
    }
    deadline = time.time() + 90
    tags = {}
    while time.time() < deadline:
        try:
            tags = _get(server, "/data/plugin/scalars/tags")
            if expected <= set(tags) and all(
                compare_tag("cartpole-long-pole", "ppo") in tags[r] for r in expected
            ):
                break
        except OSError:
            pass
        time.sleep(1)
    assert expected <= set(tags), f"served runs: {sorted(tags)}"
    for run in expected:
        assert "eval/mean_reward" in tags[run]
        assert compare_tag("cartpole-long-pole", "ppo") in tags[run]
        assert "final/mean_reward" in tags[run]
    # the eval curve starts at t = 0 and has the 4 evaluations of the tiny budget
    run = "cartpole-long-pole/ppo/policy/seed_0"
    points = _get(server, f"/data/plugin/scalars/scalars?run={run}&tag=eval/mean_reward")
    assert [p[1] for p in points] == [0, 256, 512, 768]
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
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_experiment, copy)
    run = copy / "cartpole-long-pole/ppo/value/seed_1"
    before = sorted(p.name for p in run.iterdir())
    assert cli("report", str(copy), cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in run.iterdir()) == before
    assert (run / REPORT_EVENTS).is_file()


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
