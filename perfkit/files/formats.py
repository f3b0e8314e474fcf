"""What a path holds, from its folder layout and first bytes (then its suffix, where bytes cannot tell): the
one format sniffer that `perfkit bench`, `perfkit inspect` and the ONNX reader share. Nothing is loaded."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError
from perfkit.files.graphdef import looks_like_graphdef
from perfkit.files.spark_folder import is_spark_folder

HDF5 = b"\x89HDF\r\n\x1a\n"
GZIP, BZ2, XZ, ZLIB = b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x78"
RDS_HEADS = (b"X\n", b"RDX2\n", b"RDX3\n")
LEGACY_TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")  # torch.save before 1.6, pickled first
HEAD_BYTES = 64
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
# The weight files transformers' save_pretrained writes beside config.json (sharded ones with an index).
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
              "tf_model.h5", "flax_model.msgpack")  # what a clone without git-lfs holds instead of the file


@dataclass(frozen=True)
class Sniffed:
    """What a path holds. Folders: mlflow, savedmodel, mleap, huggingface, spark, coreml, directory. Files:
    lfs-pointer, hdf5, safetensors, pickle, zip archives (torch, keras, skops, mleap, damaged-zip, or plain zip),
    rds, compressed, pmml, coreml, graphdef (a TensorFlow frozen graph .pb), and onnx for anything else (what
    perfkit reads by default)."""

    kind: str
    members: tuple[str, ...] = ()  # a zip archive's entries


def sniff(path: Path) -> Sniffed:
    """The kind of an existing file or folder; never runs it."""
    if path.is_dir():
        return Sniffed(_folder_kind(path))
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    if head.startswith(LFS_POINTER):
        return Sniffed("lfs-pointer")
    if head.startswith(HDF5):
        return Sniffed("hdf5")
    if looks_like_pickle(head):
        return Sniffed("pickle")
    if head.startswith(b"PK\x03\x04"):
        return _zip(path)
    if is_safetensors(head):
        return Sniffed("safetensors")
    suffix = path.suffix.lower()
    if suffix == ".rds" or head.startswith(RDS_HEADS) or head.startswith((GZIP, BZ2, XZ)) and _compressed_rds(path):
        return Sniffed("rds")
    if head.startswith((ZLIB, GZIP, BZ2, XZ)):
        return Sniffed("compressed")
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") and b"<PMML" in path.read_bytes()[:4096]:
        return Sniffed("pmml")
    return _protobuf_kind(suffix, head)


def _protobuf_kind(suffix: str, head: bytes) -> Sniffed:
    """Core ML specs and GraphDefs are protobufs like ONNX: the suffix says which to try, the head confirms a
    GraphDef (a real ONNX file named .pb stays ONNX)."""
    if suffix == ".mlmodel":
        return Sniffed("coreml")
    if suffix == ".pb" and looks_like_graphdef(head):
        return Sniffed("graphdef")
    return Sniffed("onnx")


def sniff_given(path_text: str, empty_fix: str) -> tuple[Path, Sniffed]:
    """A path the user gave, and what it holds; one line when it is missing, or an empty file."""
    path = Path(path_text)
    if not path.exists():
        raise PerfkitError(path_text, *missing(path))
    if path.is_file() and path.stat().st_size == 0:
        raise PerfkitError(path_text, "the file is empty", empty_fix)
    sniffed = sniff(path)
    if sniffed.kind == "lfs-pointer":
        raise PerfkitError(path_text, *LFS_HINT)
    return path, sniffed


def missing(path: Path) -> tuple[str, str]:
    """(what, fix) for a path that does not lead to anything: a symbolic link that loops or dangles is said so,
    not called missing."""
    if path.is_symlink() or any(p.is_symlink() for p in path.parents if p != p.parent):
        try:
            path.resolve(strict=True)
        except RuntimeError:  # a loop: Python names it so
            return "a symbolic link that loops back on itself", "point the link at the model file"
        except OSError:
            return "a symbolic link to nothing (its target is missing)", "point the link at the model file"
    return "no such file or folder", "check the path"


LFS_HINT = ("a git-LFS pointer, not the model's bytes (the repository was cloned without git-lfs)",
            "run `git lfs pull` in the repository (after `git lfs install`), then try again")


def _folder_kind(path: Path) -> str:
    if (path / "MLmodel").is_file():
        return "mlflow"
    if (path / "saved_model.pb").is_file():
        return "savedmodel"
    if (path / "bundle.json").is_file():
        return "mleap"
    if (path / "config.json").is_file() and any((path / f).is_file() for f in HF_WEIGHTS):
        return "huggingface"
    if (path / "Manifest.json").is_file() and path.suffix == ".mlpackage":
        return "coreml"
    if is_spark_folder(path):
        return "spark"  # a Spark ML PipelineModel, or one fitted model saved alone
    return "directory"


def _zip(path: Path) -> Sniffed:
    try:
        with zipfile.ZipFile(path) as z:
            names = tuple(z.namelist())
    except zipfile.BadZipFile:
        return Sniffed("damaged-zip")
    tails = {n.split("/", 1)[-1] for n in names}
    if "bundle.json" in names or "root/bundle.json" in tails:
        kind = "mleap"
    elif "schema.json" in names and (path.suffix.lower() == ".skops" or "config.json" not in names):
        kind = "skops"
    elif "config.json" in names and any(n.endswith(".h5") for n in names):
        kind = "keras"
    elif any(t.endswith("data.pkl") or t.startswith(("code/", "models/")) or t == "archive_format" for t in tails):
        kind = "torch"
    else:
        kind = "zip"
    return Sniffed(kind, names)


def is_safetensors(head: bytes) -> bool:
    """A safetensors file: the length of its JSON header (8 bytes, little-endian), then the header itself."""
    return len(head) > 10 and 2 <= int.from_bytes(head[:8], "little") < 100 << 20 and head[8:10] in (b'{"', b"{ ")


def looks_like_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 to 5 opens with the PROTO opcode and its version; read, never loaded."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def legacy_torch(path: Path) -> bool:
    """torch.save before 1.6 writes a pickled magic number first: 0x1950a86a20f9469cfc6c."""
    with path.open("rb") as f:
        head = f.read(16)
    return head[2:3] == b"\x8a" and head[4:14] == LEGACY_TORCH_MAGIC


def torch_archive_kind(path: Path, sniffed: Sniffed) -> str:
    """TorchScript (code/ and constants.pkl), a torch.export program (.pt2: archive_format, models/),
    or torch.save's zip (data.pkl): a whole module or a state dict, told apart only when loaded."""
    if sniffed.kind == "damaged-zip":
        raise PerfkitError(str(path), "a damaged zip archive (not a complete PyTorch file)",
                           "save it again with torch.save / torch.jit.save / torch.export.save")
    tails = {n.split("/", 1)[-1] for n in sniffed.members}
    if any(t.endswith("serialized_exported_program.json") or t == "archive_format" or
           t.startswith("models/") for t in tails):
        return "exported-program"
    if any(t.startswith("code/") for t in tails) or "constants.pkl" in tails:
        return "torchscript"
    if "data.pkl" in tails:
        return "torch-save"
    raise PerfkitError(str(path), "a zip archive, but not one PyTorch writes (no data.pkl, code/ or "
                       "serialized program)", "save the model with torch.jit.save or torch.export.save")


def _compressed_rds(path: Path) -> bool:
    import bz2
    import gzip
    import lzma

    opener: dict[bytes, Callable[..., Any]] = {GZIP: gzip.open, BZ2: bz2.open, XZ: lzma.open}
    with path.open("rb") as f:
        head = f.read(6)
    for magic, fn in opener.items():
        if head.startswith(magic):
            try:
                with fn(path, "rb") as inner:
                    return inner.read(5).startswith(RDS_HEADS)
            except (OSError, EOFError, lzma.LZMAError):
                return False
    return False
