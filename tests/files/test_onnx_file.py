import os
import pickle
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from perfkit.core.errors import PerfkitError
from perfkit.examples import cnn
from perfkit.files.formats import sniff
from perfkit.files.onnx_file import open_onnx, read_signature
from tests.conftest import graph_model, tensor


def test_good_model_has_digest_and_format(relu_model):
    model, proto = open_onnx(relu_model)
    assert model.format == "onnx" and len(model.digest) == 64 and model.label == "base"
    assert proto.graph.node[0].op_type == "Relu"


def test_digest_changes_with_content(save):
    a, _ = open_onnx(save(cnn(seed=0), "a.onnx"))
    b, _ = open_onnx(save(cnn(seed=1), "b.onnx"))
    assert a.digest != b.digest


@pytest.mark.parametrize("content,match", [
    (b"", "the file is empty"),
    (b"this is not a model\njust text\n", "a text file, not a binary ONNX model"),
    (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not a valid ONNX protobuf"),
])
def test_broken_files(tmp_path, content, match):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(PerfkitError, match=match):
        open_onnx(str(path))


def test_truncated_model(tmp_path):
    data = cnn().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PerfkitError, match="corrupt or truncated"):
        open_onnx(str(path))


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(PerfkitError, match="no such file or folder — check the path"):
        open_onnx(str(tmp_path / "nope.onnx"))
    with pytest.raises(PerfkitError, match="is a directory"):
        open_onnx(str(tmp_path))


def test_opset_newer_than_onnx_knows(save):
    path = save(graph_model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x")], [tensor("y")],
                            opset=onnx.defs.onnx_opset_version() + 5))
    with pytest.raises(PerfkitError, match="newer than this onnx knows"):
        open_onnx(path)


def _external(save, tmp_path, location: str | None = None) -> str:
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    model = graph_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [tensor("x")], [tensor("y")], [w])
    path = save(model, "ext.onnx", save_as_external_data=True, location="ext.data", size_threshold=0)
    if location:
        proto = onnx.load(path, load_external_data=False)
        for entry in proto.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save_model(proto, path)
    return path


def test_external_data_is_found_and_hashed(save, tmp_path):
    path = _external(save, tmp_path)
    before, _ = open_onnx(path)
    (tmp_path / "ext.data").write_bytes(np.full((4, 4), 2, np.float32).tobytes())
    after, _ = open_onnx(path)
    assert before.digest != after.digest


def test_missing_external_data(save, tmp_path):
    path = _external(save, tmp_path)
    os.remove(tmp_path / "ext.data")
    with pytest.raises(PerfkitError, match="missing external data file 'ext.data'"):
        open_onnx(path)


@pytest.mark.parametrize("location", ["../outside.data", "/etc/passwd"])
def test_external_data_outside_the_folder(save, tmp_path, location):
    path = _external(save, tmp_path, location)
    with pytest.raises(PerfkitError, match="points outside the model's folder"):
        open_onnx(path)


def test_short_external_data(save, tmp_path):
    path = _external(save, tmp_path)
    (tmp_path / "ext.data").write_bytes(b"\0" * 8)
    with pytest.raises(PerfkitError, match=r"shorter than the model says \(8 bytes; its tensors reach byte [\d,]+\)"):
        open_onnx(path)


def test_native_formats_are_named_not_loaded(tmp_path):
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"never": "unpickled"}))
    with pytest.raises(PerfkitError, match="Python pickle.*not ONNX — convert it to ONNX"):
        open_onnx(str(pkl))
    pt = tmp_path / "model.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("model/data.pkl", b"\x80\x02}q\x00.")
    assert sniff(pt).kind == "torch"
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 8)
    assert sniff(h5).kind == "hdf5"
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "MLmodel").write_text("flavors: {}\n")
    assert sniff(tmp_path / "mlflow").kind == "mlflow"


def test_signature_excludes_initializers_and_keeps_dims(save):
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    inputs = [tensor("x", shape=["batch", None, 4]), tensor("w", shape=[4, 4]), tensor("u", shape=None),
              tensor("s", TensorProto.INT64, shape=[])]
    model = graph_model([helper.make_node("Identity", ["x"], ["y"])], inputs, [tensor("y", shape=None)], [w])
    _, proto = open_onnx(save(model))
    sig = read_signature(proto)
    assert [(i.name, i.dtype, i.shape) for i in sig.inputs] == [
        ("x", "float32", ("batch", None, 4)), ("u", "float32", None), ("s", "int64", ())]
    assert sig.outputs[0].shape is None


def test_a_folder_is_not_onnx_whatever_it_holds(tmp_path):
    for name, marker in (("plain", "readme.txt"), ("bundle", "bundle.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / marker).write_text("{}")
        with pytest.raises(PerfkitError, match="is a directory — give the .onnx file inside it"):
            open_onnx(str(tmp_path / name))
    (tmp_path / "m.mlpackage").mkdir()
    (tmp_path / "m.mlpackage" / "Manifest.json").write_text("{}")
    with pytest.raises(PerfkitError, match="m.mlpackage: is a Core ML model, not ONNX — perfkit does not load Core ML"):
        open_onnx(str(tmp_path / "m.mlpackage"))


def test_outputs_made_by_a_pooler_or_a_norm_are_features():
    from onnx import helper

    from perfkit.files.onnx_file import feature_outputs
    from tests.conftest import graph_model, tensor

    nodes = [helper.make_node("MatMul", ["x", "x"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("Reshape", ["t", "shape"], ["pooled"]), helper.make_node("Add", ["h", "x"], ["logits"])]
    proto = graph_model(nodes, [tensor("x", shape=(4, 4)), tensor("shape", onnx.TensorProto.INT64, (2,))],
                        [tensor("pooled", shape=(4, 4)), tensor("logits", shape=(4, 4))])
    assert feature_outputs(proto) == ("pooled",)


def test_fused_embedding_lookups_bound_the_ids_they_index():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from perfkit.files.onnx_file import index_limits

    tables = [numpy_helper.from_array(np.zeros(shape, np.float32), name) for name, shape in
              (("word", (30, 8)), ("position", (16, 8)), ("segment", (2, 8)), ("gamma", (8,)), ("beta", (8,)))]
    node = helper.make_node("EmbedLayerNormalization", ["input_ids", "segment_ids", "word", "position", "segment",
                                                        "gamma", "beta"], ["out", "mask_index"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.INT32, ["b", "s"])
                                            for n in ("input_ids", "segment_ids")],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], tables)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    proto = helper.make_model(graph, opset_imports=opsets)
    assert index_limits(proto) == {"input_ids": 29, "segment_ids": 1}
