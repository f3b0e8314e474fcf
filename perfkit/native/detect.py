"""Which framework loads a native model, from its layout and bytes (never by running it): the NativeModel that
the conversion, the native rows and the parity check share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from perfkit.core.errors import PerfkitError
from perfkit.core.model import NO_HINTS, NativeHints, NativeModel
from perfkit.files.formats import Sniffed, legacy_torch, sniff, sniff_given, torch_archive_kind
from perfkit.files.onnx_file import COREML_HINT, file_digest
from perfkit.files.trust import require_trust
from perfkit.native.frameworks import KERAS_SUFFIXES, SKLEARN_SUFFIXES, TORCH_SUFFIXES

# Files the sniffer finds that perfkit may load natively; anything else is read as ONNX (and named if not).
NATIVE_FILE_KINDS = ("hdf5", "pickle", "torch", "keras", "skops", "mleap", "zip", "damaged-zip", "graphdef", "pmml")
NATIVE_FOLDER_KINDS = ("mlflow", "savedmodel", "huggingface", "spark")
# A native format -> the framework (backend) that runs it; a torch format is any not listed.
FORMAT_FRAMEWORKS = {"sklearn": "sklearn", "skops": "sklearn", "keras": "keras", "savedmodel": "keras",
                     "huggingface": "hf", "frozen-graph": "tfgraph", "spark-pipeline": "spark", "pmml": "pmml"}

def is_native(path_text: str) -> bool:
    path = Path(path_text)
    if not path.exists():
        return False
    kind = sniff(path).kind
    if path.is_dir():
        return kind in NATIVE_FOLDER_KINDS
    if path.suffix.lower() == ".onnx":
        return False
    return kind in NATIVE_FILE_KINDS or path.suffix.lower() in SKLEARN_SUFFIXES + TORCH_SUFFIXES + KERAS_SUFFIXES


def detect(path_text: str, trusted: bool = False, factory: str | None = None,
           hints: NativeHints = NO_HINTS) -> NativeModel:
    """The native model at `path_text`: format, framework, content digest; an MLflow folder is followed to
    the model file of its flavor."""
    path, sniffed = sniff_given(path_text, "save the model again")
    if sniffed.kind == "mlflow":
        from perfkit.native.mlflow import resolve

        inner = resolve(path)
        if inner.suffix == ".onnx":
            raise PerfkitError(path_text, f"an MLflow model of the onnx flavor ({inner})",
                               f"benchmark the ONNX file itself: perfkit bench {inner}")
        return replace(detect(str(inner), trusted, factory, hints), source=path_text)
    if sniffed.kind == "coreml":
        raise PerfkitError(path_text, f"is {COREML_HINT[0]}", COREML_HINT[1])
    kind = _native_format(path, sniffed)
    if kind is None:
        raise PerfkitError(path_text, "not a model format perfkit loads natively",
                           "run `perfkit inspect FILE` to see what it is and the way to ONNX")
    framework = FORMAT_FRAMEWORKS.get(kind, "torch")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return NativeModel(path=str(path), format=kind, framework=framework, digest=file_digest(files), trusted=trusted,
                       factory=factory, hints=hints)


def _native_format(path: Path, sniffed: Sniffed) -> str | None:
    kind, suffix = sniffed.kind, path.suffix.lower()
    if kind in ("savedmodel", "huggingface"):
        return kind
    if kind == "graphdef":
        return "frozen-graph"
    if kind == "pmml":
        return "pmml"
    if kind == "spark":
        return "spark-pipeline"  # a PipelineModel folder, or one fitted model saved alone (run as one stage)
    if kind in ("keras", "hdf5") or suffix in KERAS_SUFFIXES and kind != "pickle":
        return "keras"
    if suffix == ".skops":
        return "skops"
    if kind == "torch" or kind in ("zip", "damaged-zip") and suffix in TORCH_SUFFIXES:
        return torch_archive_kind(path, sniffed)
    if kind == "pickle" or suffix in (".pkl", ".pickle", ".joblib"):
        if suffix in TORCH_SUFFIXES or legacy_torch(path):
            return "torch-save"  # torch.load tells weights from a whole module, with weights_only first
        return "sklearn"
    return None


def prepare_native(path: str, trust: bool, factory: str | None, hints: NativeHints = NO_HINTS) -> NativeModel:
    """Detect the file and refuse an untrusted pickle here, before any worker starts."""
    native = detect(path, trust, factory, hints)
    if native.format == "sklearn":
        require_trust(native.path, native.trusted, "this scikit-learn file", native.source or None)
    return native
