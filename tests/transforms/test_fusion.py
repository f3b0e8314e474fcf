import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from perfkit.core.errors import Unsupported
from perfkit.files.onnx_file import op_histogram, open_onnx
from perfkit.transforms import BuildContext, parse_chain
from perfkit.transforms.cache import build_chain
from perfkit.transforms.fusion import (
    Found,
    detect_model_type,
    failure_hint,
    infer_heads_and_hidden,
    is_causal_mask,
    read_hf_config,
    resolve,
)
from tests import models

AUTO = {"model_type": "auto", "num_heads": "0", "hidden_size": "0"}


def build(path, chain, tmp_path):
    return build_chain(open_onnx(path)[0], parse_chain(chain), BuildContext(), str(tmp_path / "c"), 120,
                       isolate=False)


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def outputs(path, feed):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


def test_fusion_detects_bert_and_fuses_attention(save, tmp_path):
    path = save(models.attention(), "attn.onnx")
    proto = onnx.load(path)
    assert detect_model_type(proto) == "bert" and infer_heads_and_hidden(proto) == (2, 8)
    fused = build(path, "fusion", tmp_path)
    ops = op_histogram(onnx.load(fused.model.path))
    assert ops["com.microsoft:Attention"] == 1 and "Softmax" not in ops
    assert any("fused" in n and "Attention" in n for n in fused.notes)
    feed = {"input_ids": np.array([[1, 2, 3, 4]]), "attention_mask": np.ones((1, 4), np.int64)}
    np.testing.assert_allclose(outputs(fused.model.path, feed), outputs(path, feed), rtol=1e-3, atol=1e-4)


def test_fusion_of_a_graph_without_attention_is_unsupported(save, tmp_path):
    with pytest.raises(Unsupported, match="no attention"):
        build(save(models.conv(), "conv.onnx"), "fusion", tmp_path)


def test_fusion_that_cannot_read_the_heads_names_the_option(save, tmp_path):
    with pytest.raises(Unsupported, match=r"cannot read the number of attention heads .* fusion:num_heads="):
        build(save(models.mlp(), "mlp.onnx"), "fusion:model_type=bert", tmp_path)


def test_fusion_that_fuses_nothing_is_a_skipped_row_naming_the_patterns(save, tmp_path):
    with pytest.raises(Unsupported, match="fusion fused nothing for bert .*Attention"):
        build(save(models.mlp(), "mlp.onnx"), "fusion:model_type=bert,num_heads=2,hidden_size=32", tmp_path)


def test_a_config_json_gives_type_heads_and_hidden_over_the_graph():
    config = {"model_type": "roberta", "num_attention_heads": 12, "hidden_size": 768}
    found = resolve(models.attention(), AUTO, config)
    assert (found.model_type, found.heads, found.hidden, found.source) == ("bert", 12, 768, "config.json")


def test_the_config_json_beside_the_model_the_user_gave_is_read(tmp_path):
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_head": 4}))
    ctx = BuildContext(source=str(tmp_path / "given" / "model.onnx"))
    assert read_hf_config(tmp_path / "cache" / "model.onnx", ctx)["n_head"] == 4
    assert read_hf_config(tmp_path / "cache" / "model.onnx", BuildContext()) == {}


def test_a_causal_mask_is_lower_triangular_boolean_or_very_negative_above_the_diagonal():
    keep = np.tril(np.ones((4, 4), bool))[None, None]
    assert is_causal_mask(keep) and is_causal_mask(~keep)
    assert is_causal_mask(np.where(keep, 0, -np.inf).astype(np.float32))
    assert is_causal_mask(np.where(keep, 0, np.finfo(np.float16).min).astype(np.float16))
    assert not is_causal_mask(np.zeros((2, 1, 4, 4), np.float32))  # BERT's folded all-keep mask
    assert not is_causal_mask(np.where(keep, 0, -1.0)) and not is_causal_mask(np.ones((4, 4), bool))
    assert not is_causal_mask(np.zeros((4, 3), np.float32)) and not is_causal_mask(None)


def test_a_failure_with_values_read_from_the_graph_blames_the_patterns_not_the_values():
    found = Found("gpt2", "gpt2", 2, 8, "the graph")
    assert "gpt2 patterns fail on this graph" in failure_hint(found, AUTO, models.attention())
    given = {**AUTO, "num_heads": "2"}
    assert "if those are wrong" in failure_hint(found, given, models.attention())
    assert "if those are wrong" in failure_hint(Found("gpt2", "gpt2", 2, 32, "the graph"), AUTO, models.attention())


# Real exports of two-layer transformers with random weights (hidden 64, 4 heads), made once for the module.

