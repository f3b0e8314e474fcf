"""int8 quantization with onnxruntime's tools: pre-processing first, then dynamic or static (calibrated)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError, Unsupported, brief
from perfkit.files.onnx_file import op_histogram
from perfkit.transforms import BuildContext
from perfkit.transforms.cache import save, weights_beside

CALIBRATE = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def preprocess(src: Path, work: Path, large: bool) -> tuple[Path, list[str]]:
    """onnxruntime's quantization pre-processing: symbolic shape inference and graph optimization, so the
    quantizer sees shapes and fused patterns. A model it cannot infer is quantized as it is, with a note."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "pre.onnx"
    try:
        quant_pre_process(str(src), str(out), save_as_external_data=large, all_tensors_to_one_file=True)
        return out, []
    except Exception as exc:  # its shape inference raises anything from sympy to KeyError on odd graphs
        first = brief(exc, 120)
        try:
            quant_pre_process(str(src), str(out), skip_symbolic_shape=True, save_as_external_data=large,
                              all_tensors_to_one_file=True)
            return out, [f"symbolic shape inference failed ({first}); pre-processed without it"]
        except Exception as exc2:
            second = " ".join(str(exc2).split())[:120] or type(exc2).__name__
            return src, [f"quantization pre-processing failed ({second}); quantized the model as it is"]


def dynamic(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    """Weights to int8 ahead of time, activations quantized per call from their own range. `exclude` names
    nodes of the pre-processed model (see `excluded`) to keep in float; the dynamic quantizer splits a Gemm G
    into a MatMul it calls G_MatMul and an Add, so that name is excluded too."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    large = weights_beside(src)
    with tempfile.TemporaryDirectory(dir=dst.parent) as work:
        pre, notes = preprocess(src, Path(work), large)
        pre = name_nodes(pre, Path(work), large)
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8 if options["weights"] == "qint8"
                         else QuantType.QUInt8, per_channel=options["per_channel"],
                         reduce_range=options["reduce_range"], use_external_data_format=large,
                         nodes_to_exclude=[*(kept := excluded(pre, options["exclude"])),
                                           *(f"{name}_MatMul" for name in kept)])
    return notes + _nothing_quantized(dst)


def static(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    """Weights and activations to int8 with ranges calibrated on the calibration feeds. `exclude` names nodes
    of the pre-processed model (see `excluded`) to keep in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not ctx.calibration:
        raise Unsupported("int8-static needs calibration data and the model's inputs cannot be synthesised")
    activation = QuantType.QUInt8 if options["types"] == "u8s8" else QuantType.QInt8
    large = weights_beside(src)
    extra: dict[str, bool | float] = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if options["exclude"]:  # a Relu folded into its QuantizeLinear would be lost to a node that reads around it
        extra["QDQKeepRemovableActivations"] = True
    if options["calibrate"] == "percentile":
        extra["CalibPercentile"] = 99.999  # onnxruntime's default: clips the rarest 0.001 % of activations
    with tempfile.TemporaryDirectory(dir=dst.parent) as work:
        pre, notes = preprocess(src, Path(work), large)
        pre, unshared = unshare_biases(pre, Path(work), large)
        pre = name_nodes(pre, Path(work), large)
        notes += unshared
        quantize_static(str(pre), str(dst), FeedsReader(ctx.calibration),
                        quant_format=QuantFormat.QDQ if options["format"] == "qdq" else QuantFormat.QOperator,
                        per_channel=options["per_channel"], reduce_range=options["reduce_range"],
                        activation_type=activation, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, CALIBRATE[options["calibrate"]]),
                        use_external_data_format=large, extra_options=extra,
                        nodes_to_exclude=excluded(pre, options["exclude"]))
    if options["exclude"] and options["format"] == "qdq":
        read_around_qdq(dst, options["exclude"], large)
    notes.append(f"calibrated on {ctx.calibration_source}")
    return notes + _nothing_quantized(dst)


def name_nodes(src: Path, work: Path, large: bool) -> Path:
    """Give every unnamed node a name (`Conv_3`: its op and position), so `exclude=` and `sensitive_nodes` can
    point at any node; a model whose nodes all have names is left as it is."""
    import onnx

    if all(node.name for node in onnx.load(str(src), load_external_data=False).graph.node):
        return src
    proto = onnx.load(str(src))
    taken = {node.name for node in proto.graph.node}
    for k, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{k}"
            while name in taken:  # a node someone already called Conv_3
                name += "_"
            node.name = name
            taken.add(name)
    out = work / "named.onnx"
    save(proto, out, large)
    return out


