"""ONNX files read into nouns without running them: the file checked (protobuf, opset, external data inside
its folder), its content digest, its signature, its size and op histogram."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.core.errors import PerfkitError
from perfkit.core.model import Model, Signature, TensorInfo
from perfkit.files.formats import LFS_HINT, missing, sniff

if TYPE_CHECKING:
    import onnx

# A native model given where ONNX was expected: what it is, and the way from there to ONNX.
NATIVE_HINTS = {
    "pickle": ("a Python pickle (scikit-learn or a full PyTorch module)",
               "convert it to ONNX with skl2onnx or torch.onnx.export"),
    "torch": ("a PyTorch archive", "export it with torch.onnx.export(model, args, 'model.onnx')"),
    "keras": ("a Keras model", "export it with tf2onnx or keras' model.export(..., format='onnx')"),
    "hdf5": ("an HDF5 file (Keras .h5)", "convert it with tf2onnx"),
    "savedmodel": ("a TensorFlow SavedModel", "convert it with python -m tf2onnx.convert --saved-model DIR"),
    "mlflow": ("an MLflow model folder", "point perfkit at the ONNX file of an onnx-flavored model"),
    "graphdef": ("a TensorFlow frozen graph (GraphDef)", "convert it first: perfkit convert FILE -o model.onnx"),
}
# Said by bench, convert and inspect alike. onnxmltools' convert_coreml imports coremltools (not a dependency),
# and with it refuses layers such as innerProduct under the current onnx.
COREML_HINT = ("a Core ML model", "perfkit does not load Core ML: it predicts only on Apple platforms, and "
               "onnxmltools' Core ML converter does not work with this onnx stack (it needs coremltools, then refuses "
               "layers such as innerProduct); convert the model to ONNX from the framework it was made in "
               "(torch.onnx.export, tf2onnx, skl2onnx)")
NATIVE_HINTS["coreml"] = COREML_HINT


def file_digest(paths: list[Path]) -> str:
    """sha256 of the files' contents, in the order given."""
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def open_onnx(path_text: str) -> tuple[Model, onnx.ModelProto]:
    """Check an ONNX file thoroughly without running it; external data is located but not loaded."""
    path = Path(path_text)
    if not path.exists():
        raise PerfkitError(path_text, *missing(path))
    kind = sniff(path).kind
    if path.is_dir() and kind not in NATIVE_HINTS:
        raise PerfkitError(path_text, "is a directory", "give the .onnx file inside it")
    if kind == "lfs-pointer":
        raise PerfkitError(path_text, *LFS_HINT)
    if kind in NATIVE_HINTS:
        what, fix = NATIVE_HINTS[kind]
        raise PerfkitError(path_text, f"is {what}, not ONNX", fix)
    if path.stat().st_size == 0:
        raise PerfkitError(path_text, "the file is empty", "re-export or re-download the model")
    proto = _parse(path)
    data_files = external_data_files(proto, path)
    model = Model(str(path), "onnx", file_digest([path, *data_files]))
    return model, proto


def _parse(path: Path) -> onnx.ModelProto:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise PerfkitError(str(path), f"{_what_it_looks_like(path)} ({type(exc).__name__})",
                           "give a binary .onnx file as onnx.save_model writes it; re-export it if it was cut short"
                           ) from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise PerfkitError(str(path), f"{_what_it_looks_like(path)}: no ONNX graph in it",
                           "give a binary .onnx file exported by a framework")
    newest = onnx.defs.onnx_opset_version()
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > newest:
            raise PerfkitError(str(path), f"opset {imp.version} is newer than this onnx knows (≤ {newest})",
                               "upgrade onnx and onnxruntime, or re-export with an older opset")
    return proto


def _what_it_looks_like(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4096)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a valid ONNX protobuf (corrupt or truncated)"
    if text and all(c.isprintable() or c in "\t\n\r" for c in text):
        return "a text file, not a binary ONNX model"
    return "not a valid ONNX protobuf (corrupt or truncated)"


