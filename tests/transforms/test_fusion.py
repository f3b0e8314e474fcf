import numpy as np
import onnx
import onnxruntime as ort
import pytest

from perfkit.core.errors import Unsupported
from perfkit.files.onnx_file import op_histogram, open_onnx
from perfkit.transforms import BuildContext, parse_chain
from perfkit.transforms.cache import build_chain
from perfkit.transforms.fusion import detect_model_type, infer_heads_and_hidden
from tests import models


def build(path, chain, tmp_path):
    return build_chain(open_onnx(path)[0], parse_chain(chain), BuildContext(), str(tmp_path / "c"), 120,
                       isolate=False)


def test_fusion_detects_bert_and_fuses_attention(save, tmp_path):
    path = save(models.attention(), "attn.onnx")
    proto = onnx.load(path)
    assert detect_model_type(proto) == "bert" and infer_heads_and_hidden(proto) == (2, 8)
    fused = build(path, "fusion", tmp_path)
    ops = op_histogram(onnx.load(fused.model.path))
    assert ops["com.microsoft:Attention"] == 1 and "Softmax" not in ops
    assert any("fused" in n and "Attention" in n for n in fused.notes)
    feed = {"input_ids": np.array([[1, 2, 3, 4]]), "attention_mask": np.ones((1, 4), np.int64)}
    want = ort.InferenceSession(path).run(None, feed)[0]
    got = ort.InferenceSession(fused.model.path).run(None, feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_fusion_of_a_graph_without_attention_is_unsupported(save, tmp_path):
    with pytest.raises(Unsupported, match="no attention"):
        build(save(models.conv(), "conv.onnx"), "fusion", tmp_path)


def test_fusion_with_a_model_type_given_runs_on_whatever_matches(save, tmp_path):
    fused = build(save(models.mlp(), "mlp.onnx"), "fusion:model_type=bert", tmp_path)
    assert any("nothing was fused" in n for n in fused.notes)
