import json

import pytest

import perfkit
from perfkit import bench
from perfkit.core.errors import PerfkitError
from perfkit.core.report import SCHEMA_VERSION, from_json, to_json
from perfkit.options import make_spec
from tests.conftest import FAST


@pytest.fixture
def report(relu_model):
    return bench.run(make_spec(relu_model, batch=(1, 2), plan=FAST, results_dir=None))


def test_json_round_trip_is_exact(report):
    text = to_json(report)
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["environment"]["packages"]["onnxruntime"]
    assert len(data["results"][0]["measurement"]["samples_ns"]) == data["results"][0]["summary"]["n"]
    assert from_json(text, "x.json") == report


def test_newer_schema_is_refused(report):
    data = json.loads(to_json(report))
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(PerfkitError, match="upgrade perfkit"):
        from_json(json.dumps(data), "x.json")


def test_damaged_files_are_refused(report):
    with pytest.raises(PerfkitError, match="bad JSON"):
        from_json("{", "x.json")
    data = json.loads(to_json(report))
    del data["spec"]
    with pytest.raises(PerfkitError, match="does not match schema"):
        from_json(json.dumps(data), "x.json")


def test_dataframe_has_a_row_per_result(report):
    frame = perfkit.to_frame(report)
    assert list(frame["batch"]) == [1, 2] and (frame["median_ns"] > 0).all()


def test_schema_1_runs_still_load(report):
    data = json.loads(to_json(report))
    data["schema_version"] = 1
    data["contests"] = []  # schema 2's re-timing, which the interleaved rounds replaced
    for row in data["results"]:
        for key in ("accuracy", "size_bytes", "ops", "notes", "profile"):
            del row[key]
        del row["measurement"]["blocks"]
    old = from_json(json.dumps(data), "old.json")
    assert old.schema_version == SCHEMA_VERSION and old.results[0].accuracy == ()
    assert old.results[0].measurement.blocks == () and not hasattr(old, "contests")
    assert old.results[0].summary == report.results[0].summary


def test_task_accuracy_round_trips_and_a_run_without_it_loads(report):
    from dataclasses import replace

    from perfkit.core.records import TaskAccuracy, TaskScores

    task = TaskAccuracy(output="logits", samples=200, scores=TaskScores(top1=0.9, top5=0.99),
                        reference=TaskScores(top1=0.91, top5=0.99))
    judged = replace(report, results=(replace(report.results[0], task=task), *report.results[1:]))
    assert from_json(to_json(judged), "x.json") == judged
    data = json.loads(to_json(report))
    for result in data["results"]:
        del result["task"]  # a run file written before --eval
    del data["spec"]["eval"], data["spec"]["label_column"]
    assert from_json(json.dumps(data), "old.json") == report


def test_a_run_keeps_the_models_inputs_and_outputs():
    from pathlib import Path

    from perfkit.core.model import TensorInfo
    from perfkit.core.report import from_json

    golden = from_json((Path(__file__).parents[1] / "golden" / "report.json").read_text(), "golden")
    assert golden.signature.inputs == (TensorInfo("x", "float32", ("batch", 4)),)
    assert [o.name for o in golden.signature.outputs] == ["y"]