@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """name -> path: BERT, GPT-2 (dynamo, and TorchScript), ViT (dynamo), a BERT with eager attention
    exported by TorchScript (the layout onnxruntime's Attention fusion matches), and dynamo exports with fixed
    shapes (their causal mask and rotary tables folded): GPT-2 with an attention_mask (the folded mask is And-ed
    with it), GPT-2 and Llama language models from input_ids alone."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.torch_models import Hidden, export

    folder = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    small = {"num_hidden_layers": 2, "intermediate_size": 128, "hidden_size": 64, "num_attention_heads": 4}
    bert = transformers.BertModel(transformers.BertConfig(vocab_size=100, **small)).eval()
    eager = transformers.BertModel(transformers.BertConfig(vocab_size=100, attn_implementation="eager", **small))
    gpt2 = transformers.GPT2Model(transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=100,
                                                          use_cache=False)).eval()
    gpt2_lm = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=100,
                                                                   use_cache=False)).eval()
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=100, num_key_value_heads=4,
                                                                   use_cache=False, **small)).eval()
    vit = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **small),
                                add_pooling_layer=False).eval()
    ids = (torch.randint(0, 100, (2, 8)), torch.ones(2, 8, dtype=torch.int64))
    text, image = ["input_ids", "attention_mask"], ["pixel_values"]
    return {
        "bert": export(Hidden(bert), ids, text, folder / "bert.onnx", dynamo=True),
        "bert-eager": export(Hidden(eager.eval()), ids, text, folder / "bert-eager.onnx", dynamo=False),
        "gpt2": export(Hidden(gpt2), ids, text, folder / "gpt2.onnx", dynamo=True),
        "gpt2-torchscript": export(Hidden(gpt2), ids, text, folder / "gpt2-ts.onnx", dynamo=False),
        "vit": export(Hidden(vit), (torch.randn(2, 3, 32, 32),), image, folder / "vit.onnx", dynamo=True),
        "gpt2-fixed": export(Hidden(gpt2), ids, text, folder / "gpt2-fixed.onnx", dynamo=True, fixed=True),
        "gpt2-ids": export(Hidden(gpt2_lm), ids[:1], text[:1], folder / "gpt2-ids.onnx", dynamo=True, fixed=True),
        "llama-ids": export(Hidden(llama), ids[:1], text[:1], folder / "llama-ids.onnx", dynamo=True, fixed=True),
    }


def _feed(path):
    rng = np.random.default_rng(0)
    names = [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    if names == ["pixel_values"]:
        return {"pixel_values": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}
    feed = {"input_ids": rng.integers(0, 100, (2, 8)), "attention_mask": np.ones((2, 8), np.int64)}
    return {name: feed[name] for name in names}


@pytest.mark.slow  # eight real exports built first: about 40 s
@pytest.mark.parametrize("name, family", [("bert", "bert"), ("gpt2", "gpt2"), ("gpt2-torchscript", "gpt2"),
                                          ("vit", "vit"), ("bert-eager", "bert"), ("gpt2-fixed", "gpt2"),
                                          ("gpt2-ids", "gpt2"),
                                          ("llama-ids", "llama")])
def test_real_exports_are_detected_with_their_heads_and_hidden_size(exports, name, family):
    proto = onnx.load(str(exports[name]), load_external_data=False)
    folder = exports[name].parent  # a folded causal mask is read from the weights beside the model
    assert (detect_model_type(proto, folder), *infer_heads_and_hidden(proto)) == (family, 4, 64)


def test_folded_masks_and_rotary_tables_leave_no_causal_ops_to_detect_by(exports):
    """What the ids-only exports test: their graphs have none of the ops detection looked for first."""
    for name in ("gpt2-fixed", "gpt2-ids", "llama-ids"):
        ops = op_histogram(onnx.load(str(exports[name]), load_external_data=False))
        assert not {"Trilu", "LessOrEqual", "Sin", "Cos"} & set(ops), name


@pytest.mark.parametrize("name, fused_op", [("bert", "SkipLayerNormalization"), ("vit", "SkipLayerNormalization"),
                                            ("gpt2-torchscript", "FastGelu"), ("bert-eager", "Attention"),
                                            ("gpt2-ids", "SkipLayerNormalization"),
                                            ("llama-ids", "SkipSimplifiedLayerNormalization")])
def test_real_exports_fuse_and_match_their_outputs(exports, tmp_path, name, fused_op):
    path = exports[name]
    fused = build(str(path), "fusion", tmp_path)
    ops = op_histogram(onnx.load(fused.model.path, load_external_data=False))
    assert ops[f"com.microsoft:{fused_op}"] >= 2
    feed = _feed(path)
    assert cosine(outputs(fused.model.path, feed), outputs(path, feed)) >= 0.999
    attention = "com.microsoft:Attention" in ops
    assert attention or any("no attention fused" in n or "attention left as it is" in n for n in fused.notes)


def test_a_decoder_whose_gpt2_fusions_raise_falls_back_to_the_bert_norm_and_gelu_fusions(exports, tmp_path):
    """onnxruntime's gpt2 postprocess indexes the bias of the bias-free LM-head Gemm (IndexError)."""
    fused = build(str(exports["gpt2-ids"]), "fusion", tmp_path)
    assert "model type gpt2, 4 heads, hidden size 64 (from the graph" in fused.notes[0]
    assert "gpt2 patterns fail on this graph (IndexError" in fused.notes[1] and "fell back" in fused.notes[1]
    assert "Attention" not in "".join(op_histogram(onnx.load(fused.model.path, load_external_data=False)))


def test_dynamo_weights_beside_the_model_go_beside_the_fused_one(exports, tmp_path):
    assert exports["bert"].with_name("bert.onnx.data").is_file()  # the dynamo exporter writes them beside it
    fused = build(str(exports["bert"]), "fusion", tmp_path)
    folder = tmp_path / "c" / "variants"
    assert sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name != "meta.json") == \
        ["model.onnx", "model.onnx.data"]
    assert fused.model.path.startswith(str(folder))
