"""perfkit optimize's flow, in this process (FAST plan)."""

import json

from perfkit.build import build_all
from perfkit.options import make_spec
from tests.conftest import FAST


def test_an_upgraded_model_is_said_in_the_manifest_and_its_variants_are_built_from_it(save, tmp_path):
    from tests.models import old_batchnorm

    path = save(old_batchnorm(), "old.onnx")
    spec = make_spec(path, variants=("ort-opt:basic",), plan=FAST, results_dir=None, cache_dir=str(tmp_path / "c"),
                     upgrade_opset=True)
    manifest = build_all(spec, str(tmp_path / "out"))
    assert manifest.model.startswith(str(tmp_path / "c" / "upgraded"))
    assert manifest.warnings[0].startswith(f"{path}: opset 6 → 13 by onnx.version_converter")
    (variant,) = json.loads((tmp_path / "out" / "manifest.json").read_text())["variants"]
    assert variant["status"] == "ok"
