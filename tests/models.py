"""Tiny real models for the transform and variant tests, built with onnx.helper (fixed seeds)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import graph_model, tensor


def const(name, array, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(array, dtype), name)


def mlp(features=16, hidden=32, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    inits = [const("w1", rng.standard_normal((features, hidden)) / 4), const("b1", np.zeros(hidden)),
             const("w2", rng.standard_normal((hidden, classes)) / 6), const("b2", np.zeros(classes))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["o"]),
             helper.make_node("Add", ["o", "b2"], ["logits"])]
    return graph_model(nodes, [tensor("x", shape=("batch", features))],
                       [tensor("logits", shape=("batch", classes))], inits)


def conv(channels=8, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    inits = [const("w1", rng.standard_normal((channels, 3, 3, 3)) / 5),
             const("w2", rng.standard_normal((channels, channels, 3, 3)) / 8),
             const("fc", rng.standard_normal((channels, classes)) / 3), const("fc_b", np.zeros(classes))]
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1] * 4),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc", "fc_b"], ["logits"])]
    return graph_model(nodes, [tensor("image", shape=("batch", 3, 8, 8))],
                       [tensor("logits", shape=("batch", classes))], inits)


def attention(hidden=8, heads=2, seed=0):
    """One post-LN self-attention block over embeddings, in the layout BERT exports have."""
    rng = np.random.default_rng(seed)
    d = hidden // heads
    inits = [const("emb", rng.normal(0, 0.5, (16, hidden))), const("split", [0, 0, heads, d], np.int64),
             const("merge", [0, 0, hidden], np.int64), const("scale", np.sqrt(d)), const("one", 1.0),
             const("neg", -10000.0), const("ax1", [1], np.int64), const("ax2", [2], np.int64),
             const("g", np.ones(hidden)), const("b", np.zeros(hidden))]
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["x"]),
             helper.make_node("Unsqueeze", ["attention_mask", "ax1"], ["m3"]),
             helper.make_node("Unsqueeze", ["m3", "ax2"], ["m4"]),
             helper.make_node("Cast", ["m4"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Sub", ["one", "mf"], ["minv"]), helper.make_node("Mul", ["minv", "neg"], ["madd"])]
    for name, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        inits += [const(f"w{name}", rng.normal(0, 0.3, (hidden, hidden))), const(f"b{name}", np.zeros(hidden))]
        nodes += [helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}m"]),
                  helper.make_node("Add", [f"{name}m", f"b{name}"], [f"{name}a"]),
                  helper.make_node("Reshape", [f"{name}a", "split"], [f"{name}r"]),
                  helper.make_node("Transpose", [f"{name}r"], [f"{name}t"], perm=perm)]
    inits += [const("wo", rng.normal(0, 0.3, (hidden, hidden))), const("bo", np.zeros(hidden))]
    nodes += [helper.make_node("MatMul", ["qt", "kt"], ["qk"]), helper.make_node("Div", ["qk", "scale"], ["qks"]),
              helper.make_node("Add", ["qks", "madd"], ["qkm"]), helper.make_node("Softmax", ["qkm"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vt"], ["ctx"]),
              helper.make_node("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ctxt", "merge"], ["ctx3"]),
              helper.make_node("MatMul", ["ctx3", "wo"], ["om"]), helper.make_node("Add", ["om", "bo"], ["oa"]),
              helper.make_node("Add", ["oa", "x"], ["res"]),
              helper.make_node("LayerNormalization", ["res", "g", "b"], ["hidden_states"], axis=-1)]
    ids = [tensor(n, TensorProto.INT64, ("batch", "sequence")) for n in ("input_ids", "attention_mask")]
    return graph_model(nodes, ids, [tensor("hidden_states", shape=("batch", "sequence", hidden))], inits)


def overflow():
    """y = relu((300 x)^2 / 1000): finite in fp32, but (300 x)^2 passes fp16's 65504 for x > 0.85."""
    inits = [const("k", 300.0), const("d", 1000.0)]
    nodes = [helper.make_node("Mul", ["x", "k"], ["a"]), helper.make_node("Mul", ["a", "a"], ["sq"]),
             helper.make_node("Div", ["sq", "d"], ["q"]), helper.make_node("Relu", ["q"], ["y"])]
    return graph_model(nodes, [tensor("x")], [tensor("y")], inits)


