"""`perfkit inspect`: what a model file is — by its bytes, zip entries and folder layout, then its suffix —
whether perfkit can load and convert it here, and if not, the way to ONNX from the framework that made it.
Nothing is loaded that could run code: pickles are scanned, not unpickled."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import TensorInfo
from perfkit.files.formats import Sniffed, legacy_torch, sniff_given, torch_archive_kind
from perfkit.files.onnx_file import COREML_HINT, disk_size, external_data_files, open_onnx, read_signature
from perfkit.files.trust import scan_file
from perfkit.native.frameworks import EXTRAS, installed

if TYPE_CHECKING:
    import onnx

WEIGHT_GLOBALS = {"collections.OrderedDict", "torch.Size", "torch.device", "torch.dtype"}


def _weights_global(name: str) -> bool:
    """What a plain state dict imports: tensor rebuilders, storages, OrderedDict — no module classes."""
    return name in WEIGHT_GLOBALS or name.startswith("torch._utils.") or \
        name.startswith("torch.") and name.endswith("Storage")


@dataclass
class Inspection:
    path: str
    kind: str  # onnx, sklearn, joblib, skops, torchscript, exported-program, torch-save, keras, keras-h5, …
    what: str  # in words
    loads: bool  # perfkit can load and convert (or run) it here
    how: str  # the command to use it with perfkit, or the way to ONNX from the framework that made it
    details: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[tuple[str, str]]:
        state = "yes" if self.loads else "no"
        return [("file", self.path), ("format", self.what), ("perfkit loads", state), ("next", self.how),
                *self.details]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["details"] = dict(self.details)
        return out


def inspect_file(path_text: str) -> Inspection:
    path, sniffed = sniff_given(path_text, "re-export or re-download the model")
    describe = DESCRIBERS.get(sniffed.kind)
    if describe is None:
        return _onnx_or_graphdef(path)
    return describe(path, sniffed)


def _native(path: Path, kind: str, what: str, framework: str | None, how: str,
            details: list[tuple[str, str]] | None = None) -> Inspection:
    loads, missing = (False, "") if framework is None else installed(framework)
    if framework and not loads:
        how = f"install {missing} (pip install '{EXTRAS[framework]}'), then: {how}"
    return Inspection(str(path), kind, what, loads, how, details or [])


def _pickle_details(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(every global the pickle imports, the lines inspect shows for them)."""
    scan = scan_file(path)
    out = [("imports", ", ".join(scan.imports[:12]) + (f" (+{len(scan.imports) - 12} more)"
                                                       if len(scan.imports) > 12 else ""))]
    danger = scan.dangerous()
    out.append(("code at load", ", ".join(danger) if danger else "none beyond the classes listed"))
    if scan.stopped:
        out.append(("scan", f"incomplete: {scan.stopped}"))
    return scan.imports, out


def _pickle(path: Path, sniffed: Sniffed) -> Inspection:
    imports, details = _pickle_details(path)
    suffix = path.suffix.lower()
    if legacy_torch(path):
        return _native(path, "torch-save", "a PyTorch file in the legacy torch.save format (a pickle)", "torch",
                       f"perfkit bench {path} --shape x=… (--trust if it holds a whole module)", details)
    if any(g.startswith(("sklearn.", "lightgbm.", "xgboost.")) for g in imports):
        kind = "joblib" if any(g.startswith("joblib.") for g in imports) or suffix == ".joblib" else "sklearn"
        return _native(path, kind, f"a scikit-learn model, {'joblib' if kind == 'joblib' else 'pickled'} "
                       "(loading runs code)", "sklearn", f"perfkit convert {path} --trust -o model.onnx", details)
    return _native(path, "pickle", "a Python pickle (not recognisably a model; loading runs code)", None,
                   "load it in the framework that wrote it and export to ONNX from there", details)


def _rds(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "rds", "an R object (saveRDS)", None,
                   "perfkit does not run R: export the model to PMML with r2pmml (r2pmml(model, \"model.pmml\")), "
                   "then perfkit convert model.pmml; or retrain it in Python (scikit-learn, then perfkit convert)")


def _pmml(path: Path, sniffed: Sniffed) -> Inspection:
    """Read and converted in memory (perfkit's converter runs nothing from the file), so that "loads" is true."""
    from perfkit.backends.pmml import java_missing
    from perfkit.files.pmml import parse, read_schema, summary
    from perfkit.native.exporters import DEFAULT_OPSET
    from perfkit.native.pmml_export import convert_document

    root, what = parse(path), "a PMML document (XML)"
    try:
        schema = read_schema(root, str(path))
    except PerfkitError as exc:
        return Inspection(str(path), "pmml", what, False, f"{exc.what}: {exc.fix}")
    details = summary(root, schema)
    try:
        convert_document(root, schema, str(path), DEFAULT_OPSET)
    except PerfkitError as exc:
        return Inspection(str(path), "pmml", what, False, exc.fix, [("problem", exc.what), *details])
    java = java_missing()
    details.append(("native row", f"skipped here: {java[0]}" if java else "JPMML on this machine's Java"))
    return _native(path, "pmml", what, "pmml", f"perfkit bench {path} (or perfkit convert {path} -o model.onnx)",
                   details)


