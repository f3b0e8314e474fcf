"""A native model (scikit-learn, PyTorch, Keras/TensorFlow, or an MLflow folder holding one): which framework
loads it, whether that needs trust, and the input/output names it shares with its ONNX conversion.

The ONNX conversion defines the names: feeds are made for the ONNX inputs and handed to the native model
in the same order, and the native outputs are named after the ONNX outputs, so the two compare by name.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from perfkit.errors import PerfkitError
from perfkit.model import detect_format, file_digest

FRAMEWORKS = ("sklearn", "torch", "keras")
FRAMEWORK_NAMES = {"sklearn": "scikit-learn", "torch": "PyTorch", "keras": "Keras/TensorFlow"}
EXTRAS = {"sklearn": "perfkit[sklearn]", "torch": "perfkit[torch]", "keras": "perfkit[tensorflow]"}
SKLEARN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".skops")
TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".bin")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class Port:
    """One input or output as the conversion named it; dtype and shape as the native model is fed."""

    name: str
    dtype: str = "float32"
    shape: tuple[int | str | None, ...] | None = None


@dataclass(frozen=True)
class NativeModel:
    path: str  # the file or folder the framework loads
    format: str  # sklearn, skops, torchscript, exported-program, torch-save, keras, savedmodel
    framework: str  # the backend that runs it: sklearn, torch or keras
    digest: str
    trusted: bool = False  # the user allowed code-running loads (pickles, Keras lambdas)
    factory: str | None = None  # package.module:function building the module a state dict fills
    source: str = ""  # what the user named, when it differs (an MLflow folder)
    inputs: tuple[Port, ...] = ()  # filled by the export
    outputs: tuple[str, ...] = ()
    columns: bool = False  # scikit-learn fed a DataFrame, one ONNX input per column

    @property
    def label(self) -> str:
        return f"native:{self.framework}"


def is_native(path_text: str) -> bool:
    path = Path(path_text)
    if not path.exists():
        return False
    if path.is_dir():
        return detect_format(path) in ("mlflow", "savedmodel")
    if path.suffix.lower() == ".onnx":
        return False
    return detect_format(path) != "onnx" or path.suffix.lower() in SKLEARN_SUFFIXES + TORCH_SUFFIXES + \
        KERAS_SUFFIXES


def identify(path_text: str, trusted: bool = False, factory: str | None = None) -> NativeModel:
    """Which framework loads this file, from its layout and bytes (never by running it)."""
    path = Path(path_text)
    if not path.exists():
        raise PerfkitError(path_text, "no such file or folder", "check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise PerfkitError(path_text, "the file is empty", "save the model again")
    fmt = detect_format(path)
    if fmt == "mlflow":
        from perfkit.mlflow import resolve

        inner = resolve(path)
        if inner.suffix == ".onnx":
            raise PerfkitError(path_text, f"an MLflow model of the onnx flavor ({inner})",
                               f"benchmark the ONNX file itself: perfkit bench {inner}")
        return replace(identify(str(inner), trusted, factory), source=path_text)
    suffix = path.suffix.lower()
    kind = _native_format(path, fmt, suffix)
    if kind is None:
        raise PerfkitError(path_text, "not a model format perfkit loads natively",
                           "run `perfkit inspect FILE` to see what it is and the way to ONNX")
    framework = {"sklearn": "sklearn", "skops": "sklearn", "keras": "keras", "savedmodel": "keras"}.get(kind, "torch")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return NativeModel(str(path), kind, framework, file_digest(files), trusted, factory)


def _native_format(path: Path, fmt: str, suffix: str) -> str | None:
    if fmt == "savedmodel":
        return "savedmodel"
    if fmt in ("keras", "hdf5") or suffix in (".keras", ".h5", ".hdf5") and fmt != "pickle":
        return "keras"
    if suffix == ".skops":
        return "skops"
    if fmt == "torch-zip" or fmt == "zip" and suffix in TORCH_SUFFIXES:
        return torch_archive_kind(path)
    if fmt == "pickle" or suffix in (".pkl", ".pickle", ".joblib"):
        if suffix in TORCH_SUFFIXES or _legacy_torch(path):
            return "torch-save"  # torch.load tells weights from a whole module, with weights_only first
        return "sklearn"
    return None


def torch_archive_kind(path: Path) -> str:
    """TorchScript (code/ and constants.pkl), a torch.export program (.pt2: archive_format, models/),
    or torch.save's zip (data.pkl): a whole module or a state dict, told apart only when loaded."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        raise PerfkitError(str(path), "a damaged zip archive (not a complete PyTorch file)",
                           "save it again with torch.save / torch.jit.save / torch.export.save") from None
    tails = {n.split("/", 1)[-1] for n in names}
    if any(t.endswith("serialized_exported_program.json") or t == "archive_format" or
           t.startswith("models/") for t in tails):
        return "exported-program"
    if any(t.startswith("code/") for t in tails) or "constants.pkl" in tails:
        return "torchscript"
    if "data.pkl" in tails:
        return "torch-save"
    raise PerfkitError(str(path), "a zip archive, but not one PyTorch writes (no data.pkl, code/ or "
                       "serialized program)", "save the model with torch.jit.save or torch.export.save")


def _legacy_torch(path: Path) -> bool:
    """torch.save before 1.6 writes a pickled magic number first: 0x1950a86a20f9469cfc6c."""
    with path.open("rb") as f:
        head = f.read(16)
    return head[2:3] == b"\x8a" and head[4:14] == (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def backend_module(framework: str, subject: str):
    """The framework's backend module, or one line saying which extra to install."""
    import importlib

    module = importlib.import_module(f"perfkit.backends.{framework}")
    missing = module.missing()
    if missing:
        raise PerfkitError(subject, f"a {FRAMEWORK_NAMES[framework]} model needs {missing}, which is not installed",
                           f"pip install '{EXTRAS[framework]}'")
    return module


def user_code_importable() -> None:
    """A trusted pickle or a --factory names the user's own classes; like `python -m`, let them come from the
    folder the user works in (the console script starts with only its own bin folder on sys.path)."""
    import os
    import sys

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
