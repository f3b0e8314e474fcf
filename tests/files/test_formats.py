"""The one format sniffer: what a path holds, from its layout and bytes, then its suffix; nothing is loaded."""

import bz2
import gzip
import pickle
import zipfile

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.files.formats import Sniffed, legacy_torch, looks_like_pickle, sniff, torch_archive_kind


def zip_of(path, *names):
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, b"{}")
    return path


@pytest.mark.parametrize("names, kind", [
    (("archive/data.pkl", "archive/version"), "torch"),  # torch.save
    (("archive/code/__torch__.py", "archive/constants.pkl"), "torch"),  # TorchScript
    (("archive_format", "models/m.json"), "torch"),  # torch.export .pt2
    (("config.json", "metadata.json", "model.weights.h5"), "keras"),
    (("schema.json", "1.npy"), "skops"),
    (("bundle.json", "root/model.json"), "mleap"),
    (("readme.txt",), "zip"),
])
def test_a_zip_archive_is_known_by_its_entries(tmp_path, names, kind):
    found = sniff(zip_of(tmp_path / "model.bin", *names))
    assert found.kind == kind and found.members == names


def test_a_damaged_zip_is_named_as_such(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    assert sniff(path) == Sniffed("damaged-zip")
    with pytest.raises(PerfkitError, match="a damaged zip archive"):
        torch_archive_kind(path, sniff(path))


@pytest.mark.parametrize("content, kind", [
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 8, "hdf5"),
    (pickle.dumps({"a": 1}, protocol=4), "pickle"),
    (gzip.compress(b"not a model"), "compressed"),
    (bz2.compress(b"RDX3\nR data"), "rds"),
    (b'<?xml version="1.0"?>\n<PMML version="4.4"></PMML>', "pmml"),
    (b"\x08\x07\x12\x04onnx", "onnx"),
])
def test_a_file_is_known_by_its_first_bytes(tmp_path, content, kind):
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    assert sniff(path).kind == kind


def test_folders_are_known_by_their_layout(tmp_path):
    for name, marker, kind in (("m1", "MLmodel", "mlflow"), ("m2", "saved_model.pb", "savedmodel"),
                               ("m3", "bundle.json", "mleap"), ("m4.mlpackage", "Manifest.json", "coreml")):
        (tmp_path / name).mkdir()
        (tmp_path / name / marker).write_text("{}")
        assert sniff(tmp_path / name).kind == kind
    (tmp_path / "empty").mkdir()
    assert sniff(tmp_path / "empty").kind == "directory"


def test_the_suffix_decides_only_what_bytes_cannot(tmp_path):
    mlmodel = tmp_path / "m.mlmodel"
    mlmodel.write_bytes(b"\x08\x04\x12\x00")  # Core ML is a protobuf, like ONNX
    assert sniff(mlmodel).kind == "coreml"
    both = zip_of(tmp_path / "m.skops", "schema.json", "config.json", "w.h5")
    assert sniff(both).kind == "skops"  # Keras' entries too, but named .skops


def test_pickles_of_protocol_2_to_5_are_recognised_without_loading():
    assert all(looks_like_pickle(pickle.dumps(0, protocol=p)[:2]) for p in (2, 3, 4, 5))
    assert not looks_like_pickle(pickle.dumps(0, protocol=1)[:2]) and not looks_like_pickle(b"\x80")


def test_legacy_torch_files_are_known_by_their_magic_number(tmp_path):
    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"rest")
    assert legacy_torch(path)
    path.write_bytes(pickle.dumps(12345, protocol=2))
    assert not legacy_torch(path)


@pytest.mark.parametrize("name", ["model.onnx", "model.pt", "model.safetensors"])
def test_a_git_lfs_pointer_says_to_fetch_the_file(tmp_path, name):
    from perfkit.files.formats import sniff_given
    from perfkit.files.onnx_file import open_onnx

    path = tmp_path / name
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 46827520\n")
    message = r"a git-LFS pointer, not the model's bytes .* — run `git lfs pull` in the repository"
    with pytest.raises(PerfkitError, match=message):
        sniff_given(str(path), "save it again")
    with pytest.raises(PerfkitError, match=message):
        open_onnx(str(path))


def test_a_symlink_loop_and_a_dangling_link_are_said_so(tmp_path):
    from perfkit.files.formats import sniff_given

    (tmp_path / "a.onnx").symlink_to(tmp_path / "b.onnx")
    (tmp_path / "b.onnx").symlink_to(tmp_path / "a.onnx")
    (tmp_path / "gone.onnx").symlink_to(tmp_path / "never.onnx")
    with pytest.raises(PerfkitError, match=r"a.onnx: a symbolic link that loops back on itself — point the link"):
        sniff_given(str(tmp_path / "a.onnx"), "")
    with pytest.raises(PerfkitError, match=r"gone.onnx: a symbolic link to nothing \(its target is missing\)"):
        sniff_given(str(tmp_path / "gone.onnx"), "")
