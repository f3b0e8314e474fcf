"""Functions a spawned worker runs in test_isolate (they must be importable by name)."""

import os
import time

from perfkit.core.errors import PerfkitError


def double(x):
    return 2 * x


def chatty(x):
    print("Collecting tensor data and making histogram ...", flush=True)
    os.write(1, b"and from C\n")
    return x


def abort(*_):
    os.abort()


def hang(*_):
    time.sleep(60)


def raise_value_error(_):
    raise ValueError("bad\nthing")


def raise_user_error(_):
    raise PerfkitError("m.onnx", "broken", "fix it")


def copy_model(src, dst, options, ctx):
    import shutil

    shutil.copyfile(src, dst)
    return ["copied"]


def endless_loop(src, dst, options, ctx):
    """A transform whose model never finishes a call: y = x after 2**62 turns of an empty Loop."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(src)
    x, y = model.graph.input[0], model.graph.output[0]
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Identity", ["v"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []), helper.make_empty_tensor_value_info("v")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_empty_tensor_value_info("v_out")])
    trips = helper.make_tensor("trips", TensorProto.INT64, [], [2**62])
    keep = helper.make_tensor("keep", TensorProto.BOOL, [], [True])
    loop = helper.make_node("Loop", ["trips", "keep", x.name], [y.name], body=body)
    graph = helper.make_graph([loop], "endless", [x], [y], [trips, keep])
    out = helper.make_model(graph, opset_imports=model.opset_import)
    out.ir_version = model.ir_version
    onnx.save_model(out, dst)
    return ["loops for ever"]


def unsupported(_):
    from perfkit.core.errors import Unsupported

    raise Unsupported("not on this machine")


def name_missing_data(src, dst, options, ctx):
    """A transform whose output says its weights are in a file that nobody wrote."""
    import onnx
    from onnx.external_data_helper import set_external_data

    proto = onnx.load(str(src))
    set_external_data(proto.graph.initializer[0], location="nowhere.data")
    proto.graph.initializer[0].ClearField("raw_data")
    onnx.save_model(proto, str(dst))
    return []


def write_type_error(src, dst, options, ctx):
    """A transform that writes a model whose Add mixes int32 and float32, as a quantizer once did."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    bias = numpy_helper.from_array(__import__("numpy").zeros(4, "int32"), "bias_quantized")
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias_quantized"], ["y"], name="Add_quant")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [bias])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(dst))
    return []


def litter(src, dst, options, ctx):
    """A transform that leaves a temporary file in the working folder, as symbolic shape inference does."""
    import shutil
    from pathlib import Path

    Path("sym_shape_infer_temp.onnx").write_text("left behind")
    shutil.copyfile(src, dst)
    return []