def excluded(pre: Path, names: tuple[str, ...]) -> list[str]:
    """The nodes to keep in float, each checked against the model the quantizer sees. Pre-processing renames
    what onnxruntime's optimizer fuses (a MatMul and Add become the Gemm `/MatMulAddFusion`), so the names are
    those of the pre-processed model, as `sensitive_nodes` reports them."""
    import onnx

    if not names:
        return []
    nodes = onnx.load(str(pre), load_external_data=False).graph.node
    have = {node.name for node in nodes}
    if missing := [name for name in names if name not in have]:
        weighted = [node.name for node in nodes if node.op_type in ("Conv", "MatMul", "Gemm")]
        raise PerfkitError(f"exclude={missing[0]}", "no node of that name in the model after quantization "
                           "pre-processing", f"name one of its nodes, e.g. {', '.join(weighted[:5]) or 'none'}"
                           f"{' …' if len(weighted) > 5 else ''}")
    return list(names)


def read_around_qdq(path: Path, names: tuple[str, ...], large: bool) -> None:
    """Excluded nodes read their activations as float, before the QuantizeLinear/DequantizeLinear pair the
    quantizer left on them for the producer's sake: onnxruntime's session optimizer quantizes the float
    weights of any Conv, Gemm or MatMul fed by a DequantizeLinear (per tensor, to int8), so a node reading a
    DQ output would not stay in float when it runs. Pairs nothing reads any more are removed."""
    import onnx

    proto = onnx.load(str(path))
    producer = {out: node for node in proto.graph.node for out in node.output}
    for node in (n for n in proto.graph.node if n.name in names):
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[k] = q.input[0]
    _drop_unread(proto, ("DequantizeLinear", "QuantizeLinear"))
    save(proto, path, large)


def _drop_unread(proto, op_types: tuple[str, ...]) -> None:
    """Remove nodes of these types whose outputs nothing reads, in order (a Q is unread once its DQ is gone),
    and the scales and zero points only they read (onnxruntime warns of each unused initializer at load)."""
    dropped: set[str] = set()
    for op_type in op_types:
        read = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
        unread = [n for n in proto.graph.node if n.op_type == op_type and not read & set(n.output)]
        for node in unread:
            dropped.update(node.input)
            proto.graph.node.remove(node)
    read = {i for n in proto.graph.node for i in n.input}
    for tensor in [t for t in proto.graph.initializer if t.name in dropped - read]:
        proto.graph.initializer.remove(tensor)


BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2}


def unshare_biases(src: Path, work: Path, large: bool) -> tuple[Path, list[str]]:
    """onnxruntime's static quantizer rewrites a Conv or Gemm bias to int32 under the bias's own name, so a bias
    initializer with any other use (the TorchScript exporter merges identical fresh biases into one, used by
    Convs and Adds alike) leaves those uses reading int32, and the model does not load. Every use after a
    bias's first as a bias gets its own copy; a model without such sharing is left as it is."""
    import onnx

    def shared(proto: onnx.ModelProto) -> list[tuple[onnx.NodeProto, int]]:
        biases = {t.name for t in proto.graph.initializer} & {
            node.input[k] for node in proto.graph.node if (k := BIAS_INPUT.get(node.op_type, 99)) < len(node.input)}
        seen: set[str] = set()
        uses = []
        for node in proto.graph.node:
            for k, name in enumerate(node.input):
                is_bias = BIAS_INPUT.get(node.op_type) == k
                if name in biases and (name in seen or not is_bias):
                    uses.append((node, k))
                if is_bias:
                    seen.add(name)
        return uses

    if not shared(onnx.load(str(src), load_external_data=False)):
        return src, []
    proto = onnx.load(str(src))
    tensors = {t.name: t for t in proto.graph.initializer}
    uses = shared(proto)
    for n, (node, k) in enumerate(uses):
        copy = onnx.TensorProto()
        copy.CopyFrom(tensors[node.input[k]])
        copy.name = f"{node.input[k]}_use{n}"
        proto.graph.initializer.append(copy)
        node.input[k] = copy.name
    out = work / "unshared.onnx"
    save(proto, out, large)
    return out, [f"gave {len(uses)} op(s) their own copy of a Conv/Gemm bias they shared, which onnxruntime's "
                 "quantizer would have made int32 for all of them"]


class FeedsReader:
    """onnxruntime's CalibrationDataReader over feeds prepared in the parent."""

    def __init__(self, feeds: tuple[dict[str, Any], ...]) -> None:
        self._feeds = list(feeds)
        self._next = 0

    def get_next(self) -> dict[str, Any] | None:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._feeds = self._feeds[start_index:end_index]


def _nothing_quantized(dst: Path) -> list[str]:
    import onnx

    ops = op_histogram(onnx.load(str(dst), load_external_data=False))
    quantized = sum(n for op, n in ops.items() if "Quant" in op or "Integer" in op or op.startswith(("QLinear",
                    "com.microsoft:QLinear", "com.microsoft:Dynamic", "com.microsoft:MatMulInteger")))
    return [] if quantized else ["nothing was quantized: no op here has an int8 kernel in onnxruntime"]