def _coreml(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "coreml", "a Core ML package" if path.is_dir() else COREML_HINT[0], None, COREML_HINT[1])


def _compressed_pickle(path: Path, sniffed: Sniffed) -> Inspection:
    try:
        _, details = _pickle_details(path)
    except Exception:
        return _native(path, "compressed", "a compressed file that is not a pickle perfkit can read", None,
                       "decompress it and run perfkit inspect on what is inside")
    return _native(path, "joblib", "a compressed joblib file (loading runs code)", "sklearn",
                   f"perfkit convert {path} --trust -o model.onnx", details)


def _damaged_zip(path: Path, sniffed: Sniffed) -> Inspection:
    raise PerfkitError(str(path), "a damaged zip archive", "copy or save the file again")


def _mleap(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "mleap", f"an MLeap bundle{' folder' if path.is_dir() else ''} (Spark ML pipeline)", None,
                   "perfkit does not run MLeap: save the Spark PipelineModel the bundle was made from with "
                   "model.write().save(path), then perfkit convert that folder (onnxmltools.convert_sparkml)")


def _spark(path: Path, sniffed: Sniffed) -> Inspection:
    """Stages and input columns from the metadata JSON; whether onnxmltools converts every stage (its map of
    pyspark classes is imported, which starts no JVM)."""
    from perfkit.backends.spark import java
    from perfkit.files.spark_folder import PIPELINE, read_folder

    folder = read_folder(str(path))
    names = [s.name for s in folder.stages]
    details = [("spark", folder.spark_version), ("stages", " → ".join(names) or "none"),
               ("inputs", ", ".join(f"{c.name} ({c.kind})" for c in folder.inputs()) or "none named")]
    if folder.cls == PIPELINE:
        return Inspection(str(path), "spark", "an unfitted Spark ML Pipeline (an estimator)", False,
                          "fit it and save the model: pipeline.fit(df).write().save(path)", details)
    what = "a Spark ML PipelineModel folder" if folder.pipeline else \
        f"a Spark ML {names[0]} saved alone (run as a one-stage pipeline)"
    found = _native(path, "spark", what, "spark", f"perfkit convert {path} -o model.onnx (it starts a local Spark "
                    "session: 30–45 s)", details)
    if found.loads and java() is None:
        found.loads, found.how = False, "install Java 17 or 21 (Spark runs on the JVM), then: " + found.how
    if found.loads:
        from perfkit.native.spark_export import unconvertible

        if missing := unconvertible(folder):
            found.loads = False
            found.how = (f"onnxmltools.convert_sparkml has no converter for {', '.join(missing)}: replace that "
                         "stage with a supported one, fit and save again")
    return found


def _skops(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "skops", "a scikit-learn model saved with skops (no pickle)", "sklearn",
                   f"perfkit convert {path} -o model.onnx")


def _keras(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "keras", "a Keras 3 model (.keras)", "keras", f"perfkit convert {path} -o model.onnx")


def _zip(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "zip", f"a zip archive of {len(sniffed.members)} files, not a model format perfkit knows",
                   None, "look inside: perfkit inspect works on the model file itself")


def _torch(path: Path, sniffed: Sniffed) -> Inspection:
    _check_crc(path)
    kind = torch_archive_kind(path, sniffed)
    if kind != "torch-save":
        what = {"torchscript": "a TorchScript archive (torch.jit.save)",
                "exported-program": "a torch.export program (.pt2)"}[kind]
        how = f"perfkit convert {path} -o model.onnx" + (" --shape x=…" if kind == "torchscript" else "")
        return _native(path, kind, what, "torch", how)
    imports, details = _pickle_details(path)
    classes = [g for g in imports if not _weights_global(g)]
    what = ("a torch.save archive holding a whole module (a pickle of its classes: loading runs code)"
            if classes else "a torch.save archive of tensors only (a state dict, if it is a model)")
    how = f"perfkit convert {path} -o model.onnx --shape x=… " + \
        ("--trust" if classes else "--factory package.module:function")
    return _native(path, kind, what, "torch", how, details)


