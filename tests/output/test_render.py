import csv
import io

import pytest

from perfkit import bench
from perfkit.options import make_spec
from perfkit.output.render import render
from perfkit.output.units import fmt_bytes, fmt_ns
from tests.conftest import FAST


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import onnx
    from onnx import helper

    from tests.conftest import graph_model, tensor

    path = tmp_path_factory.mktemp("m") / "relu.onnx"
    onnx.save_model(graph_model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x")], [tensor("y")]), path)
    return bench.run(make_spec(str(path), batch=(1, 4), plan=FAST, results_dir=None))


def test_units():
    assert [fmt_ns(v) for v in (512, 12_340, 1_234_000, 2.5e9, None)] == ["512 ns", "12.3 µs", "1.23 ms", "2.5 s", "-"]
    assert [fmt_bytes(v) for v in (10, 2048, 3 * 2**20, None)] == ["10 B", "2.0 KiB", "3.0 MiB", "-"]


def test_table_names_what_ran_and_what_is_missing(report):
    text = render(report, "table", width=250)
    for column in ("median ± CI", "p90", "p99", "items/s", "first call", "peak RSS", "ran on"):
        assert column in text
    assert "n/a (need ≥ 500)" in text  # FAST gives 60 samples: no p99
    assert "CPU" in text and "ok" in text and "\x1b[" not in text


def test_csv_and_markdown_carry_the_same_rows(report):
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [r["batch"] for r in rows] == ["1", "4"] and rows[0]["providers"] == "CPUExecutionProvider"
    md = render(report, "markdown")
    assert md.count("\n| base |") == 2 and "| variant |" in md


def test_json_is_the_report(report):
    import json

    assert json.loads(render(report, "json"))["run_id"] == report.run_id


def test_a_narrow_terminal_drops_the_least_needed_columns_and_says_so(report):
    wide = render(report, "table", width=250)
    narrow = render(report, "table", width=90)
    assert "hidden to fit" not in wide and "peak RSS" in wide
    assert "hidden to fit 90 columns: p90, peak RSS" in narrow and "median ± CI" in narrow and "…" not in narrow
    assert max(len(line) for line in narrow.splitlines() if line.startswith(("┃", "│"))) <= 90


def test_a_run_that_stopped_before_its_first_row_renders_in_every_format(report):
    from dataclasses import replace

    empty = replace(report, results=(), complete=False)
    unfinished = "warning: this run did not finish; the rows above are all it measured"
    assert unfinished in render(empty, "table", width=120) and unfinished in render(empty, "markdown")
    assert render(empty, "csv") == "" and '"results": []' in render(empty, "json")


def with_task(report, *scores):
    """The report as if judged on --eval labels: each row's TaskScores beside the first's."""
    from dataclasses import replace

    from perfkit.core.records import TaskAccuracy

    rows = tuple(replace(r, task=TaskAccuracy(output="y", samples=200, scores=s, reference=scores[0]))
                 for r, s in zip(report.results, scores, strict=True))
    return replace(report, results=rows, spec=replace(report.spec, eval="eval.npz"))


def test_task_columns_show_each_rows_change_against_the_reference(report):
    from perfkit.core.records import TaskScores

    judged = with_task(report, TaskScores(top1=0.92), TaskScores(top1=0.915))
    md = render(judged, "markdown")
    assert "| top1 | status |" in md and "| 92.0% (±0.0) |" in md and "| 91.5% (-0.5) |" in md
    assert "task accuracy: output 'y' on 200 labelled samples; the reference scores top1 92.0%" in md
    rows = list(csv.DictReader(io.StringIO(render(judged, "csv"))))
    assert float(rows[1]["top1_drop"]) == pytest.approx(0.005) and rows[1]["task_output"] == "y"


def test_a_regressors_columns_show_the_relative_rise(report):
    from perfkit.core.records import TaskScores

    judged = with_task(report, TaskScores(mae=0.122, rmse=0.2), TaskScores(mae=0.123, rmse=0.2))
    md = render(judged, "markdown")
    assert "| MAE | RMSE | status |" in md and "| 0.123 (+0.8%) | 0.2 (±0%) |" in md and "top1" not in md


def test_without_eval_there_are_no_task_columns(report):
    assert "top1" not in render(report, "markdown") and "top1" not in render(report, "csv")
