"""The record schema: writer and reader share one typed model per results file."""

import json

import pytest

from rl_transfer.errors import RecordError, RLTransferError
from rl_transfer.records import (
    SCHEMA_VERSION,
    ExperimentRecord,
    SourceRecord,
    Summary,
    TargetRecord,
    TransferReport,
    run_status,
)


def test_a_finished_experiment_reads_back_through_its_records(tiny_experiment):
    runs = sorted(tiny_experiment.glob("*/*/*/seed_*/run.json"))
    assert runs
    for path in runs:
        record = TargetRecord.read(path)
        assert record.done and record.extra == {}, path
        assert json.loads(path.read_text()) == record.to_dict()
        assert record.to_dict()["schema_version"] == SCHEMA_VERSION
        if record.method != "scratch":
            report = TransferReport.read(path.parent / "transfer_report.json")
            assert report.method == record.method and report.sections["copied"]
    for path in (tiny_experiment.parent / "sources").glob("*/run.json"):
        assert SourceRecord.read(path).kind == "source"
    summary = Summary.read(tiny_experiment / "summary.json")
    assert {r["method"] for r in summary.results} == {"policy", "value"}
    spec = ExperimentRecord.read(tiny_experiment / "experiment.yaml")
    assert spec.identity["methods"] == ["scratch", "policy", "value"]


def test_a_version_1_record_without_schema_version_reads_with_the_old_names(tmp_path):
    old = {
        "kind": "target",
        "pair": "p",
        "algo": "ppo",
        "method": "shaping",
        "seed": 0,
        "status": "done",
        "method_knobs": {"scale": 0.5},
    }
    (tmp_path / "run.json").write_text(json.dumps(old))
    record = TargetRecord.read(tmp_path / "run.json")
    assert record.knobs == {"scale": 0.5} and "method_knobs" not in record.extra
    assert run_status(tmp_path) == "done"


def test_a_newer_schema_version_is_one_clear_error(tmp_path):
    (tmp_path / "run.json").write_text(
        json.dumps({"schema_version": SCHEMA_VERSION + 1, "status": "done"})
    )
    with pytest.raises(RecordError, match=r"schema_version 3, newer .* upgrade rl_transfer"):
        TargetRecord.read(tmp_path / "run.json")
    with pytest.raises(RLTransferError, match="run.json"):
        run_status(tmp_path)


def test_a_missing_field_or_bad_json_is_named(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "target", "status": "done"}))
    with pytest.raises(RecordError, match="missing algo, method, pair, seed"):
        TargetRecord.read(tmp_path / "run.json")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        TargetRecord.read(tmp_path / "run.json")
    assert run_status(tmp_path) is None  # an unfinished write: the run is not done
    (tmp_path / "experiment.yaml").write_text("name: x\nidentity: [\n")
    with pytest.raises(RecordError, match=r"invalid YAML: .*experiment.yaml:3:1: "):
        ExperimentRecord.read(tmp_path / "experiment.yaml")


def test_unknown_keys_survive_a_round_trip(tmp_path):
    report = TransferReport(method="my-plugin", doc="d")
    report.add({"my_plugin": {"moved": 3}, "optimizer_state": "carried"})
    report.write(tmp_path)
    back = TransferReport.read(tmp_path / "transfer_report.json")
    assert back.sections == {"my_plugin": {"moved": 3}} and back.optimizer_state == "carried"
    assert back.to_dict() == report.to_dict()


def test_a_failed_run_records_only_what_and_why(tmp_path):
    rec = TargetRecord(pair="p", algo="a", method="m", seed=1, status="failed", error="E: x")
    assert rec.to_dict() == {
        "schema_version": SCHEMA_VERSION,
        "kind": "target",
        "pair": "p",
        "algo": "a",
        "method": "m",
        "seed": 1,
        "status": "failed",
        "error": "E: x",
    }
