"""--upgrade-opset: an ONNX model older than onnxruntime's oldest opset is upgraded with onnx.version_converter
into perfkit's cache (keyed by its content digest, never beside the user's file), and measured as upgraded."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.backends.ort import OLDEST_OPSET, UPGRADE_TO
from perfkit.core import VERSION
from perfkit.core.errors import CaseFailed, PerfkitError
from perfkit.core.model import Model
from perfkit.files.onnx_file import external_data_files, open_onnx
from perfkit.files.onnx_types import nodes
from perfkit.measure.isolate import call_in
from perfkit.transforms.cache import MODEL_FILE, load_problem, save

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class Upgraded:
    """The model a run measures instead of the user's file, and the warning that says so."""

    model: Model
    proto: onnx.ModelProto
    warning: str


@dataclass(frozen=True)
class UpgradeJob:
    src: str  # the user's file, named in an error
    dst: str


def default_opset(proto: onnx.ModelProto) -> int | None:
    return next((i.version for i in proto.opset_import if i.domain in ("", "ai.onnx")), None)


def too_old(proto: onnx.ModelProto) -> int | None:
    """The model's default-domain opset when onnxruntime has no kernels that old; None when it runs as is."""
    opset = default_opset(proto)
    return opset if opset is not None and opset < OLDEST_OPSET else None


def upgrade_opset(model: Model, proto: onnx.ModelProto, cache_dir: str, timeout_s: float,
                  isolate: bool) -> Upgraded | None:
    """The model upgraded to UPGRADE_TO (cached by content digest and the converter's version), or None when
    its opset needs no upgrade. A conversion that fails, or one onnxruntime still refuses, is a PerfkitError."""
    opset = too_old(proto)
    if opset is None:
        return None
    folder = Path(cache_dir) / "upgraded" / _key(model.digest)
    if not (folder / MODEL_FILE).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
        try:
            try:
                call_in(upgrade_file, UpgradeJob(model.path, str(tmp / MODEL_FILE)), timeout_s, isolate)
            except CaseFailed as exc:
                raise PerfkitError(model.path, f"onnx.version_converter could not upgrade opset {opset} → "
                                   f"{UPGRADE_TO}: {exc}", f"re-export it at opset {UPGRADE_TO} or later from the "
                                   "framework it was made in") from None
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    upgraded, new_proto = open_onnx(str(folder / MODEL_FILE))
    return Upgraded(upgraded, new_proto, f"{model.path}: opset {opset} → {UPGRADE_TO} by onnx.version_converter "
                    f"(--upgrade-opset): the figures are for the upgraded model, {upgraded.path}")


def upgrade_file(job: UpgradeJob) -> None:
    """Read the model with its weights, upgrade it, write it; onnxruntime must load what was written."""
    import onnx
    from onnx import version_converter

    large = bool(external_data_files(onnx.load(job.src, load_external_data=False), Path(job.src)))
    proto = onnx.load(job.src)
    try:
        upgraded = version_converter.convert_version(proto, UPGRADE_TO)
    except Exception as exc:  # onnx raises RuntimeError, ValidationError or its C++ adapter errors
        raise PerfkitError(job.src, f"onnx.version_converter could not upgrade opset {default_opset(proto)} → "
                           f"{UPGRADE_TO}: {converter_message(exc, proto)}", f"re-export it at opset {UPGRADE_TO} or "
                           "later from the framework it was made in") from None
    save(upgraded, Path(job.dst), large)
    if problem := load_problem(job.dst):
        raise PerfkitError(job.src, f"upgraded to opset {UPGRADE_TO} by onnx.version_converter, onnxruntime "
                           f"still refuses it: {problem}", f"re-export it at opset {UPGRADE_TO} or later from the "
                           "framework it was made in")


def converter_message(exc: BaseException, proto: onnx.ModelProto) -> str:
    """The version converter's C++ assertion as a reason: ops without a schema named (its own message prints
    a format string), the rest without the source location and the assertion's expression."""
    import onnx

    text = " ".join(str(exc).split())
    if "has no registered schema" in text:
        unknown = sorted({n.op_type for n in nodes(proto.graph)
                          if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
        return f"ONNX has no schema for {', '.join(unknown) or 'one of its ops'} (not an ONNX op, or one since removed)"
    return text.split(" failed: ", 1)[-1][:200]


def _key(digest: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("onnx", "onnxruntime"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    text = json.dumps({"digest": digest, "to": UPGRADE_TO, "perfkit": VERSION, "versions": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]
