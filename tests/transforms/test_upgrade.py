from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from perfkit.core.errors import PerfkitError
from perfkit.files.onnx_file import open_onnx
from perfkit.transforms.upgrade import default_opset, upgrade_opset
from tests.conftest import tensor
from tests.models import BN_BIAS, BN_MEAN, BN_SCALE, BN_VAR, old_batchnorm


def opened(save, model, name="old.onnx"):
    path = save(model, name)
    return open_onnx(path)


def test_an_opset_onnxruntime_refuses_is_upgraded_into_the_cache_and_computes_the_same(save, tmp_path):
    import onnxruntime as ort

    model, proto = opened(save, old_batchnorm())
    with pytest.raises(Exception, match="Could not find an implementation for BatchNormalization\\(6\\)"):
        ort.InferenceSession(model.path, providers=["CPUExecutionProvider"])
    up = upgrade_opset(model, proto, str(tmp_path / "cache"), 60, isolate=False)
    assert up.model.path.startswith(str(tmp_path / "cache" / "upgraded")) and up.model.lineage == ()
    assert default_opset(up.proto) == 13 and default_opset(onnx.load(model.path)) == 6  # the user's file as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "old.onnx"]  # nothing beside the user's file
    assert up.warning == (f"{model.path}: opset 6 → 13 by onnx.version_converter (--upgrade-opset): the figures are "
                          f"for the upgraded model, {up.model.path}")
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    (y,) = ort.InferenceSession(up.model.path, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    c = (slice(None), None, None)  # per channel
    want = np.maximum((x - np.array(BN_MEAN)[c]) / np.sqrt(np.array(BN_VAR)[c] + 1e-5) * np.array(BN_SCALE)[c] +
                      np.array(BN_BIAS)[c], 0)
    assert np.allclose(y, want, atol=1e-5)


def test_the_upgrade_is_made_once_per_content(save, tmp_path):
    model, proto = opened(save, old_batchnorm())
    first = upgrade_opset(model, proto, str(tmp_path / "cache"), 60, isolate=False)
    written = first.model.path
    stamp = Path(written).stat().st_mtime_ns
    again = upgrade_opset(*opened(save, old_batchnorm(), "copy.onnx"), str(tmp_path / "cache"), 60, isolate=False)
    assert again.model.path == written and Path(written).stat().st_mtime_ns == stamp


def test_an_opset_onnxruntime_runs_is_left_as_it_is(save, tmp_path):
    model, proto = opened(save, old_batchnorm(opset=9))
    assert upgrade_opset(model, proto, str(tmp_path / "cache"), 60, isolate=False) is None
    assert not (tmp_path / "cache").exists()


def test_an_op_the_converter_has_no_schema_for_is_one_line(save, tmp_path):
    crop = helper.make_model(helper.make_graph([helper.make_node("Crop", ["x"], ["y"], border=[0, 0, 0, 0])], "g",
                                               [tensor("x", shape=(1, 3, 4, 4))], [tensor("y", shape=None)]),
                             opset_imports=[helper.make_opsetid("", 6)], ir_version=4)
    model, proto = opened(save, crop, "crop.onnx")
    with pytest.raises(PerfkitError, match=r"crop.onnx: onnx.version_converter could not upgrade opset 6 → 13: ONNX "
                                           r"has no schema for Crop \(not an ONNX op, or one since removed\) — "
                                           r"re-export it at opset 13 or later"):
        upgrade_opset(model, proto, str(tmp_path / "cache"), 60, isolate=False)
    assert not any((tmp_path / "cache" / "upgraded").iterdir())  # no half-made entry