def _check_crc(path: Path) -> None:
    """A zip archive whose entries fail their CRC check is damaged, whatever its listing promises (a torch.save
    archive cut short read as "a state dict of 0 tensors")."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PerfkitError(str(path), f"a damaged zip archive ({type(exc).__name__})", "copy or save the file again"
                           ) from None
    if bad:
        raise PerfkitError(str(path), f"a damaged zip archive: its entry {bad} fails its CRC check",
                           "copy or save the file again")


def _hdf5(path: Path, sniffed: Sniffed) -> Inspection:
    details = []
    what = "an HDF5 file (Keras 2 / tf.keras .h5)"
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if "model_config" in f.attrs:
                what = "a Keras model in HDF5 (.h5), architecture and weights"
                details.append(("keras", str(f.attrs.get("keras_version", "?"))))
            else:
                what = "an HDF5 file without a model config (weights only?)"
    except ImportError:
        details.append(("note", "h5py is not installed: the architecture was not checked"))
    except OSError as exc:
        raise PerfkitError(str(path), f"a damaged HDF5 file ({brief(exc, 120)})",
                           "save the model again") from None
    return _native(path, "keras-h5", what, "keras", f"perfkit convert {path} -o model.onnx", details)


def _mlflow(path: Path, sniffed: Sniffed) -> Inspection:
    from perfkit.native.mlflow import FLAVOR_ORDER, flavors, resolve

    found = flavors(path)
    used = next((f for f in FLAVOR_ORDER if f in found), None)
    if used:
        try:
            resolve(path)
        except PerfkitError as exc:
            return Inspection(str(path), "mlflow", "an MLflow model folder, incomplete or unsafe", False, exc.fix,
                              [("flavors", ", ".join(found)), ("problem", exc.what)])
    framework = {"sklearn": "sklearn", "pytorch": "torch", "keras": "keras", "tensorflow": "keras"}.get(used or "")
    details = [("flavors", ", ".join(found)), ("perfkit uses", used or "none")]
    if used == "onnx":
        return Inspection(str(path), "mlflow", "an MLflow model folder", True, f"perfkit bench {path}", details)
    if used is None:
        return _native(path, "mlflow", "an MLflow model folder", None,
                       "log it with the onnx, sklearn, pytorch, keras or tensorflow flavor", details)
    return _native(path, "mlflow", "an MLflow model folder", framework,
                   f"perfkit bench {path}" + (" --trust" if used in ("sklearn", "pytorch") else ""), details)


def _savedmodel(path: Path, sniffed: Sniffed) -> Inspection:
    return _native(path, "savedmodel", "a TensorFlow SavedModel folder", "keras",
                   f"perfkit convert {path} -o model.onnx (or python -m tf2onnx.convert --saved-model {path})")


def _directory(path: Path, sniffed: Sniffed) -> Inspection:
    if (path / "config.json").is_file():
        raise PerfkitError(str(path), "a folder with a config.json but no weights (no model.safetensors or "
                           "pytorch_model.bin)", "save the model with model.save_pretrained(folder), which writes both")
    raise PerfkitError(str(path), "a folder that is not a model (no MLmodel, saved_model.pb, config.json with "
                       "weights, bundle.json, or Spark ML metadata/)", "give the model file inside it")


def _huggingface(path: Path, sniffed: Sniffed) -> Inspection:
    from perfkit.files.safetensors import summarize

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PerfkitError(str(path), f"its config.json is not readable JSON ({brief(exc, 120)})",
                           "save the model again with model.save_pretrained(folder)") from None
    architectures = ", ".join(config.get("architectures") or []) or "none named (give --task)"
    details = [("model type", str(config.get("model_type", "?"))), ("architectures", architectures)]
    shards = sorted(path.glob("*.safetensors"))
    if shards:
        weights = summarize(shards)
        details += [("weights", f"{len(shards)} safetensors file{'s' if len(shards) > 1 else ''}, "
                                f"{weights.tensors} tensors, {weights.parameters:,} parameters, "
                                f"{'/'.join(weights.dtypes)}")]
    else:
        details += [("weights", ", ".join(p.name for p in sorted(path.glob("*.bin")))
                     + " (a pickle: read by torch's weights-only loader)")]
    if "auto_map" in config:
        details.append(("code at load", "auto_map names Python files in the folder (needs --trust)"))
    return _native(path, "huggingface", "a Hugging Face model folder (save_pretrained)", "hf",
                   f"perfkit bench {path}" + (" --trust" if "auto_map" in config else "")
                   + (" --task TASK" if not config.get("architectures") else ""), details)


def _safetensors(path: Path, sniffed: Sniffed) -> Inspection:
    from perfkit.files.safetensors import summarize

    weights = summarize([path])
    details = [("tensors", str(weights.tensors)), ("parameters", f"{weights.parameters:,}"),
               ("element types", ", ".join(weights.dtypes))]
    details += [("metadata", ", ".join(f"{k}={v}" for k, v in sorted(weights.metadata.items())[:6]))] \
        if weights.metadata else []
    beside = path.parent / "config.json"
    how = (f"perfkit bench {path.parent} (the folder, with its config.json)" if beside.is_file() else
           "weights alone do not say the architecture: bench the save_pretrained folder (config.json beside "
           "the weights), or export the module with torch.onnx.export and bench the .onnx")
    return _native(path, "safetensors", "safetensors weights (tensors only, no code)", None, how, details)


def _graphdef(path: Path, sniffed: Sniffed) -> Inspection:
    """Read from its protobuf bytes (TensorFlow is not imported): its ends as perfkit would take them."""
    from perfkit.files.graphdef import GraphNode, clean_name, graph_ends, node_of, read_graph

    graph = read_graph(path)
    nodes = {n.name: n for n in graph.nodes}
    ops = Counter(n.op for n in graph.nodes).most_common()
    details = [("producer", f"TensorFlow graph version {graph.producer}"), ("nodes", str(len(graph.nodes))),
               ("ops", ", ".join(f"{op} {n}" for op, n in ops[:15]) + (f" (+{len(ops) - 15} types)"
                                                                        if len(ops) > 15 else ""))]

    def port(tensor: str, node: GraphNode) -> str:
        dims = "?" if node.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in node.shape) + "]"
        return f"{clean_name(tensor)}: {node.dtype or node.op} {dims}"

    what, how = "a TensorFlow frozen graph (GraphDef .pb)", f"perfkit bench {path}"
    try:
        ends = graph_ends(graph, subject=str(path))
    except PerfkitError as exc:
        if "--output-names" not in exc.fix:
            return Inspection(str(path), "frozen-graph", what, False, exc.fix, [("problem", exc.what), *details])
        return _native(path, "frozen-graph", what, "tfgraph", f"{how} --output-names NAME[,NAME…]",
                       [("outputs", exc.what), *details])
    return _native(path, "frozen-graph", what, "tfgraph", how,
                   [*[("input", port(t, nodes[node_of(t)])) for t in ends.inputs],
                    *[("output", clean_name(t)) for t in ends.outputs], *details])


def _onnx_or_graphdef(path: Path) -> Inspection:
    try:
        _, proto = open_onnx(str(path))
    except PerfkitError as exc:
        if path.name == "saved_model.pb":
            raise PerfkitError(str(path), "the graph file of a TensorFlow SavedModel", f"give its folder: "
                               f"perfkit bench {path.parent}") from None
        if path.suffix.lower() == ".pb":
            raise PerfkitError(str(path), "neither an ONNX model nor a TensorFlow GraphDef (its bytes parse as "
                               "neither)", "copy or export the model again") from None
        raise PerfkitError(str(path), f"not a model format perfkit recognises ({exc.what})",
                           "perfkit reads ONNX and the native formats listed in its README") from None
    return Inspection(str(path), "onnx", "an ONNX model", True, f"perfkit bench {path}", onnx_details(path, proto))


def onnx_details(path: Path, proto: onnx.ModelProto) -> list[tuple[str, str]]:
    import numpy as np

    sig = read_signature(proto)
    opsets = ", ".join(f"{i.domain or 'ai.onnx'} {i.version}" for i in proto.opset_import)
    producer = f"{proto.producer_name} {proto.producer_version}".strip() or "not recorded"
    params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    size, ops = disk_size(str(path))
    external = external_data_files(proto, path)
    top = sorted(ops.items(), key=lambda kv: -kv[1])

    def port(t: TensorInfo) -> str:
        dims = "?" if t.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in t.shape) + "]"
        return f"{t.name}: {t.dtype or t.kind} {dims}"

    return [("IR version", str(proto.ir_version)), ("opsets", opsets), ("producer", producer),
            *[("input", port(t)) for t in sig.inputs], *[("output", port(t)) for t in sig.outputs],
            ("ops", ", ".join(f"{op} {n}" for op, n in top[:15]) + (f" (+{len(top) - 15} types)"
                                                                     if len(top) > 15 else "")),
            ("nodes", str(sum(ops.values()))), ("parameters", f"{params:,}"),
            ("size", f"{size:,} bytes"),
            ("external data", ", ".join(f.name for f in external) if external else "none")]


# What the sniffer found -> how inspect describes it; anything not listed is tried as ONNX.
DESCRIBERS: dict[str, Callable[[Path, Sniffed], Inspection]] = {
    "mlflow": _mlflow, "savedmodel": _savedmodel, "mleap": _mleap, "coreml": _coreml, "directory": _directory,
    "hdf5": _hdf5, "pickle": _pickle, "damaged-zip": _damaged_zip, "skops": _skops, "keras": _keras,
    "torch": _torch, "zip": _zip, "rds": _rds, "compressed": _compressed_pickle, "pmml": _pmml,
    "huggingface": _huggingface, "safetensors": _safetensors,
    "graphdef": _graphdef, "spark": _spark,
}
