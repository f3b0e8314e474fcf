"""GPU targets on a machine without a GPU: every GPU row is skipped with its reason, asking only for missing
GPUs is an error, nothing pretends; and the parts that need no GPU — IOBinding, where nodes ran, the notes a
GPU row carries — run for real here."""

from __future__ import annotations

from dataclasses import replace

import onnx
import onnxruntime
import pytest

from perfkit import bench
from perfkit.analysis.placement import placement
from perfkit.core.errors import PerfkitError
from perfkit.core.report import Result
from perfkit.core.spec import Target, parse_target
from perfkit.measure.case import Case, run_case
from perfkit.measure.profile import profile_ort
from perfkit.options import make_spec
from tests import models
from tests.conftest import FAST

HAS_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture
def mlp(tmp_path) -> str:
    onnx.save_model(models.mlp(), tmp_path / "mlp.onnx")
    return str(tmp_path / "mlp.onnx")


def spec(model, **kw):
    kw.setdefault("plan", FAST)
    return make_spec(model, results_dir=None, **kw)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_gpu_rows_are_skipped_with_the_reason_and_the_cpu_rows_run(mlp):
    report = bench.run(spec(mlp, targets=("ort:cpu", "ort:cuda", "ort:cuda,iobinding", "ort:tensorrt"),
                            variants=("ort-opt:all",)))
    by_target = {}
    for r in report.results:
        by_target.setdefault(r.target.label, []).append(r)
    assert all(r.status == "ok" for r in by_target["ort:cpu"])
    for label in ("ort:cuda", "ort:cuda,iobinding", "ort:tensorrt"):
        rows = by_target[label]
        assert len(rows) == 2 and all(r.status == "skipped" and r.summary is None for r in rows)
        assert "is not in this onnxruntime" in rows[0].reason and "none pretends" in rows[0].reason
    assert not report.failed  # skipped is not failed: the exit code stays 0


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_asking_only_for_a_missing_gpu_is_an_error(mlp):
    with pytest.raises(PerfkitError, match="CUDAExecutionProvider is not in this onnxruntime") as err:
        bench.run(spec(mlp, targets=("ort:cuda", "ort:tensorrt")))
    assert "perfkit[gpu]" in err.value.fix


def test_iobinding_binds_inputs_and_outputs_and_gives_the_same_answers(mlp):
    report = bench.run(spec(mlp, targets=("ort:cpu", "ort:cpu,iobinding"), variants=("ort-opt:all",), batch=(4,)))
    plain, bound = report.results[0], report.results[2]
    assert bound.target.label == "ort:cpu,iobinding" and bound.settings["io"] == "IOBinding on cpu:0"
    assert plain.settings["io"] == "host arrays"
    assert all(r.status == "ok" for r in report.results)
    assert report.results[3].accuracy[0].max_abs == report.results[1].accuracy[0].max_abs


def test_where_nodes_ran_is_read_from_a_real_profile(mlp):
    target = parse_target("ort:cpu")
    feed = {"x": __import__("numpy").ones((2, 16), "float32")}
    profile = profile_ort(mlp, target, feed)
    on_cpu = placement(profile, "CPUExecutionProvider")
    assert on_cpu.fallback == () and on_cpu.memcpy == 0 and on_cpu.nodes[0][0] == "CPU"
    # The same real profile judged as if CUDA had been asked for: every compute op is a fallback.
    as_cuda = placement(profile, "CUDAExecutionProvider")
    assert dict(as_cuda.fallback) == {o.op: o.nodes for o in profile}  # onnxruntime fused it into Gemms
    assert "compute ops left off CUDA" in as_cuda.line()


