import numpy as np
import onnxruntime as ort
import pytest

from perfkit.core.errors import CaseFailed, Unsupported
from perfkit.core.spec import Workload
from perfkit.files.onnx_file import op_histogram, open_onnx, read_signature
from perfkit.measure.workload import calibration_feeds, read_samples, resolve_shapes
from perfkit.transforms import BuildContext, parse_chain
from perfkit.transforms.cache import build_chain
from tests import models


def build(path, chain, tmp_path, ctx=None):
    base = open_onnx(path)[0]
    return build_chain(base, parse_chain(chain), ctx or BuildContext(), str(tmp_path / "cache"), 120, isolate=False)


def run(path, feed):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)


def cosine(float_path, quant_path, feeds):
    """Cosine of the quantized model's first output against the float model's, over all feeds."""
    want = np.concatenate([run(float_path, f)[0].ravel() for f in feeds]).astype(np.float64)
    got = np.concatenate([run(quant_path, f)[0].ravel() for f in feeds]).astype(np.float64)
    return float(want @ got / np.linalg.norm(want) / np.linalg.norm(got))


def calibration(path, seed=0):
    _, proto = open_onnx(path)
    sig = read_signature(proto)
    made = calibration_feeds(sig, resolve_shapes(sig, Workload(batch=4), path), None, seed, skip=8)
    return BuildContext(calibration=made.feeds, calibration_source=made.source)


@pytest.fixture
def mlp(save):
    return save(models.mlp(), "mlp.onnx")


@pytest.fixture
def conv(save):
    return save(models.conv(), "conv.onnx")


def test_dynamic_quantizes_matmuls_and_stays_close(mlp, tmp_path, rng):
    for chain, weight_ops in (("int8-dynamic", {"MatMulInteger", "DynamicQuantizeLinear"}),
                              ("int8-dynamic:quint8,per-channel,reduce-range", {"MatMulInteger"})):
        variant = build(mlp, chain, tmp_path)
        ops = op_histogram(__import__("onnx").load(variant.model.path))
        assert weight_ops <= set(ops), chain
        x = rng.random((3, 16), dtype=np.float32)
        (want,), (got,) = run(mlp, {"x": x}), run(variant.model.path, {"x": x})
        assert np.abs(want - got).max() < 0.05 * np.abs(want).max()


def test_static_qdq_and_qoperator_formats(conv, tmp_path, rng):
    ctx = calibration(conv)
    qdq = build(conv, "int8-static:qdq,u8s8,per-channel", tmp_path, ctx)
    qop = build(conv, "int8-static:qoperator,s8s8,calibrate=percentile", tmp_path, ctx)
    import onnx

    qdq_ops, qop_ops = op_histogram(onnx.load(qdq.model.path)), op_histogram(onnx.load(qop.model.path))
    assert qdq_ops["QuantizeLinear"] >= 2 and qdq_ops["DequantizeLinear"] >= 2 and "QLinearConv" not in qdq_ops
    assert qop_ops["QLinearConv"] == 2
    assert any("calibrated on 32 synthetic samples (seed 0)" in n for n in qdq.notes)
    x = rng.random((2, 3, 8, 8), dtype=np.float32)
    (want,) = run(conv, {"image": x})
    for v in (qdq, qop):
        (got,) = run(v.model.path, {"image": x})
        cos = float(np.dot(want.ravel(), got.ravel()) / np.linalg.norm(want) / np.linalg.norm(got))
        assert cos > 0.99, v.model.label


def test_calibration_data_from_a_file(conv, tmp_path, rng):
    _, proto = open_onnx(conv)
    sig = read_signature(proto)
    path = tmp_path / "cal.npz"
    np.savez(path, image=rng.random((20, 3, 8, 8), dtype=np.float32))
    shapes = resolve_shapes(sig, Workload(batch=1), conv)
    made = calibration_feeds(sig, shapes, read_samples(str(path), sig, hold_out=False), 0, skip=8)
    feeds, source = made.feeds, made.source
    assert [len(f["image"]) for f in feeds] == [5, 5, 5, 5]  # a free batch: calls of one size, up to 8
    assert source.startswith(f"{path} (20 of 20 samples, sha256 ")
    held_back = calibration_feeds(sig, shapes, read_samples(str(path), sig), 0, skip=8)
    assert [len(f["image"]) for f in held_back.feeds] == [5, 5, 5] and held_back.source.startswith(f"{path} (15 of 20")
    variant = build(conv, "int8-static", tmp_path, BuildContext(calibration=feeds, calibration_source=source))
    assert any(str(path) in n for n in variant.notes)


def test_synthetic_calibration_never_reuses_the_check_feeds(conv):
    _, proto = open_onnx(conv)
    sig = read_signature(proto)
    shapes = resolve_shapes(sig, Workload(batch=1), conv)
    feeds = calibration_feeds(sig, shapes, None, 0, skip=8).feeds
    from perfkit.measure.workload import synthesize

    checks = synthesize(sig, shapes, 0, 8)
    assert len(feeds) == 32 and not any(np.array_equal(f["image"], c["image"]) for f in feeds for c in checks)


