"""perfkit inspect: every format of the seed's table and the newer ones, by content first, then suffix."""

from __future__ import annotations

import gzip
import pickle
import zipfile

import numpy as np
import onnx
import pytest
from onnx import helper

from perfkit.core.errors import PerfkitError
from perfkit.native.inspect import inspect_file
from tests.conftest import graph_model, tensor


def write(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_onnx_details_name_ir_opsets_producer_symbolic_dims_ops_parameters_and_external_data(tmp_path):
    weight = helper.make_tensor("w", onnx.TensorProto.FLOAT, [4, 3], np.ones(12, np.float32).tobytes(), raw=True)
    model = graph_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                        [tensor("x", shape=("batch", 4))], [tensor("y", shape=("batch", 3))], [weight])
    model.producer_name, model.producer_version = "perfkit-tests", "1"
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    found = inspect_file(str(tmp_path / "m.onnx"))
    details = dict(found.details)
    assert found.kind == "onnx" and found.loads
    assert details["IR version"] == "8" and details["opsets"] == "ai.onnx 17"
    assert details["producer"] == "perfkit-tests 1"
    assert details["input"] == "x: float32 [batch, 4]" and details["output"] == "y: float32 [batch, 3]"
    assert details["ops"] == "MatMul 1, Relu 1" and details["parameters"] == "12"
    assert details["external data"] == "m.data"
    assert int(details["size"].split()[0].replace(",", "")) > 48


def test_scikit_learn_pickles_and_joblib_files_list_their_imports(tmp_path):
    pytest.importorskip("sklearn")
    import joblib
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.ones((4, 2)) * np.arange(4)[:, None], np.arange(4))
    pickle_path = write(tmp_path, "m.pkl", pickle.dumps(model))
    joblib.dump(model, tmp_path / "m.joblib", compress=3)
    for path, kind in ((pickle_path, "sklearn"), (str(tmp_path / "m.joblib"), "joblib")):
        found = inspect_file(path)
        assert found.kind == kind and found.loads and "--trust" in found.how
        assert "sklearn.linear_model._base.LinearRegression" in dict(found.details)["imports"]


def test_a_malicious_pickle_is_named_as_such_without_running(tmp_path):
    import os

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    found = inspect_file(write(tmp_path, "model.pkl", pickle.dumps(Evil())))
    assert not found.loads and "system" in dict(found.details)["code at load"]
    assert not marker.exists()


def test_pytorch_archives_are_told_apart(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.torch_models import tiny_cnn

    model = tiny_cnn().eval()
    x = torch.rand(1, 3, 16, 16)
    torch.jit.save(torch.jit.trace(model, x), tmp_path / "script.pt")
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "prog.pt2")
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    torch.save(model, tmp_path / "whole.pt")
    kinds = {name: inspect_file(str(tmp_path / name)) for name in ("script.pt", "prog.pt2", "weights.pth",
                                                                    "whole.pt")}
    assert kinds["script.pt"].kind == "torchscript"
    assert kinds["prog.pt2"].kind == "exported-program"
    assert "state dict" in kinds["weights.pth"].what and "--factory" in kinds["weights.pth"].how
    assert "whole module" in kinds["whole.pt"].what and "--trust" in kinds["whole.pt"].how


def test_keras_files_and_savedmodel_folders(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.export(str(tmp_path / "saved"), verbose=False)
    assert inspect_file(str(tmp_path / "m.keras")).kind == "keras"
    h5 = inspect_file(str(tmp_path / "m.h5"))
    assert h5.kind == "keras-h5" and "architecture and weights" in h5.what
    assert inspect_file(str(tmp_path / "saved")).kind == "savedmodel"


def test_skops_files(tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.preprocessing import StandardScaler

    sio.dump(StandardScaler().fit(np.ones((3, 2))), tmp_path / "m.skops")
    found = inspect_file(str(tmp_path / "m.skops"))
    assert found.kind == "skops" and "--trust" not in found.how


@pytest.mark.parametrize("name, content, kind, hint", [
    ("model.rds", gzip.compress(b"X\n\x00\x00\x00\x03\x00\x04"), "rds", "r2pmml"),
    ("model.rds", b"RDX3\nX\n", "rds", "r2pmml"),
    ("model.pmml", b'<?xml version="1.0"?>\n<PMML version="4.4" xmlns="http://www.dmg.org/PMML-4_4"/>',
     "pmml", "no model element"),
    ("model.mlmodel", b"\x08\x04\x12\x00", "coreml", "Core ML"),
])
def test_formats_perfkit_does_not_run_name_the_way_to_onnx(tmp_path, name, content, kind, hint):
    found = inspect_file(write(tmp_path, name, content))
    assert found.kind == kind and not found.loads and hint in found.how


def test_mleap_bundles_as_zip_and_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "pipeline.zip", "w") as z:
        z.writestr("bundle.json", '{"name": "pipeline"}')
        z.writestr("root/model.json", "{}")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "bundle.json").write_text("{}")
    for path in (tmp_path / "pipeline.zip", tmp_path / "bundle"):
        found = inspect_file(str(path))
        assert found.kind == "mleap" and "convert_sparkml" in found.how


def test_mlflow_folders_name_their_flavors(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors:\n  python_function: {}\n  sklearn:\n    pickled_model: "
                                            "model.pkl\n")
    incomplete = inspect_file(str(tmp_path / "m"))
    assert not incomplete.loads and "missing" in dict(incomplete.details)["problem"]
    (tmp_path / "m" / "model.pkl").write_bytes(pickle.dumps({"coef": 1.0}))
    found = inspect_file(str(tmp_path / "m"))
    assert found.kind == "mlflow" and dict(found.details)["perfkit uses"] == "sklearn"


@pytest.mark.parametrize("name, content, what", [
    ("model.onnx", b"", "empty"),
    ("random.bin", bytes(range(256)) * 4, "not a model format perfkit recognises"),
    ("cut.pt", b"PK\x03\x04\x14\x00cut", "damaged zip"),
    ("cut.h5", b"\x89HDF\r\n\x1a\n" + bytes(50), "damaged HDF5"),
])
def test_unrecognisable_files_get_one_line(tmp_path, name, content, what):
    with pytest.raises(PerfkitError, match=what):
        inspect_file(write(tmp_path, name, content))


def test_a_folder_that_is_no_model(tmp_path):
    with pytest.raises(PerfkitError, match="not a model"):
        inspect_file(str(tmp_path))


def test_a_torch_archive_failing_its_crc_is_damaged_not_an_empty_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(1000)}, tmp_path / "sd.pt")
    data = bytearray((tmp_path / "sd.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "sd.pt") as z:
        entry = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
    data[entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra) + 100] ^= 0xFF
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    with pytest.raises(PerfkitError, match=r"bad.pt: a damaged zip archive: its entry sd/data/0 fails its CRC check"):
        inspect_file(str(tmp_path / "bad.pt"))


def test_a_core_ml_model_is_not_loaded_and_the_text_says_why_and_the_way_out(tmp_path):
    # A Core ML spec written by hand: specificationVersion 5, a description with one input "x".
    found = inspect_file(write(tmp_path, "m.mlmodel", b"\x08\x05\x12\x05\x0a\x03\x0a\x01x"))
    assert found.kind == "coreml" and not found.loads
    assert found.how == ("perfkit does not load Core ML: it predicts only on Apple platforms, and onnxmltools' Core ML "
                         "converter does not work with this onnx stack (it needs coremltools, then refuses layers "
                         "such as innerProduct); convert the model to ONNX from the framework it was made in "
                         "(torch.onnx.export, tf2onnx, skl2onnx)")
