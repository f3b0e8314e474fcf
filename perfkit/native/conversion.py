"""A native model's ONNX conversion, cached like a variant: built in a worker, keyed by the file's content,
the options and the converters' versions, and refused before caching when onnxruntime will not load it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from perfkit.core import VERSION
from perfkit.core.errors import CaseFailed, PerfkitError
from perfkit.core.model import NativeHints, NativeModel, Port
from perfkit.core.spec import InputShape
from perfkit.files.onnx_file import file_digest
from perfkit.measure.isolate import call_in
from perfkit.native.exporters import ExportJob, export

# The package versions that decide what a conversion writes: a change of any makes a new cache entry.
CONVERTER_PACKAGES = {
    "sklearn": ("scikit-learn", "skl2onnx", "onnxmltools", "lightgbm", "xgboost", "xgboost-cpu"),
    "torch": ("torch", "onnxscript"),
    "keras": ("keras", "tensorflow", "tf2onnx"),
    "hf": ("torch", "onnxscript", "transformers", "optimum", "optimum-onnx"),
    "tfgraph": ("tensorflow", "tf2onnx"),
    "spark": ("pyspark", "onnxmltools"),
    "pmml": (),  # perfkit converts PMML itself: its own version keys the cache
}
ONNX_FILE, NATIVE_FILE = "model.onnx", "native.json"


@dataclass(frozen=True)
class Converted:
    native: NativeModel  # with the input and output names of the conversion
    onnx_path: str
    notes: tuple[str, ...]
    cached: bool = False


def convert(native: NativeModel, *, cache_dir: str, opset: int | None = None,
            shapes: tuple[InputShape, ...] = (), data: str | None = None,
            float64: bool = False, timeout_s: float = 600, isolate: bool = True) -> Converted:
    """The cached ONNX conversion, built in a worker (a framework that crashes takes only the worker)."""
    folder = Path(cache_dir) / "exports" / export_key(native, opset, shapes, data, float64)
    if (folder / ONNX_FILE).is_file() and (folder / NATIVE_FILE).is_file():
        meta = json.loads((folder / NATIVE_FILE).read_text())
        filled = replace(native, inputs=tuple(Port(p["name"], p["dtype"], _shape(p["shape"]))
                                              for p in meta["inputs"]),
                         outputs=tuple(meta["outputs"]), columns=meta["columns"])
        return Converted(filled, str(folder / ONNX_FILE), tuple(meta["notes"]), cached=True)
    created = [p for p in (folder.parent.parent, folder.parent) if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    done = False
    try:
        job = ExportJob(native=native, dst=str(tmp / ONNX_FILE), opset=opset, shapes=shapes, data=data,
                        float64=float64)
        try:
            filled, notes = call_in(export, job, timeout_s, isolate)
        except CaseFailed as exc:
            raise PerfkitError(native.source or native.path, f"the conversion to ONNX failed: {exc}",
                               "pass --debug --no-isolate to see where, or convert it yourself and give the .onnx"
                               ) from None
        meta = {"inputs": [asdict(p) for p in filled.inputs], "outputs": list(filled.outputs),
                "columns": filled.columns, "notes": list(notes)}
        (tmp / NATIVE_FILE).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:  # a failed conversion leaves no trace: not even the cache folders it made
            for made in reversed(created):
                with contextlib.suppress(OSError):
                    made.rmdir()
    return Converted(filled, str(folder / ONNX_FILE), tuple(notes))


def _shape(value: Any) -> tuple | None:
    return None if value is None else tuple(value)


def export_key(native: NativeModel, opset: int | None, shapes: tuple[InputShape, ...], data: str | None,
               float64: bool) -> str:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("onnx", *CONVERTER_PACKAGES[native.framework]):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    key = {"digest": native.digest, "format": native.format, "factory": native.factory, "opset": opset,
           **({"hints": asdict(native.hints)} if native.hints != NativeHints() else {}),
           # a shape without a dtype keys as it did before --shape took one: those conversions stay cached
           "shapes": [[s.name, str(s.dims), *([s.dtype] if s.dtype else [])] for s in shapes],
           "perfkit": VERSION, "versions": versions,
           "float64": float64, "data": file_digest([Path(data)]) if data else None}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
