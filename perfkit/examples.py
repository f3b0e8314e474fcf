"""Small real ONNX models built in code (random weights, fixed seed): for the demo, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


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


def resnet(width: int = 32, classes: int = 1000, side: int = 224, seed: int = 0):
    """A ResNet-18-style image classifier (half width by default) as torchvision exports it: a 7x7 stem,
    four stages of two basic blocks with BatchNormalization and 1x1 projection shortcuts, average pool, dense."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def conv_bn(x, cin, cout, k, stride, name, relu=True, gain=1.0):
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)) * gain
        nodes.append(helper.make_node("Conv", [x, const(f"{name}.w", w)], [f"{name}.c"], pads=[k // 2] * 4,
                                      strides=[stride, stride], name=f"{name}.conv"))
        bn = [const(f"{name}.{p}", v) for p, v in (("g", np.ones(cout)), ("b", rng.normal(0, 0.05, cout)),
                                                   ("m", rng.normal(0, 0.05, cout)), ("v", np.ones(cout)))]
        nodes.append(helper.make_node("BatchNormalization", [f"{name}.c", *bn], [f"{name}.bn"], name=f"{name}.bn"))
        if not relu:
            return f"{name}.bn"
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.r"], name=f"{name}.relu"))
        return f"{name}.r"

    x = conv_bn("image", 3, width, 7, 2, "stem")
    nodes.append(helper.make_node("MaxPool", [x], ["pool0"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]))
    x, cin = "pool0", width
    for stage, mult in enumerate((1, 2, 4, 8)):
        cout = width * mult
        for block in range(2):
            stride = 2 if stage and not block else 1
            name = f"s{stage}b{block}"
            h = conv_bn(x, cin, cout, 3, stride, f"{name}.1")
            h = conv_bn(h, cout, cout, 3, 1, f"{name}.2", relu=False, gain=0.5)
            short = conv_bn(x, cin, cout, 1, stride, f"{name}.down", relu=False) if stride != 1 or cin != cout else x
            nodes.append(helper.make_node("Add", [h, short], [f"{name}.sum"]))
            nodes.append(helper.make_node("Relu", [f"{name}.sum"], [f"{name}.out"]))
            x, cin = f"{name}.out", cout
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", const("fc.w", rng.standard_normal((cin, classes)) / np.sqrt(cin)),
                                        const("fc.b", np.zeros(classes))], ["logits"])]
    return _model(nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, side, side])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], inits, "resnet")


