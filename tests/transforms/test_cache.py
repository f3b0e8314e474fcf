import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from perfkit.files.onnx_file import open_onnx
from perfkit.transforms import BuildContext, parse_chain
from perfkit.transforms.cache import Broken, Variant, build_variant
from tests import models

FEED = {"image": np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)}


@pytest.fixture
def beside(tmp_path):
    """A small conv net whose weights live beside it, as torch's exporter writes them."""
    path = tmp_path / "user" / "conv.onnx"
    path.parent.mkdir()
    onnx.save_model(models.conv(), path, save_as_external_data=True, location="conv.onnx.data", size_threshold=0)
    return path


def build(path, chain, tmp_path, ctx=None):
    return build_variant(open_onnx(str(path))[0], parse_chain(chain), ctx or BuildContext(), str(tmp_path / "c"), 120,
                         isolate=False)


def moved(variant: Variant, tmp_path) -> Path:
    """The variant's cache entry copied somewhere else, as `perfkit optimize` or a user would."""
    target = tmp_path / "elsewhere" / Path(variant.model.path).parent.name
    shutil.copytree(Path(variant.model.path).parent, target)
    return target / "model.onnx"


@pytest.mark.parametrize("chain", ["ort-opt:all", "ort-opt:basic+int8-dynamic", "int8-static:qdq,per-channel",
                                   "fp16", "ort-opt:extended+fp16"])
def test_every_step_of_a_model_with_weights_beside_it_writes_a_complete_entry(beside, tmp_path, chain):
    ctx = BuildContext(calibration=(FEED,), calibration_source="one feed")
    variant = build(beside, chain, tmp_path, ctx)
    assert isinstance(variant, Variant), variant
    named = {e.value for t in onnx.load(variant.model.path, load_external_data=False).graph.initializer
             for e in t.external_data if e.key == "location"}
    assert "conv.onnx.data" not in named and named <= {"model.onnx.data"}
    want = ort.InferenceSession(str(beside)).run(None, FEED)[0]
    shutil.rmtree(beside.parent)  # the variant no longer needs the user's files
    got = ort.InferenceSession(str(moved(variant, tmp_path))).run(None, FEED)[0]
    assert np.corrcoef(want.ravel(), got.ravel())[0, 1] > 0.99


def test_a_step_that_leaves_its_weights_in_the_input_folder_gets_them_copied_in(beside, tmp_path, plugins):
    plugins("copy=tests.workers:copy_model")  # its output names ../user/conv.onnx.data's file
    variant = build(beside, "copy", tmp_path)
    folder = Path(variant.model.path).parent
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.onnx", "model.onnx.data"]
    want = ort.InferenceSession(str(beside)).run(None, FEED)[0]
    np.testing.assert_array_equal(ort.InferenceSession(str(moved(variant, tmp_path))).run(None, FEED)[0], want)


def test_an_entry_that_lost_its_data_file_is_built_again(beside, tmp_path):
    first = build(beside, "ort-opt:basic", tmp_path)
    Path(first.model.path + ".data").unlink()
    again = build(beside, "ort-opt:basic", tmp_path)
    assert not again.cached and Path(again.model.path + ".data").is_file()
    assert build(beside, "ort-opt:basic", tmp_path).cached


def test_a_step_whose_output_names_data_nobody_wrote_is_a_failed_variant(beside, tmp_path, plugins):
    plugins("dangling=tests.workers:name_missing_data")
    broken = build(beside, "dangling", tmp_path)
    assert isinstance(broken, Broken) and broken.status == "failed"
    assert broken.reason == "building dangling: its output is incomplete (missing external data file 'nowhere.data')"
    assert not list((tmp_path / "c" / "variants").iterdir())  # nothing half-built is kept


def test_without_external_data_a_small_model_stays_one_file(save, tmp_path):
    variant = build(save(models.conv(), "conv.onnx"), "ort-opt:all", tmp_path)
    assert sorted(p.name for p in Path(variant.model.path).parent.iterdir()) == ["meta.json", "model.onnx"]


def test_a_step_whose_output_onnxruntime_refuses_is_a_failed_variant_with_its_reason(beside, tmp_path, plugins):
    plugins("typo=tests.workers:write_type_error")
    broken = build(beside, "typo", tmp_path)
    assert isinstance(broken, Broken) and broken.status == "failed"
    assert broken.reason == ("building typo: onnxruntime cannot load what it wrote: Type Error: Type parameter (T) "
                             "of Optype (Add) bound to different types (tensor(float) and tensor(int32) in node "
                             "(Add_quant).")
    assert "check_model" not in broken.reason and "perfkit-cache" not in broken.reason


def test_a_user_error_while_building_names_the_step_and_never_a_hint_into_the_cache(beside, tmp_path, monkeypatch):
    from perfkit.core.errors import PerfkitError
    from perfkit.core.model import Model
    from perfkit.transforms import cache

    def refuse(parent, *_):
        raise PerfkitError(parent.path, "is broken", "copy it there")

    monkeypatch.setattr(cache, "step_key", refuse)
    outside = build(beside, "ort-opt:basic", tmp_path)
    assert outside.reason == "building ort-opt:basic: is broken — copy it there"
    entry = Model(str(tmp_path / "c" / "variants" / "x" / "model.onnx"), "onnx", "digest")
    inside = build_variant(entry, parse_chain("ort-opt:basic"), BuildContext(), str(tmp_path / "c"), 120, False)
    assert inside.reason == "building ort-opt:basic: is broken"


def test_a_step_runs_in_a_scratch_folder_and_leaves_nothing_in_the_working_folder(tmp_path, monkeypatch, plugins):
    plugins("litter=tests.workers:litter")
    monkeypatch.chdir(tmp_path)
    onnx.save_model(models.conv(), "conv.onnx")
    variant = build_variant(open_onnx("conv.onnx")[0], parse_chain("litter"), BuildContext(), "cache", 120,
                            isolate=False)  # relative paths, in this process: the folder must come back
    assert isinstance(variant, Variant) and Path.cwd() == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "conv.onnx"]
    assert sorted(p.name for p in Path(variant.model.path).parent.iterdir()) == ["meta.json", "model.onnx"]
