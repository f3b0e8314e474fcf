"""MLflow model folders, read from their MLmodel file without the mlflow package."""

from __future__ import annotations

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.native.detect import detect
from perfkit.native.mlflow import resolve


def folder(tmp_path, mlmodel: str, files: dict[str, bytes]) -> str:
    root = tmp_path / "model"
    root.mkdir()
    (root / "MLmodel").write_text(mlmodel)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return str(root)


SKLEARN = """
artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.0
"""


def test_the_sklearn_flavor_points_at_its_pickle_which_then_needs_trust(tmp_path, monkeypatch):
    import pickle

    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    root = folder(tmp_path, SKLEARN, {"model.pkl": pickle.dumps({"coef": [1.0]})})
    assert resolve(__import__("pathlib").Path(root)).name == "model.pkl"
    native = detect(root)
    assert native.framework == "sklearn" and native.source == root
    from perfkit.native.detect import prepare_native

    with pytest.raises(PerfkitError) as err:
        prepare_native(root, False, None)
    assert err.value.subject == root  # the user named the folder: the line names it too


def test_the_onnx_flavor_is_benchmarked_as_the_onnx_file(tmp_path):
    root = folder(tmp_path, "flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.16.0\n",
                  {"model.onnx": b"\x08\x08"})
    with pytest.raises(PerfkitError, match="onnx flavor") as err:
        detect(root)
    assert "perfkit bench" in err.value.fix and "model.onnx" in err.value.fix


def test_pytorch_and_keras_flavors_find_the_file_in_their_data_folder(tmp_path):
    root = folder(tmp_path, "flavors:\n  pytorch:\n    model_data: data\n    pytorch_version: 2.3.0\n",
                  {"data/model.pth": b"\x80\x02}q\x00."})
    assert resolve(__import__("pathlib").Path(root)).name == "model.pth"


@pytest.mark.parametrize("mlmodel, files, what", [
    ("flavors:\n  sklearn:\n    pickled_model: ../../etc/passwd\n", {}, "outside the model folder"),
    ("flavors:\n  sklearn:\n    pickled_model: model.pkl\n", {}, "missing"),
    ("flavors:\n  h2o:\n    data: model.h2o\n", {}, "none of which perfkit loads"),
    ("flavors: [unclosed\n", {}, "not valid YAML"),
    ("name: no flavors here\n", {}, "no flavors"),
])
def test_bad_mlflow_folders_get_one_line(tmp_path, mlmodel, files, what):
    root = folder(tmp_path, mlmodel, files)
    with pytest.raises(PerfkitError, match=what):
        detect(root)
