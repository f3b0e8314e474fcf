import numpy as np
import pytest
from onnx import TensorProto, helper

from perfkit.backends import get_backend
from perfkit.backends.ort import clean_message
from perfkit.core.errors import PerfkitError
from perfkit.core.spec import Target
from tests.conftest import graph_model, tensor

ORT = get_backend("ort")


def test_session_runs_and_reports_what_ran(relu_model):
    session = ORT.open(relu_model, Target(threads=1, opt_level="basic"))
    x = np.array([[-1, 2, -3, 4]], np.float32)
    (y,) = session.run(session.prepare({"x": x}))
    assert y.tolist() == [[0, 2, 0, 4]]
    assert session.providers[0] == "CPUExecutionProvider"
    assert session.settings == {"requested": "CPUExecutionProvider", "intra_op_threads": "1", "opt_level": "basic",
                                "onnxruntime": session.settings["onnxruntime"], "io": "host arrays"}
    assert session.output_names == ("y",)


def test_missing_provider_is_named_with_those_that_exist():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    reason = ORT.unavailable(Target(device="cuda"))
    assert reason.startswith("CUDAExecutionProvider is not in this onnxruntime (available: ")
    assert "CPUExecutionProvider" in reason
    assert ORT.unavailable(Target()) is None


def test_no_kernel_is_explained(no_kernel_model):
    with pytest.raises(PerfkitError, match=r"nokernel.onnx: Acos \(opset 7\) has no CPU kernel for float64 — run the "
                                           r"float32 model \(or Cast Acos's inputs to float32\), or give a --target"):
        ORT.open(no_kernel_model, Target())


def test_a_missing_kernel_names_the_node_and_the_types_it_is_fed(save):
    import ml_dtypes

    weight = helper.make_tensor("w", TensorProto.BFLOAT16, [4, 2], np.ones(8, ml_dtypes.bfloat16).view(np.uint16)
                                .tobytes(), raw=True)
    model = graph_model([helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
                         helper.make_node("MatMul", ["xb", "w"], ["y"], name="proj")],
                        [tensor("x")], [tensor("y", TensorProto.BFLOAT16, ("batch", 2))], [weight])
    with pytest.raises(PerfkitError, match=r"bf16.onnx: MatMul node 'proj' \(opset 13\) has no CPU kernel for "
                                           r"bfloat16 \(inputs A, B\) — run the float32 model"):
        ORT.open(save(model, "bf16.onnx"), Target())


def test_a_missing_kernel_the_file_cannot_explain_keeps_the_general_words():
    from perfkit.backends.ort import explain_load_error

    exc = RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for ReduceMax(13) "
                       "node with name ''")  # a node of a function body: not in the file
    assert explain_load_error(exc, "CPUExecutionProvider", "") == (
        "no onnxruntime kernel for ReduceMax (opset 13) on CPUExecutionProvider with these types",
        "try another --target, or re-export with ops and types this provider supports")


def test_unknown_domain_is_explained(save):
    model = graph_model([helper.make_node("Foo", ["x"], ["y"], domain="com.nope")], [tensor("x")], [tensor("y")],
                        domains=[("com.nope", 1)])
    with pytest.raises(PerfkitError, match="op com.nope:Foo is unknown to onnxruntime"):
        ORT.open(save(model), Target())


def test_bfloat16_inputs_and_outputs_run(save):
    import ml_dtypes

    model = graph_model([helper.make_node("Identity", ["x"], ["y"])], [tensor("x", TensorProto.BFLOAT16, [2])],
                        [tensor("y", TensorProto.BFLOAT16, [2])], opset=21)
    session = ORT.open(save(model), Target())
    (out,) = session.run(session.prepare({"x": np.array([1.5, 2], ml_dtypes.bfloat16)}))
    assert out.data_type() == "tensor(bfloat16)" and out.shape() == [2]  # an OrtValue: numpy has no bfloat16


def test_unknown_backend():
    with pytest.raises(PerfkitError, match="unknown backend"):
        get_backend("tvm")


def test_messages_lose_their_cpp_noise():
    exc = RuntimeError("[ONNXRuntimeError] : 1 : FAIL : /src/x.h:46 void f(int) Opset 99 is under development.")
    assert clean_message(exc) == "Opset 99 is under development."


def test_a_nested_onnxruntime_error_reads_as_its_reason_without_cpp_locations():
    from perfkit.backends.ort import clean_message

    text = ("[ONNXRuntimeError] : 1 : FAIL : Exception during initialization: /onnxruntime_src/onnxruntime/core/graph/"
            "graph_utils.cc:479 onnxruntime::NodeArg& onnxruntime::graph_utils::AddInitializerWithOrtValue("
            "onnxruntime::Graph&, const onnx::TensorProto&, onnxruntime::Tensor&&) [ONNXRuntimeError] : 1 : FAIL : "
            "graph.cc:4164 AddInitializedOrtValue Attempt to replace the existing tensor")
    assert clean_message(RuntimeError(text)) == ("Exception during initialization: Attempt to replace the existing "
                                                 "tensor")


def test_a_newer_ir_version_and_an_opset_older_than_onnxruntime_say_what_to_do(tmp_path):
    import onnx

    from tests.models import mlp

    newer, older = mlp(), mlp()
    newer.ir_version = 99
    older.opset_import[0].version = 6
    onnx.save(newer, tmp_path / "newer.onnx")
    onnx.save(older, tmp_path / "older.onnx")
    with pytest.raises(PerfkitError, match=r"newer.onnx: IR version 99 is newer than this onnxruntime reads \(≤ \d+\) "
                                           r"— upgrade onnxruntime, or set model.ir_version = \d+"):
        ORT.open(str(tmp_path / "newer.onnx"), Target())
    with pytest.raises(PerfkitError, match=r"older.onnx: no onnxruntime kernel for \w+ at opset 6: onnxruntime runs "
                                           r"opset 7 and later — pass --upgrade-opset \(onnx.version_converter "
                                           r"upgrades it to opset 13, in perfkit's cache\)"):
        ORT.open(str(tmp_path / "older.onnx"), Target())
