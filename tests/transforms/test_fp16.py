import numpy as np
import onnx
import onnxruntime as ort
import pytest

from perfkit.analysis.accuracy import parse_budget
from perfkit.core.errors import CaseFailed
from perfkit.core.records import Outputs
from perfkit.files.onnx_file import op_histogram, open_onnx
from perfkit.transforms import BuildContext, parse_chain
from perfkit.transforms.cache import build_chain
from perfkit.transforms.fp16 import run_node_by_node
from tests import models


def context(path, rng, shape=(8, 4), budget="cos>=0.999", name="x"):
    feeds = tuple({name: rng.random(shape, dtype=np.float32)} for _ in range(3))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = Outputs(tuple(o.name for o in session.get_outputs()), tuple(session.run(None, f) for f in feeds))
    return BuildContext(check_feeds=feeds, reference=outputs, budget=parse_budget(budget))


def fp16(path, chain, ctx, tmp_path):
    return build_chain(open_onnx(path)[0], parse_chain(chain), ctx, str(tmp_path / "cache"), 120, isolate=False)


def test_overflow_is_found_node_by_node_and_repaired(save, rng, tmp_path):
    path = save(models.overflow())
    ctx = context(path, rng)
    broken = fp16(path, "fp16:repair=false", ctx, tmp_path)
    assert any("broken: non-finite outputs computed in fp16" in n for n in broken.notes)
    repaired = fp16(path, "fp16", ctx, tmp_path)
    assert any("kept 2 node(s) in fp32 to repair it: Div_2, Mul_1" in n for n in repaired.notes)
    assert not any("still broken" in n for n in repaired.notes)
    x = {"x": np.full((1, 4), 0.99, np.float32)}  # (297)^2 = 88209 > 65504
    (got,) = ort.InferenceSession(repaired.model.path).run(None, x)
    assert np.allclose(got, 297.0**2 / 1000, rtol=1e-3)


def test_precision_loss_over_budget_keeps_the_region_in_fp32(save, rng, tmp_path):
    path = save(models.large_constant())
    repaired = fp16(path, "fp16", context(path, rng), tmp_path)
    assert any("kept 2 node(s) in fp32 to repair it: Add_0, Sub_1" in n for n in repaired.notes), repaired.notes


def test_a_sound_model_is_converted_whole_with_io_kept(save, rng, tmp_path):
    path = save(models.conv(), "conv.onnx")
    ctx = context(path, rng, shape=(2, 3, 8, 8), name="image")
    variant = fp16(path, "fp16", ctx, tmp_path)
    assert variant.notes == ("fp16: converted with onnxconverter-common",)
    proto = onnx.load(variant.model.path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert op_histogram(proto)["Cast"] == 2


def test_user_blocks_and_fp16_io(save, rng, tmp_path):
    path = save(models.mlp(), "mlp.onnx")
    ctx = BuildContext(check_feeds=({"x": rng.random((2, 16), dtype=np.float32)},))
    variant = fp16(path, "fp16:block=Relu,keep-io=false", ctx, tmp_path)
    proto = onnx.load(variant.model.path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    relu = next(n for n in proto.graph.node if n.op_type == "Relu")
    producer = {o: n for n in proto.graph.node for o in n.output}[relu.input[0]]
    assert producer.op_type == "Cast"  # the blocked Relu runs in fp32 between casts


def test_node_by_node_rounds_between_nodes(save):
    from perfkit.transforms.fp16 import name_nodes, to_fp16

    model = models.overflow()
    name_nodes(model)
    half = to_fp16(model, "occ", True, (), [])
    values = run_node_by_node(half, ({"x": np.full((1, 4), 0.99, np.float32)},))
    assert np.isinf(values["sq"][0]).all() and np.isinf(values["y"][0]).all()
    # The whole-graph CPU run computes the same fp16 model in fp32 inside and hides the overflow.
    (whole,) = ort.InferenceSession(half.SerializeToString()).run(None, {"x": np.full((1, 4), 0.99, np.float32)})
    assert np.isfinite(whole).all()


@pytest.mark.parametrize("engine", ["occ", "ort"])
def test_both_engines_convert(save, rng, tmp_path, engine):
    path = save(models.mlp(), "mlp.onnx")
    ctx = BuildContext(check_feeds=({"x": rng.random((2, 16), dtype=np.float32)},))
    variant = fp16(path, f"fp16:engine={engine}", ctx, tmp_path)
    assert ("onnxruntime.transformers" if engine == "ort" else "onnxconverter-common") in variant.notes[0]


def test_a_type_error_at_load_names_the_node_to_keep_in_fp32(save, rng, tmp_path):
    """onnxconverter-common retypes a Cast(to=float)'s output as fp16 but keeps its `to`: onnxruntime refuses
    the model, naming the node; keeping that node in fp32 repairs it."""
    path = save(models.attention(), "attn.onnx")
    feeds = tuple({"input_ids": rng.integers(0, 16, (2, 5)), "attention_mask": np.ones((2, 5), np.int64)}
                  for _ in range(2))
    session = ort.InferenceSession(path)
    outputs = Outputs(tuple(o.name for o in session.get_outputs()), tuple(session.run(None, f) for f in feeds))
    ctx = BuildContext(check_feeds=feeds, reference=outputs, budget=parse_budget("cos>=0.99"))
    with pytest.raises(CaseFailed, match=r"fp16:repair=false: onnxruntime cannot load what it wrote: Type Error.*"
                                         r"node \(Cast_3\)"):  # unrepaired, it is a variant that cannot be built
        fp16(path, "fp16:repair=false", ctx, tmp_path)
    repaired = fp16(path, "fp16", ctx, tmp_path)
    assert any("kept 1 node(s) in fp32 to repair it: Cast_3" in n for n in repaired.notes), repaired.notes
    (out,) = ort.InferenceSession(repaired.model.path).run(None, feeds[0])
    assert np.isfinite(out).all()
