from pathlib import Path

import numpy as np
import onnx
import pytest

from perfkit.core.errors import Unsupported
from perfkit.transforms.sensitivity import sensitive_nodes
from tests import models
from tests.transforms.test_quantize import build, calibration, cosine

FRAGILE = "/block/conv2.0/Conv"


def checks(n=4):
    rng = np.random.default_rng(7)
    return tuple({"image": rng.random((2, 3, 8, 8), dtype=np.float32)} for _ in range(n))


@pytest.fixture
def fragile(save):
    return save(models.fragile_conv(), "fragile.onnx")


@pytest.mark.parametrize("chain", ["int8-static:qdq,u8s8", "int8-static:qdq,s8s8,per-channel"])
def test_the_layer_int8_ruins_ranks_first(fragile, tmp_path, chain):
    variant = build(fragile, chain, tmp_path, calibration(fragile))
    ranked = sensitive_nodes(Path(fragile), Path(variant.model.path), checks())
    assert ranked[0].name == FRAGILE and ranked[0].op_type == "Conv"
    assert ranked[0].own > 0.5 and ranked[0].inherited < 0.05  # its own doing, not its input's
    assert ranked[0].sqnr_db < 6
    downstream = next(e for e in ranked if e.name == "/fc/Gemm")
    assert downstream.output > 0.5 and downstream.own < ranked[0].own / 5  # inherits the error, adds little
    assert [e.own for e in ranked] == sorted((e.own for e in ranked), reverse=True)


def test_excluding_the_most_sensitive_node_restores_accuracy(fragile, tmp_path):
    ctx = calibration(fragile)
    before = build(fragile, "int8-static:qdq,u8s8", tmp_path, ctx)
    (worst, *_) = sensitive_nodes(Path(fragile), Path(before.model.path), checks())
    after = build(fragile, f"int8-static:qdq,u8s8,exclude={worst.name}", tmp_path, ctx)
    assert cosine(fragile, after.model.path, checks()) > 0.999 > 0.9 > cosine(fragile, before.model.path, checks())
    assert worst.name not in {e.name for e in sensitive_nodes(Path(fragile), Path(after.model.path), checks())}


def test_a_model_with_its_weights_beside_it(tmp_path):
    path = tmp_path / "outside.onnx"
    onnx.save_model(models.fragile_conv(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="outside.onnx.data", size_threshold=0)
    variant = build(str(path), "int8-static:qdq", tmp_path, calibration(str(path)))
    quant = tmp_path / "quant" / "model.onnx"  # its int8 tensors are too small for onnxruntime to put outside
    quant.parent.mkdir()
    onnx.save_model(onnx.load(variant.model.path), quant, save_as_external_data=True, location="model.onnx.data",
                    size_threshold=0)
    assert sensitive_nodes(path, quant, checks())[0].name == FRAGILE


@pytest.mark.parametrize("chain", ["int8-static:qoperator", "int8-dynamic"])
def test_qoperator_and_dynamic_models_are_unsupported(fragile, tmp_path, chain):
    variant = build(fragile, chain, tmp_path, calibration(fragile))
    with pytest.raises(Unsupported, match="needs a QDQ model"):
        sensitive_nodes(Path(fragile), Path(variant.model.path), checks())


def test_a_float_model_is_unsupported(fragile):
    with pytest.raises(Unsupported, match="nothing in it is quantized"):
        sensitive_nodes(Path(fragile), Path(fragile), checks())


def test_nodes_renamed_by_pre_processing_are_named_as_the_quantized_model_has_them(save, tmp_path):
    path = save(models.mlp(), "mlp.onnx")  # pre-processing fuses each MatMul and Add into a Gemm
    variant = build(path, "int8-static:qdq", tmp_path, calibration(path))
    feeds = tuple({"x": np.random.default_rng(k).random((3, 16), dtype=np.float32)} for k in range(3))
    ranked = sensitive_nodes(Path(path), Path(variant.model.path), feeds)
    assert {e.name for e in ranked} >= {"/MatMulAddFusion", "/MatMulAddFusion_token_0"}
    assert all(0 <= e.own < 0.1 for e in ranked)