def test_static_without_calibration_is_unsupported(conv, tmp_path):
    with pytest.raises(Unsupported, match="needs calibration data"):
        build(conv, "int8-static", tmp_path)


def test_a_model_with_nothing_to_quantize_says_so(relu_model, tmp_path):
    variant = build(relu_model, "int8-dynamic", tmp_path)
    assert any("nothing was quantized" in n for n in variant.notes)


def shared_bias_model():
    """Two Convs on one bias initializer, as the TorchScript exporter merges identical fresh biases."""
    from onnx import helper

    from tests.conftest import graph_model, tensor

    rng = np.random.default_rng(0)
    inits = [models.const("w1", rng.standard_normal((4, 3, 3, 3)) / 4),
             models.const("w2", rng.standard_normal((4, 4, 1, 1)) / 2), models.const("b0", np.full(4, 0.1))]
    nodes = [helper.make_node("Conv", ["image", "w1", "b0"], ["c1"]), helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b0"], ["logits"])]
    return graph_model(nodes, [tensor("image", shape=("batch", 3, 8, 8))], [tensor("logits", shape=("batch", 4, 6, 6))],
                       inits)


def test_a_bias_shared_by_several_ops_gets_a_copy_per_use_before_quantizing(save, tmp_path):
    import onnx

    from perfkit.transforms.quantize import unshare_biases

    path = save(shared_bias_model(), "shared.onnx")
    out, notes = unshare_biases(tmp_path / "shared.onnx", tmp_path, large=False)
    uses = [i for n in onnx.load(str(out)).graph.node for i in n.input if i.startswith("b0")]
    assert uses == ["b0", "b0_use0"] and "gave 1 op(s) their own copy" in notes[0]
    x = {"image": np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)}
    np.testing.assert_allclose(run(str(out), x)[0], run(path, x)[0], rtol=1e-6)
    variant = build_chain(open_onnx(path)[0], parse_chain("int8-static:qoperator,u8s8,per-channel"),
                          calibration(path), str(tmp_path / "c"), 120, isolate=False)
    assert np.corrcoef(run(variant.model.path, x)[0].ravel(), run(path, x)[0].ravel())[0, 1] > 0.99
    assert unshare_biases(out, tmp_path, large=False) == (out, [])  # nothing shared: left as it is


def quantized_weights(proto, node_name):
    """A node's inputs that are int8 initializers dequantized: none when the node runs in float."""
    initializers = {t.name for t in proto.graph.initializer}
    weights = {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers}
    return [i for i in next(n for n in proto.graph.node if n.name == node_name).input if i in weights]


def test_excluded_nodes_stay_in_float(save, tmp_path):
    import onnx

    path = save(models.fragile_conv(), "fragile.onnx")
    ctx = calibration(path)
    qdq = onnx.load(build(path, "int8-static:qdq,exclude=/block/conv2.0/Conv", tmp_path, ctx).model.path)
    assert quantized_weights(qdq, "/block/conv2.0/Conv") == []
    assert quantized_weights(qdq, "/stem/conv1/Conv")  # the others are still quantized
    qop = op_histogram(onnx.load(build(path, "int8-static:qoperator,exclude=/block/conv2.0/Conv", tmp_path,
                                       ctx).model.path))
    assert qop["QLinearConv"] == 1 and qop["Conv"] == 1


def test_dynamic_excludes_by_the_pre_processed_name(mlp, tmp_path):
    import onnx

    whole = op_histogram(onnx.load(build(mlp, "int8-dynamic", tmp_path).model.path))
    # pre-processing fuses the first MatMul and its Add into the Gemm named /MatMulAddFusion
    part = op_histogram(onnx.load(build(mlp, "int8-dynamic:exclude=/MatMulAddFusion", tmp_path).model.path))
    # the dynamic quantizer splits every Gemm into MatMul and Add; the excluded one stays a float MatMul
    assert part["MatMulInteger"] == whole["MatMulInteger"] - 1 and part["MatMul"] == 1


def test_unnamed_nodes_get_names_that_exclude_takes(conv, tmp_path):
    import onnx

    named = build(conv, "int8-static:qdq,exclude=Conv_2", tmp_path, calibration(conv))
    assert quantized_weights(onnx.load(named.model.path), "Conv_2") == []


def test_an_unknown_node_is_named_in_one_line(conv, tmp_path):
    with pytest.raises(CaseFailed, match=r"exclude=/no/such\.Conv: no node of that name .* e\.g\. Conv_0, Conv_2"):
        build(conv, "int8-static:exclude=/no/such.Conv", tmp_path, calibration(conv))
