"""User-facing options -> a checked BenchSpec."""

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec


def test_batch_sweep_makes_one_workload_per_size():
    spec = make_spec("m.onnx", batch=(1, 8), dims=("seq=16",))
    assert [w.batch for w in spec.workloads] == [1, 8]
    assert all(w.dims == (("seq", 16),) for w in spec.workloads)


def test_batch_cannot_resize_user_data():
    with pytest.raises(PerfkitError, match="--batch cannot resize"):
        make_spec("m.onnx", batch=(1, 8), inputs="data.npz")


def test_a_task_term_in_the_budget_needs_eval_data():
    with pytest.raises(PerfkitError, match="--accuracy-budget top1_drop: a task term needs labelled samples — give "
                                           "--eval data.npz with labels"):
        make_spec("m.onnx", accuracy_budget="cos>=0.99,top1_drop<=0.5%")


def test_eval_data_is_kept_on_the_spec(tmp_path):
    (tmp_path / "eval.csv").write_text("a,y\n1,0\n")
    spec = make_spec("m.onnx", eval=str(tmp_path / "eval.csv"), label_column="y", accuracy_budget="top1_drop<=1%")
    assert spec.eval == str(tmp_path / "eval.csv") and spec.label_column == "y"
    assert spec.accuracy_budget == "top1_drop<=1%"


@pytest.mark.parametrize("name,column,message", [
    ("eval.csv", None, "a table needs its labels' column named — give --label-column NAME"),
    ("eval.npz", "y", "--label-column y: only a .csv/.parquet table has columns"),
    ("absent.npz", None, "absent.npz: no such file"),
])
def test_eval_options_that_do_not_fit_are_errors(tmp_path, name, column, message):
    for existing in ("eval.csv", "eval.npz"):
        (tmp_path / existing).write_text("")
    with pytest.raises(PerfkitError, match=message):
        make_spec("m.onnx", eval=str(tmp_path / name), label_column=column)