def encoder(layers: int = 4, hidden: int = 768, heads: int = 12, vocab: int = 8192, max_len: int = 512,
            classes: int = 2, seed: int = 0):
    """A BERT-style text encoder as Hugging Face exports it (BERT-base width, 4 of its 12 layers by default):
    token, position and segment embeddings,
    LayerNorm, and `layers` blocks of multi-head self-attention (with the additive padding mask) and a GELU
    feed-forward, each with residual and LayerNorm; outputs the hidden states and a classifier's logits.
    Inputs input_ids, attention_mask, token_type_ids of shape (batch, sequence)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    head = hidden // heads

    def const(name, array, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def dense(x, cin, cout, name):
        w = const(f"{name}.w", rng.normal(0, 0.02, (cin, cout)))
        return node("Add", [node("MatMul", [x, w], f"{name}.mm"), const(f"{name}.b", rng.normal(0, 0.02, cout))],
                    f"{name}.out")

    def layer_norm(x, name):
        return node("LayerNormalization", [x, const(f"{name}.g", np.ones(hidden)),
                                           const(f"{name}.b", np.zeros(hidden))], name, axis=-1, epsilon=1e-12)

    const("split_heads", [0, 0, heads, head], np.int64)
    const("merge_heads", [0, 0, hidden], np.int64)
    const("one", 1.0)
    const("scale", np.sqrt(head))
    const("mask_min", -10000.0)
    # Embeddings: positions 0..S-1 come from a Shape/Slice of the input, as in exported models.
    seq = node("Gather", [node("Shape", ["input_ids"], "ids_shape"), const("axis1", 1, np.int64)], "seq_len")
    positions = node("Range", [const("zero", 0, np.int64), seq, const("step", 1, np.int64)], "positions")
    emb = node("Add", [node("Gather", [const("word_emb", rng.normal(0, 0.02, (vocab, hidden))), "input_ids"], "we"),
                       node("Gather", [const("pos_emb", rng.normal(0, 0.02, (max_len, hidden))), positions], "pe")],
               "emb_sum")
    emb = node("Add", [emb, node("Gather", [const("type_emb", rng.normal(0, 0.02, (2, hidden))), "token_type_ids"],
                                 "te")], "emb_all")
    x = layer_norm(emb, "emb_ln")
    # Additive mask (batch, 1, 1, seq): 0 where attended, -10000 where padded.
    m = node("Unsqueeze", [node("Unsqueeze", ["attention_mask", const("axis_1", [1], np.int64)], "mask_3d"),
                           const("axis_2", [2], np.int64)], "mask_4d")
    m = node("Mul", [node("Sub", ["one", node("Cast", [m], "mask_f", to=TensorProto.FLOAT)], "mask_inv"),
                     "mask_min"], "mask_add")
    for i in range(layers):
        p = f"l{i}"
        q = node("Transpose", [node("Reshape", [dense(x, hidden, hidden, f"{p}.q"), "split_heads"], f"{p}.q4")],
                 f"{p}.qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [dense(x, hidden, hidden, f"{p}.k"), "split_heads"], f"{p}.k4")],
                 f"{p}.kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [dense(x, hidden, hidden, f"{p}.v"), "split_heads"], f"{p}.v4")],
                 f"{p}.vt", perm=[0, 2, 1, 3])
        scores = node("Add", [node("Div", [node("MatMul", [q, k], f"{p}.qk"), "scale"], f"{p}.scaled"), m],
                      f"{p}.masked")
        probs = node("Softmax", [scores], f"{p}.probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"{p}.ctx")], f"{p}.ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "merge_heads"], f"{p}.ctx3")
        x = layer_norm(node("Add", [dense(ctx, hidden, hidden, f"{p}.o"), x], f"{p}.res1"), f"{p}.ln1")
        h = dense(x, hidden, 4 * hidden, f"{p}.ff1")
        erf = node("Erf", [node("Div", [h, const(f"{p}.sqrt2", np.sqrt(2.0))], f"{p}.gdiv")], f"{p}.erf")
        gelu = node("Mul", [node("Mul", [h, node("Add", [erf, "one"], f"{p}.erf1")], f"{p}.gmul"),
                            const(f"{p}.half", 0.5)], f"{p}.gelu")
        x = layer_norm(node("Add", [dense(gelu, 4 * hidden, hidden, f"{p}.ff2"), x], f"{p}.res2"), f"{p}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    first = node("Gather", [x, const("first", 0, np.int64)], "cls", axis=1)
    pooled = node("Tanh", [dense(first, hidden, hidden, "pool")], "pooled")
    nodes.append(helper.make_node("Identity", [dense(pooled, hidden, classes, "classifier")], ["logits"]))
    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
           for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden]),
               helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])]
    return _model(nodes, ids, outputs, inits, "encoder")


def small_encoder():
    """A small BERT-style encoder (2 layers, hidden 256, 4 heads): the pytest-benchmark suites' transformer,
    big enough for int8 MatMuls to pay off on a CPU (at hidden 128 they barely did: 1.05×)."""
    return encoder(layers=2, hidden=256, heads=4, vocab=1000, max_len=128)


def sklearn_pipeline(path: Path) -> Path:
    """A scaler + logistic-regression pipeline fitted on scikit-learn's bundled digits, saved with joblib
    (perfkit wrote it, so loading it with trust=True is safe)."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y), path)
    return path


# small: demo, tests, suites
BUILDERS: dict[str, Callable[[], onnx.ModelProto]] = {"cnn": cnn, "one-node": one_node, "small-encoder": small_encoder}
# the variant targets' models: benchmarks only
BENCHMARK_BUILDERS: dict[str, Callable[[], onnx.ModelProto]] = {"resnet": resnet, "encoder": encoder}


def write(name: str, folder: str | Path) -> Path:
    """Build the named example and save it as FOLDER/NAME.onnx (rebuilt every time: it takes milliseconds)."""
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if name == "sklearn-pipeline":
        return sklearn_pipeline(folder / "sklearn-pipeline.joblib")
    path = folder / f"{name}.onnx"
    onnx.save_model({**BUILDERS, **BENCHMARK_BUILDERS}[name](), path)
    return path
