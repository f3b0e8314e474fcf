import numpy as np
from onnx import TensorProto, helper, numpy_helper

from perfkit.files.onnx_types import fp16_compute, kernel_inputs
from tests.conftest import graph_model, tensor


def _matmul(dtype, weight_dtype=None, cast_to=None):
    """x → [Cast] → MatMul(w) → y; with `cast_to` the MatMul's input type is known only by inference."""
    w = numpy_helper.from_array(np.ones((4, 2), weight_dtype or dtype), "w")
    nodes = [helper.make_node("Cast", ["x"], ["xc"], to=cast_to)] if cast_to else []
    nodes.append(helper.make_node("MatMul", ["xc" if cast_to else "x", "w"], ["y"], name="proj"))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return graph_model(nodes, [tensor("x", elem, ("batch", 4))], [tensor("y", cast_to or elem, ("batch", 2))], [w])


def test_a_model_fed_float16_computes_in_float16():
    assert fp16_compute(_matmul(np.float16)) == ("MatMul",)


def test_float16_weights_behind_a_cast_of_float32_inputs_still_compute_in_float16():
    assert fp16_compute(_matmul(np.float32, np.float16, cast_to=TensorProto.FLOAT16)) == ("MatMul",)


def test_a_float32_model_does_not():
    assert fp16_compute(_matmul(np.float32)) == ()


def test_float16_outside_the_compute_ops_does_not_count():
    model = graph_model([helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
                         helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)], [tensor("x")], [tensor("y")])
    assert fp16_compute(model) == ()


def test_a_nodes_input_types_are_named_by_the_ops_own_input_names(save):
    path = save(_matmul(np.float32, np.float64, cast_to=TensorProto.DOUBLE))
    assert kernel_inputs(path, "MatMul", "proj") == "float64 (inputs A, B)"  # A's type comes from inference
    assert kernel_inputs(path, "MatMul", "other") == ""  # a node the file does not hold: nothing to say
