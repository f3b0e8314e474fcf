"""Hugging Face save_pretrained folders: recognised by layout, the task from config.json's architectures (or
--task), run by transformers and converted by torch's exporter (optimum's where installed), parity checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from perfkit.backends.hf import TASKS, task_of  # noqa: E402
from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402
from perfkit.core.model import NativeHints  # noqa: E402
from perfkit.files.formats import sniff  # noqa: E402
from perfkit.native.detect import detect, is_native  # noqa: E402
from perfkit.native.inspect import inspect_file  # noqa: E402

SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A one-layer BERT classifier with random weights, as save_pretrained writes it."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "bert"
    config = transformers.BertConfig(vocab_size=500, num_labels=3, **SMALL)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def convert(tmp_path, folder, **kw):
    return run_convert(str(folder), str(tmp_path / "out.onnx"), cache_dir=str(tmp_path / "c"), isolate=False,
                       batch=4, **kw)


def test_a_save_pretrained_folder_is_a_native_model_for_transformers(bert):
    assert sniff(bert).kind == "huggingface" and is_native(str(bert))
    native = detect(str(bert))
    assert (native.format, native.framework) == ("huggingface", "hf")


def test_inspect_names_the_architecture_and_counts_the_weights_from_the_header(bert):
    import torch

    found = inspect_file(str(bert))
    details = dict(found.details)
    assert found.loads and found.how == f"perfkit bench {bert}"
    assert details["architectures"] == "BertForSequenceClassification"
    model = transformers.BertForSequenceClassification.from_pretrained(bert)
    total = sum(t.numel() for t in model.state_dict().values() if isinstance(t, torch.Tensor))
    assert f"{total:,} parameters" in details["weights"]


def test_a_lone_safetensors_file_is_described_and_points_to_its_folder(bert):
    found = inspect_file(str(bert / "model.safetensors"))
    assert not found.loads and "F32" in dict(found.details)["element types"]
    assert f"perfkit bench {bert}" in found.how


def test_a_truncated_safetensors_file_says_how_many_bytes_it_lacks(bert, tmp_path):
    cut = tmp_path / "cut.safetensors"
    data = (bert / "model.safetensors").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PerfkitError, match="truncated safetensors file: its tensors need"):
        inspect_file(str(cut))


def test_a_config_without_weights_is_named_as_such(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(PerfkitError, match="config.json but no weights"):
        inspect_file(str(tmp_path))


@pytest.mark.parametrize(("architecture", "task"), [
    ("BertForSequenceClassification", "text-classification"), ("GPT2LMHeadModel", "text-generation"),
    ("LlamaForCausalLM", "text-generation"), ("ViTForImageClassification", "image-classification"),
    ("DistilBertModel", "feature-extraction"), ("RobertaForQuestionAnswering", "question-answering"),
    ("BertForTokenClassification", "token-classification"), ("BertForMaskedLM", "fill-mask"),
])
def test_the_task_comes_from_the_first_architecture(architecture, task):
    assert task_of({"architectures": [architecture]}, None, "m").name == task


def test_task_errors_name_the_way_out():
    assert task_of({"architectures": ["BertModel"]}, "text-classification", "m") == TASKS["text-classification"]
    with pytest.raises(PerfkitError, match="encoder-decoder") as err:
        task_of({"architectures": ["T5ForConditionalGeneration"]}, None, "m")
    assert "optimum-cli" in err.value.fix
    with pytest.raises(PerfkitError, match="names no architectures") as err:
        task_of({}, None, "m")
    assert "--task" in err.value.fix
    with pytest.raises(PerfkitError, match="not a task"):
        task_of({}, "summarise-everything", "m")


def test_a_bert_folder_converts_with_named_axes_and_matches_transformers(bert, tmp_path):
    import onnx

    lines, parity = convert(tmp_path, bert)
    assert parity.ok, lines
    assert "task text-classification" in lines[0]
    proto = onnx.load(str(tmp_path / "out.onnx"))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {n: ["batch", "sequence"] for n in ("input_ids", "attention_mask", "token_type_ids")}
    assert [o.name for o in proto.graph.output] == ["logits"]


def test_a_given_task_builds_another_head(bert, tmp_path):
    lines, parity = convert(tmp_path, bert, hints=NativeHints(task="feature-extraction"))
    assert parity.ok and "task feature-extraction" in lines[0]
    assert "last_hidden_state float32 [N, sequence, 32]" in lines[2]


def test_custom_code_in_the_folder_needs_trust(bert, tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    folder = tmp_path / "custom"
    shutil.copytree(bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_mine.MyModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PerfkitError, match="auto_map") as err:
        convert(tmp_path, folder)
    assert "--trust" in err.value.fix


def test_position_ids_are_fed_as_positions():
    from perfkit.core.model import Signature, TensorInfo
    from perfkit.measure.workload import Shapes, synthesize

    sig = Signature((TensorInfo("input_ids", "int64", ("batch", "sequence")),
                     TensorInfo("position_ids", "int64", ("batch", "sequence"))), ())
    feed = synthesize(sig, Shapes((("input_ids", (2, 5)), ("position_ids", (2, 5))), 2, ()), 0)[0]
    assert feed["position_ids"].tolist() == [[0, 1, 2, 3, 4]] * 2
    assert feed["input_ids"].min() >= 1


@pytest.mark.slow
@pytest.mark.parametrize("build", ["gpt2", "vit"])
def test_a_decoder_and_a_vision_model_convert_and_match(build, tmp_path):
    import torch

    torch.manual_seed(0)
    folder = tmp_path / build
    if build == "gpt2":
        transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=300,
                                                             n_positions=64)).save_pretrained(folder)
    else:
        config = transformers.ViTConfig(image_size=16, patch_size=8, num_labels=4, **SMALL)
        transformers.ViTForImageClassification(config).save_pretrained(folder)
    lines, parity = convert(tmp_path, folder)
    assert parity.ok, lines
    assert ("text-generation" if build == "gpt2" else "pixel_values float32 [N, 3, 16, 16]") in "\n".join(lines)


@pytest.mark.slow
def test_bench_measures_the_folder_in_transformers_beside_its_conversion(bert, tmp_path):
    from perfkit import benchmark

    report = benchmark(str(bert), results_dir=None, cache_dir=str(tmp_path / "c"), dims=("sequence=16",),
                       quick=True)
    rows = {r.model.label: r for r in report.results}
    assert rows["native:hf"].status == "ok", rows["native:hf"].reason
    assert rows["native:hf"].providers == ("torch:cpu",) and rows["native:hf"].settings["task"] == "text-classification"
    assert rows["export:onnx"].accuracy[0].max_abs < 1e-5  # against transformers' own outputs


def test_the_written_model_takes_its_external_data_along(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from perfkit.convert import write_converted

    weights = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])], [weights])
    (tmp_path / "cache").mkdir()
    src = tmp_path / "cache" / "model.onnx"
    onnx.save(helper.make_model(graph), str(src), save_as_external_data=True, location="model.onnx.data",
              size_threshold=0)
    (tmp_path / "out").mkdir()
    write_converted(src, tmp_path / "out" / "bert.onnx")
    loaded = onnx.load(str(tmp_path / "out" / "bert.onnx"))  # reads the data beside it
    assert np.array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), numpy_helper.to_array(weights))
