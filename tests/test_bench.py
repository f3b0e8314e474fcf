from dataclasses import replace

import pytest

from perfkit import bench
from perfkit.errors import PerfkitError
from perfkit.spec import make_spec
from perfkit.store import Store
from tests.conftest import FAST


def spec(model, **kw):
    kw.setdefault("plan", FAST)
    kw.setdefault("results_dir", None)
    return make_spec(model, **kw)


def test_a_row_per_batch_with_honest_fields(relu_model):
    report = bench.run(spec(relu_model, batch=(0, 1, 8)))
    assert report.complete and not report.failed
    assert [r.batch for r in report.results] == [0, 1, 8]
    zero, one, eight = report.results
    assert zero.throughput is None and one.throughput > 0
    assert eight.shapes == (("x", (8, 4)),)
    for r in report.results:
        assert r.status == "ok" and r.providers[0] == "CPUExecutionProvider" and not r.fallback
        m = r.measurement
        assert m.warmup_calls >= FAST.warmup_calls and len(m.samples_ns) == r.summary.n >= FAST.min_rounds
        assert m.load_ns > 0 and m.first_call_ns > 0 and m.peak_rss_bytes > 0


def test_default_dims_are_warned_about(relu_model):
    report = bench.run(spec(relu_model))
    assert any("free dims filled with defaults: batch=1" in w for w in report.warnings)
    assert not any("filled" in w for w in bench.run(spec(relu_model, batch=(2,))).warnings)


def test_model_without_inputs_works(no_input_model):
    (row,) = bench.run(spec(no_input_model)).results
    assert row.status == "ok" and row.batch == 1 and row.shapes == ()


def test_nan_outputs_make_the_row_invalid(nan_model):
    report = bench.run(spec(nan_model))
    (row,) = report.results
    assert row.status == "invalid" and "y: 4 NaN, 0 Inf of 4" in row.reason and report.failed


def test_user_data_is_fed(relu_model, tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.ones((3, 4), np.float32))
    (row,) = bench.run(spec(relu_model, inputs=str(tmp_path / "d.npz"))).results
    assert row.batch == 3 and row.status == "ok"


def test_missing_provider_is_a_user_error_unless_fallback_is_allowed(relu_model, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PerfkitError, match="CUDAExecutionProvider is not in this onnxruntime"):
        bench.run(spec(relu_model, targets=("ort:cuda",), results_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
    (row,) = bench.run(spec(relu_model, targets=("ort:cuda",), allow_fallback=True)).results
    assert row.fallback and row.providers[0] == "CPUExecutionProvider"
    assert row.warnings[0] == "fallback: asked for CUDAExecutionProvider, onnxruntime ran CPUExecutionProvider"


def test_no_kernel_is_a_user_error_and_nothing_is_written(no_kernel_model, tmp_path):
    with pytest.raises(PerfkitError, match="no onnxruntime kernel for Acos"):
        bench.run(spec(no_kernel_model, results_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_isolated_run_is_stored(relu_model, tmp_path):
    s = spec(relu_model, results_dir=str(tmp_path / "r"))
    report = bench.run(replace(s, plan=replace(FAST, isolate=True)))
    assert report.results[0].status == "ok"
    stored = Store(tmp_path / "r").load(report.run_id)
    assert stored == report


def test_a_crashing_case_is_a_failed_row_and_the_sweep_goes_on(relu_model, monkeypatch):
    calls = []

    def flaky(case):
        calls.append(case)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(case)

    real = bench.run_case
    monkeypatch.setattr(bench, "run_case", flaky)
    report = bench.run(spec(relu_model, batch=(1, 2)))
    assert [r.status for r in report.results] == ["failed", "ok"]
    assert report.results[0].reason == "RuntimeError: boom" and report.failed


def test_distinct_feeds_are_cycled_while_timing(relu_model):
    s = spec(relu_model)
    s = replace(s, workloads=tuple(replace(w, distinct_feeds=3) for w in s.workloads))
    (row,) = bench.run(s).results
    assert row.status == "ok" and row.summary.n >= FAST.min_rounds
