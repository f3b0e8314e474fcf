"""Small real ONNX models built in code (random weights, fixed seed): for the demo, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path


def _model(nodes, inputs, outputs, initializers, name: str, opset: int = 17):
    from onnx import checker, helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="perfkit")
    model.ir_version = 8  # readable by every onnxruntime since 1.14
    checker.check_model(model)
    return model


def cnn(channels: int = 16, classes: int = 10, seed: int = 0):
    """An image classifier: two 3x3 conv+relu blocks, global average pool, a dense layer; dynamic batch."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name, *shape):
        fan_in = int(np.prod(shape[1:])) or 1
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)

    inits = [weight("w1", channels, 3, 3, 3), weight("w2", channels * 2, channels, 3, 3),
             weight("fc", channels * 2, classes), numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "fc_b"], ["logits"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], inits, "cnn")


def one_node(size: int = 64):
    """The smallest useful model: one Relu; its latency is almost all onnxruntime's per-call cost."""
    from onnx import TensorProto, helper

    return _model([helper.make_node("Relu", ["x"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", size])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", size])], [], "one_node")


BUILDERS = {"cnn": cnn, "one-node": one_node}


def write(name: str, folder: str | Path) -> Path:
    """Build the named example and save it as FOLDER/NAME.onnx (rebuilt every time: it takes milliseconds)."""
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save_model(BUILDERS[name](), path)
    return path