def test_a_gpu_row_says_what_its_figure_includes(mlp):
    from perfkit.core.model import Model
    from perfkit.rows import gpu_notes

    def notes_of(row, outcome):
        return gpu_notes(row, outcome, placement(outcome.profile, outcome.settings["requested"]))

    outcome = run_case(Case(mlp, Target(), ({"x": __import__("numpy").ones((1, 16), "float32")},), FAST,
                            profile=True))
    cuda_int8 = Result(model=Model(mlp, "onnx", "", ("int8-dynamic",)), target=parse_target("ort:cuda"), batch=1,
                       shapes=(), status="ok")
    notes = notes_of(cuda_int8, replace(outcome, settings={**outcome.settings, "requested": "CUDAExecutionProvider"}))
    assert any(n.startswith("placement:") and "compute ops left off CUDA" in n for n in notes)
    assert any("includes copying inputs to the device" in n for n in notes)
    assert any("no kernels for QDQ or QLinear int8 ops" in n for n in notes)
    trt = Result(model=Model(mlp, "onnx", "", ()), target=parse_target("ort:tensorrt,iobinding"), batch=1, shapes=(),
                 status="ok")
    trt_notes = notes_of(trt, outcome)
    assert any(n.startswith("TensorRT engine build:") for n in trt_notes)
    assert not any("includes copying" in n for n in trt_notes)  # IOBinding: compute only
    assert notes_of(replace(cuda_int8, target=Target()), outcome) == []  # a CPU row carries none


def test_fail_on_fallback_fails_a_gpu_row_whose_compute_ran_on_the_cpu(mlp):
    from perfkit.core.model import Model
    from perfkit.rows import finish_row

    outcome = run_case(Case(mlp, Target(), ({"x": __import__("numpy").ones((1, 16), "float32")},), FAST,
                            profile=True))
    asked_cuda = replace(outcome, settings={**outcome.settings, "requested": "CUDAExecutionProvider"},
                         providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    row = Result(model=Model(mlp, "onnx", ""), target=parse_target("ort:cuda"), batch=1, shapes=(("x", (1, 16)),),
                 status="failed")
    failed = finish_row(row, asked_cuda, None, fail_on_fallback=True)
    assert failed.status == "failed" and "compute ops ran off CUDA" in failed.reason
    warned = finish_row(row, asked_cuda, None, fail_on_fallback=False)
    assert warned.status == "ok" and any("compute ops left off CUDA" in w for w in warned.warnings)


def test_torch_cuda_native_rows_are_skipped_without_a_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() or HAS_CUDA:
        pytest.skip("this machine has CUDA")
    from tests.torch_models import tiny_cnn

    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pt")
    report = bench.run(spec(str(tmp_path / "w.pt"), factory="tests.torch_models:tiny_cnn", shapes=("x=1x3x16x16",),
                            targets=("ort:cpu", "ort:cuda"), cache_dir=str(tmp_path / "c")))
    rows = {(r.model.label, r.target.label): r for r in report.results}
    assert rows[("native:torch", "torch:cuda")].status == "skipped"
    assert "torch sees no CUDA device" in rows[("native:torch", "torch:cuda")].reason
    assert rows[("native:torch", "torch:cpu")].status == "ok"


def test_a_cuda_graph_session_copies_later_feeds_into_the_captured_buffers(mlp):
    """The replay logic, exercised on the CPU (where onnxruntime has no graphs but IOBinding works alike): a
    second feed must reuse the first binding and still give the second feed's answers."""
    import numpy as np

    from perfkit.backends.ort import OrtBackend

    graph_like = Target("ort", "cpu", modes=("cuda-graph", "iobinding"))
    session = OrtBackend().open(mlp, graph_like)
    plain = OrtBackend().open(mlp, Target())
    rng = np.random.default_rng(0)
    a, b = ({"x": rng.random((2, 16), dtype=np.float32)} for _ in range(2))
    first = session.prepare(a)
    session.bind(first)()
    second = session.prepare(b)
    assert second[0] is first[0]  # the captured binding, not a new one
    (got,) = session.run(second)
    (want,) = plain.run(plain.prepare(b))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    session.close()
    plain.close()


def test_native_backends_are_not_targets(mlp):
    with pytest.raises(PerfkitError, match="adds a native model's own rows itself"):
        spec(mlp, targets=("torch:cuda",))