def external_data_files(proto: onnx.ModelProto, path: Path) -> list[Path]:
    """Every external-data file the model names, checked to exist inside the model's folder."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    folder = path.resolve().parent
    files: dict[Path, int] = {}
    for tensor in _get_all_tensors(proto):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        target = (folder / info.location).resolve()
        if Path(info.location).is_absolute() or not target.is_relative_to(folder):
            raise PerfkitError(str(path), f"external data '{info.location}' points outside the model's folder",
                               "keep external data files beside the model (onnx.save_model(..., "
                               "location='NAME.data'))")
        if not target.is_file():
            raise PerfkitError(str(path), f"missing external data file '{info.location}'",
                               "copy it next to the model")
        end = (info.offset or 0) + (info.length or 0)
        files[target] = max(files.get(target, 0), end)
    for target, end in files.items():
        if (size := target.stat().st_size) < end:
            raise PerfkitError(str(path), f"external data file '{target.name}' is shorter than the model says "
                               f"({size:,} bytes; its tensors reach byte {end:,})",
                               "copy the complete file next to the model")
    return sorted(files)


def disk_size(path_text: str) -> tuple[int, dict[str, int]]:
    """(bytes on disk with external data, op histogram) of an ONNX file, read without its weights."""
    import onnx

    path = Path(path_text)
    proto = onnx.load(str(path), load_external_data=False)
    files = external_data_files(proto, path)
    return path.stat().st_size + sum(f.stat().st_size for f in files), dict(op_histogram(proto))


def read_signature(proto: onnx.ModelProto) -> Signature:
    """Inputs (initializers excluded) and outputs with their declared types and shapes."""
    initializers = {t.name for t in proto.graph.initializer}
    limits = index_limits(proto)
    inputs = tuple(replace(_tensor_info(v), index_limit=limits.get(v.name)) for v in proto.graph.input
                   if v.name not in initializers)
    outputs = tuple(_tensor_info(v) for v in proto.graph.output)
    return Signature(inputs, outputs)


def index_limits(proto: onnx.ModelProto) -> dict[str, int]:
    """Inputs used (directly or through a Cast) as indices into a weight table — by Gather, or by onnxruntime's
    fused EmbedLayerNormalization — the largest index every such table accepts, so synthetic token or segment
    ids stay in range (a BERT segment table has two rows)."""
    tables = {t.name: list(t.dims) for t in proto.graph.initializer}
    source = {i.name: i.name for i in proto.graph.input}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.input and node.input[0] in source:
            source[node.output[0]] = source[node.input[0]]
    limits: dict[str, int] = {}

    def limit(ids: str, table: str, axis: int = 0) -> None:
        dims = tables.get(table)
        if ids in source and dims and -len(dims) <= axis < len(dims):
            name = source[ids]
            limits[name] = min(limits.get(name, dims[axis] - 1), dims[axis] - 1)

    for node in proto.graph.node:
        if node.op_type == "Gather" and len(node.input) >= 2:
            limit(node.input[1], node.input[0], next((a.i for a in node.attribute if a.name == "axis"), 0))
        elif node.op_type == "EmbedLayerNormalization":  # onnxruntime's fused BERT embedding: its own lookups
            for ids, table in EMBED_LOOKUPS:
                if max(ids, table) < len(node.input) and node.input[ids]:
                    limit(node.input[ids], node.input[table])
    return limits


# EmbedLayerNormalization's inputs: (input_ids, segment_ids, word_embedding, position_embedding,
# segment_embedding, …): token ids index the word table, segment ids the segment table (two rows in BERT).
EMBED_LOOKUPS = ((0, 2), (1, 4))


def dtype_name(elem_type: int) -> str:
    """An ONNX element type as numpy names it (float32, float64, bfloat16, …)."""
    from onnx import TensorProto

    name = TensorProto.DataType.Name(elem_type).lower()
    return {"float": "float32", "double": "float64"}.get(name, name)


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    kind = value.type.WhichOneof("value") or "unknown"
    if kind != "tensor_type":
        return TensorInfo(value.name, "", None, kind.removesuffix("_type"))
    tt = value.type.tensor_type
    dtype = dtype_name(tt.elem_type)
    if not tt.HasField("shape"):
        return TensorInfo(value.name, dtype, None)
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
    )
    return TensorInfo(value.name, dtype, dims)


PASS_THROUGH = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Transpose")
# A last op that makes features, never class scores: a pooler's Tanh, a normalised hidden state, a pooled map.
FEATURE_OPS = ("Tanh", "LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
               "RMSNormalization", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "AveragePool", "MaxPool",
               "LpNormalization", "Relu")


def feature_outputs(proto: onnx.ModelProto) -> tuple[str, ...]:
    """The outputs whose last op (past reshapes and casts) makes features: label agreement means nothing on
    them, whatever their shape or name (a tuple-returning BERT's pooler is `output_1`, (batch, 768))."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    found = []
    for output in proto.graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in PASS_THROUGH and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.op_type in FEATURE_OPS:
            found.append(output.name)
    return tuple(found)


def op_histogram(proto: onnx.ModelProto) -> Counter[str]:
    """Op types of every node, subgraphs included, prefixed with their domain when it is not ONNX's own."""
    counts: Counter[str] = Counter()

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            counts[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"] += 1
            for attr in node.attribute:
                if attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(proto.graph)
    return counts
