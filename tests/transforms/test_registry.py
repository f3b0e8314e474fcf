import os
from collections import Counter

import onnx
import pytest

from perfkit.core.errors import CaseFailed, PerfkitError
from perfkit.files.onnx_file import op_histogram, open_onnx
from perfkit.transforms import BuildContext, parse_chain, register_plugins, split_chains
from perfkit.transforms.auto import auto_chains, model_kind
from perfkit.transforms.cache import build_chain, step_key
from tests import models


def test_chains_split_on_transform_names_not_on_option_commas():
    assert split_chains("ort-opt:all,int8-static:qdq,u8s8,fp16") == ["ort-opt:all", "int8-static:qdq,u8s8", "fp16"]
    assert split_chains("fusion+int8-dynamic:per-channel;auto int8-dynamic") == [
        "fusion+int8-dynamic:per-channel", "auto", "int8-dynamic"]


def test_steps_resolve_every_option_and_keep_the_label_as_written():
    (opt, quant) = parse_chain("ort-opt:extended+int8-static:qoperator,u8s8,per-channel,calibrate=entropy")
    assert opt.label == "ort-opt:extended" and opt.values() == {"level": "extended"}
    assert quant.label == "int8-static:qoperator,u8s8,per-channel,calibrate=entropy"
    assert quant.values() == {"format": "qoperator", "types": "u8s8", "per_channel": True, "reduce_range": False,
                              "calibrate": "entropy", "exclude": ()}
    (fp16,) = parse_chain("fp16:block=Softmax,block=Resize,keep-io=false")
    assert fp16.values()["block"] == ("Softmax", "Resize") and fp16.values()["keep_io"] is False


def test_excluded_node_names_keep_their_slashes_dots_and_case():
    text = "int8-static:qdq,u8s8,per-channel,exclude=Conv_12,exclude=/layer1/layer1.0/conv1/Conv"
    assert split_chains(f"{text},fp16") == [text, "fp16"]
    (quant,) = parse_chain(text)
    assert quant.values()["exclude"] == ("Conv_12", "/layer1/layer1.0/conv1/Conv")
    assert quant.label == text  # the variant's label names what it keeps in float
    (dynamic,) = parse_chain("int8-dynamic:exclude=/encoder/MatMul:0")
    assert dynamic.values()["exclude"] == ("/encoder/MatMul:0",)


@pytest.mark.parametrize("text,message", [
    ("int9-dynamic", "unknown transform 'int9-dynamic'"),
    ("ort-opt:fastest", "'fastest' is not an option of ort-opt"),
    ("int8-static:format=qqq", "format=qqq is not one of qdq/qoperator"),
    ("int8-dynamic:color=red", "int8-dynamic has no option 'color'"),
    ("ort-opt:basic,all", "level given twice"),
])
def test_bad_chains_are_named_with_the_fix(text, message):
    with pytest.raises(PerfkitError, match=message):
        parse_chain(text)


def test_model_kinds_and_their_auto_sets():
    assert model_kind(op_histogram(models.conv())) == "cnn"
    assert model_kind(op_histogram(models.mlp())) == "mlp"
    assert model_kind(op_histogram(models.attention())) == "transformer"
    assert model_kind(Counter({"ai.onnx.ml:TreeEnsembleClassifier": 1, "ai.onnx.ml:ZipMap": 1})) == "classical"
    assert all("int8" not in c for c in auto_chains("classical", gpu=False))
    assert any(c.startswith("int8-static") for c in auto_chains("cnn", gpu=False))
    assert "int8-dynamic" in auto_chains("transformer", gpu=False)
    assert not any("fp16" in c for c in auto_chains("transformer", gpu=False))
    assert "fusion+fp16" in auto_chains("transformer", gpu=True)
    for kind in ("classical", "transformer", "cnn", "mlp", "other"):
        for chain in auto_chains(kind, gpu=True):
            parse_chain(chain)  # every chain auto proposes is valid


@pytest.fixture
def base(save):
    return open_onnx(save(models.mlp(), "mlp.onnx"))[0]


def test_a_second_build_comes_from_the_cache(base, tmp_path):
    chain = parse_chain("ort-opt:basic+int8-dynamic")
    first = build_chain(base, chain, BuildContext(), str(tmp_path / "c"), 60, isolate=False)
    stamp = os.path.getmtime(first.model.path)
    again = build_chain(base, chain, BuildContext(), str(tmp_path / "c"), 60, isolate=False)
    assert not first.cached and again.cached and again.model == first.model
    assert os.path.getmtime(again.model.path) == stamp
    assert first.model.lineage == ("ort-opt:basic", "int8-dynamic")
    assert first.model.label == "ort-opt:basic+int8-dynamic"
    assert first.model.digest != base.digest
    onnx.checker.check_model(first.model.path)


def test_cache_keys_change_with_what_decides_the_output(base):
    (dynamic,) = parse_chain("int8-dynamic")
    (per_channel,) = parse_chain("int8-dynamic:per-channel")
    (static,) = parse_chain("int8-static")
    (opt,) = parse_chain("ort-opt:all")
    ctx = BuildContext(calibration_source="a")
    assert step_key(base, dynamic, ctx, ()) != step_key(base, per_channel, ctx, ())
    assert step_key(base, static, ctx, ()) != step_key(base, static, BuildContext(calibration_source="b"), ())
    assert step_key(base, opt, ctx, ("avx2",)) != step_key(base, opt, ctx, ("avx512_vnni",))
    assert step_key(base, dynamic, ctx, ("avx2",)) == step_key(base, dynamic, ctx, ("avx512_vnni",))
    excluded = [step_key(base, parse_chain(f"int8-static:{e}")[0], ctx, ()) for e in ("exclude=A", "exclude=B",
                                                                                     "exclude=A,exclude=B")]
    assert len({*excluded, step_key(base, static, ctx, ())}) == 4


def test_plugin_transforms_run_isolated_and_a_crash_fails_only_that_build(base, tmp_path, plugins):
    plugins("crash=tests.workers:abort;copy=tests.workers:copy_model")
    with pytest.raises(CaseFailed, match=r"building crash: crashed \(SIGABRT\)"):
        build_chain(base, parse_chain("crash"), BuildContext(), str(tmp_path / "c"), 60)
    assert not [p for p in (tmp_path / "c" / "variants").iterdir()]  # nothing half-written is left
    copied = build_chain(base, parse_chain("copy"), BuildContext(), str(tmp_path / "c"), 60)
    assert copied.model.digest == base.digest and copied.model.lineage == ("copy",)


def test_a_hanging_build_is_stopped(base, tmp_path, plugins):
    plugins("hang=tests.workers:hang")
    with pytest.raises(CaseFailed, match="building hang: timed out after 2 s"):
        build_chain(base, parse_chain("hang"), BuildContext(), str(tmp_path / "c"), 2)


def test_bad_plugin_setting_is_a_user_error():
    with pytest.raises(PerfkitError, match="write NAME=package.module:function"):
        register_plugins("nonsense")