def large_constant():
    """y = x * 1e5 / 1e5 + x: fp16 conversion clamps both constants to 1e4, which still divides out; the
    single Mul by 3e4 then Sub 3e4 loses all of x's digits in fp16."""
    inits = [const("big", 30000.0)]
    nodes = [helper.make_node("Add", ["x", "big"], ["shifted"]), helper.make_node("Sub", ["shifted", "big"], ["y"])]
    return graph_model(nodes, [tensor("x")], [tensor("y")], inits)


def fragile_conv(channels=8, classes=5, seed=0):
    """A CNN whose second Conv (`/block/conv2.0/Conv`) int8 ruins: its weights from input channel 0, which the
    first Conv's Relu always zeroes, are 400 times the others, so they set its weight scale and every other
    weight rounds to zero, while the float model never sees them."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((channels, 3, 3, 3)) / 5
    w1[0] = 0  # channel 0 is relu(0 - 1) = 0 everywhere
    w2 = rng.standard_normal((channels, channels, 3, 3)) / 8
    w2[:, 0] = 50.0
    inits = [const("w1", w1), const("b1", np.eye(1, channels)[0] * -1.0), const("w2", w2),
             const("fc", rng.standard_normal((channels, classes)) / 3), const("fc_b", np.zeros(classes))]
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1] * 4, name="/stem/conv1/Conv"),
             helper.make_node("Relu", ["c1"], ["r1"], name="/stem/relu/Relu"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1] * 4, name="/block/conv2.0/Conv"),
             helper.make_node("Relu", ["c2"], ["r2"], name="/block/relu/Relu"),
             helper.make_node("GlobalAveragePool", ["r2"], ["pool"], name="/pool/GlobalAveragePool"),
             helper.make_node("Flatten", ["pool"], ["flat"], name="/Flatten"),
             helper.make_node("Gemm", ["flat", "fc", "fc_b"], ["logits"], name="/fc/Gemm")]
    return graph_model(nodes, [tensor("image", shape=("batch", 3, 8, 8))],
                       [tensor("logits", shape=("batch", classes))], inits)


def classifier(features=8, classes=6, seed=0):
    """Class probabilities from one Gemm and a Softmax: the smallest model with a task to judge on labels."""
    rng = np.random.default_rng(seed)
    inits = [const("w", rng.standard_normal((features, classes))), const("b", np.zeros(classes))]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1)]
    return graph_model(nodes, [tensor("x", shape=("batch", features))],
                       [tensor("probabilities", shape=("batch", classes))], inits)


BN_SCALE, BN_BIAS, BN_MEAN, BN_VAR = [1.0, 2.0, 0.5], [0.0, 0.1, -0.1], [0.2, 0.0, 0.1], [1.0, 0.5, 2.0]


def old_batchnorm(opset=6):
    """BatchNormalization then Relu at opset 6: onnxruntime has no kernel for BatchNormalization(6)."""
    inits = [const(n, v) for n, v in (("s", BN_SCALE), ("b", BN_BIAS), ("m", BN_MEAN), ("v", BN_VAR))]
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"], is_test=1, epsilon=1e-5),
             helper.make_node("Relu", ["bn"], ["y"])]
    graph = helper.make_graph(nodes, "old", [tensor("x", shape=("N", 3, 2, 2))], [tensor("y", shape=("N", 3, 2, 2))],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=4)


def fp16_mlp(features=16, seed=0):
    """A MatMul on float16 inputs and weights: a model as given that computes in fp16."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    return graph_model(nodes, [tensor("x", TensorProto.FLOAT16, ("batch", features))],
                       [tensor("y", TensorProto.FLOAT16, ("batch", features))],
                       [const("w", rng.standard_normal((features, features)) / 4, np.float16)])
