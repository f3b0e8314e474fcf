"""Which quantized nodes lose the most accuracy, layer by layer against the float model.

Both models run on the same feeds with the tensors around every quantized node exposed as outputs (in copies
written to a temporary folder). A node's error is its output's relative error against the float model's
tensor of the same name, read where the next node reads it (after its QuantizeLinear/DequantizeLinear pair);
what it inherits is the largest error among the activations it reads; its own contribution is the noise it
adds on top, sqrt(output² − inherited²), the layer-by-layer view Polygraphy and onnxruntime's
`qdq_loss_debug` take. Only the QDQ format can be read this way: QOperator and dynamic int8 models fuse the
float tensors away.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit.core.errors import Unsupported
from perfkit.transforms.cache import save, weights_beside

if TYPE_CHECKING:
    import onnx

QDQ = ("QuantizeLinear", "DequantizeLinear")
FUSED = ("QLinear", "Dynamic", "QGemm", "QAttention", "QOrdered")  # op prefixes of QOperator and dynamic int8
QUANT_INPUT_SUFFIX = "_QuantizeLinear_Input"  # onnxruntime renames a graph output it quantizes to this
TINY = 1e-30  # a tensor of zeros has no relative error to speak of, not an infinite one


@dataclass(frozen=True)
class NodeError:
    """One quantized node's relative error against the float model, and how much of it the node adds."""

    name: str
    op_type: str
    own: float  # the noise it adds: sqrt(output² − inherited²), relative to its output's size
    output: float  # ||quantized − float|| / ||float|| of its output, as the next node reads it
    inherited: float  # the largest relative error among the activations it reads

    @property
    def sqnr_db(self) -> float:
        """Its output's signal-to-quantization-noise ratio."""
        return -20 * math.log10(max(self.output, 1e-15))


@dataclass(frozen=True)
class Tap:
    """A tensor to read in the quantized model and the float model's tensor it stands for."""

    quant: str
    float: str


@dataclass(frozen=True)
class Probe:
    """A quantized node and the tensors that measure it."""

    name: str
    op_type: str
    output: Tap
    inputs: tuple[Tap, ...]


def sensitive_nodes(float_path: Path, quant_path: Path, feeds: tuple[dict[str, Any], ...]) -> list[NodeError]:
    """Every quantized node of a QDQ model, most sensitive first (by the error it adds itself). Names are the
    quantized model's, which are the pre-processed model's that `int8-static:exclude=` takes; a node whose
    tensors the float model lacks under the same names is left out."""
    import onnx

    quant = onnx.load(str(quant_path), load_external_data=False)
    require_qdq(quant, quant_path)
    float_tensors = tensor_names(onnx.load(str(float_path), load_external_data=False))
    probes = [p for p in quantized_nodes(quant) if all(t.float in float_tensors for t in (p.output, *p.inputs))]
    taps = {t for p in probes for t in (p.output, *p.inputs)}
    noise, signal = compare(Path(float_path), Path(quant_path), sorted(taps, key=lambda t: t.quant), feeds)
    errors = [node_error(p, noise, signal) for p in probes]
    return sorted(errors, key=lambda e: e.own, reverse=True)


def require_qdq(proto: onnx.ModelProto, path: Path) -> None:
    """Unsupported unless the model is int8 in the QDQ format, whose float tensors keep their names."""
    ops = {node.op_type for node in proto.graph.node}
    if fused := sorted(op for op in ops if op.startswith(FUSED) or "Integer" in op):
        raise Unsupported(f"{path}: finding sensitive nodes needs a QDQ model (int8-static:qdq); this one has "
                          f"{', '.join(fused[:3])}, which hide the float tensors it would compare")
    if "DequantizeLinear" not in ops:
        raise Unsupported(f"{path}: nothing in it is quantized")


def tensor_names(proto: onnx.ModelProto) -> set[str]:
    """Every tensor a node of the main graph makes, and the graph's inputs."""
    return {name for node in proto.graph.node for name in node.output} | {i.name for i in proto.graph.input}


def quantized_nodes(proto: onnx.ModelProto) -> list[Probe]:
    """The nodes the quantizer wrapped, each with the taps that measure it."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constant = {t.name for t in proto.graph.initializer} | {i.name for i in proto.graph.input}
    probes = []
    for node in proto.graph.node:
        if node.op_type in QDQ or not wrapped(node, producer, consumers):
            continue
        inputs = tuple(tap for name in node.input if name and (tap := input_tap(name, producer, constant)))
        probes.append(Probe(node.name, node.op_type, output_tap(node.output[0], consumers), inputs))
    return probes


def wrapped(node: onnx.NodeProto, producer: dict, consumers: dict[str, list]) -> bool:
    """Whether the quantizer wrapped this node in Q/DQ: it reads a dequantized tensor, and its weights are
    dequantized int8 or its output is quantized again. A node kept in float (`exclude=`) may still read a
    dequantized activation, which is its producer's output quantization, not its own."""
    made_by = [producer[i] for i in node.input if i in producer]
    dequantized = [n for n in made_by if n.op_type == "DequantizeLinear"]
    weights = any(n.input[0] not in producer for n in dequantized)  # a DQ of an initializer
    requantized = any(n.op_type == "QuantizeLinear" for n in consumers.get(node.output[0], []))
    return bool(dequantized) and (weights or requantized)


def input_tap(name: str, producer: dict, constant: set[str]) -> Tap | None:
    """What a node reads, when it is an activation: a weight or a model input carries no error in."""
    node = producer.get(name)
    if node is None or name in constant:
        return None
    if node.op_type != "DequantizeLinear":
        return Tap(name, name)
    quantizer = producer.get(node.input[0])
    if quantizer is None or quantizer.op_type != "QuantizeLinear":
        return None  # a quantized weight
    before = quantizer.input[0]
    if before not in producer:
        return None  # the model's own input: its quantization is the reading node's error
    return Tap(name, before.removesuffix(QUANT_INPUT_SUFFIX))


def output_tap(name: str, consumers: dict[str, list]) -> Tap:
    """A node's output where the next node reads it: after its Q/DQ pair when it has one. That is also where
    a Relu the quantizer removed (the QuantizeLinear's zero point clips instead) takes effect."""
    float_name = name.removesuffix(QUANT_INPUT_SUFFIX)
    for q in (n for n in consumers.get(name, []) if n.op_type == "QuantizeLinear"):
        for dq in (n for n in consumers.get(q.output[0], []) if n.op_type == "DequantizeLinear"):
            return Tap(dq.output[0], float_name)
    return Tap(name, float_name)


def compare(float_path: Path, quant_path: Path, taps: list[Tap], feeds: tuple[dict[str, Any], ...]
            ) -> tuple[dict[Tap, float], dict[Tap, float]]:
    """Per tap, over all feeds: the squared norm of quantized − float, and of float."""
    import numpy as np

    noise = dict.fromkeys(taps, 0.0)
    signal = dict.fromkeys(taps, 0.0)
    with tempfile.TemporaryDirectory() as work:
        float_run = exposed(float_path, sorted({t.float for t in taps}), Path(work) / "float")
        quant_run = exposed(quant_path, sorted({t.quant for t in taps}), Path(work) / "quant")
        for feed in feeds:
            got = quant_run(feed)
            want = float_run(feed)
            for tap in taps:
                ref = want[tap.float].astype(np.float64)
                noise[tap] += float(np.sum((got[tap.quant].astype(np.float64) - ref) ** 2))
                signal[tap] += float(np.sum(ref**2))
    return noise, signal


def exposed(path: Path, names: list[str], folder: Path):
    """A function feed -> {name: array} over a copy of the model with `names` as outputs, weights beside it
    when the model keeps them beside it. onnxruntime's optimizations are off so every tensor is computed as
    the graph says (a QDQ graph as float arithmetic on dequantized values, as onnxruntime's debugger runs it)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    types = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    known = {v.name: v for v in (*types.graph.value_info, *types.graph.output, *types.graph.input)}
    present = {o.name for o in proto.graph.output}
    for name in names:
        if name not in present:
            elem = known[name].type.tensor_type.elem_type if name in known else onnx.TensorProto.FLOAT
            proto.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    folder.mkdir(parents=True)
    copy = folder / "model.onnx"
    save(proto, copy, weights_beside(path))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(copy), options, providers=["CPUExecutionProvider"])
    return lambda feed: dict(zip(names, session.run(names, feed), strict=True))


def node_error(probe: Probe, noise: dict[Tap, float], signal: dict[Tap, float]) -> NodeError:
    """The probe's errors from the sums `compare` made."""
    def relative(tap: Tap) -> float:
        return math.sqrt(noise[tap] / max(signal[tap], TINY))

    output = relative(probe.output)
    inherited = max((relative(t) for t in probe.inputs), default=0.0)
    own = math.sqrt(max(output**2 - inherited**2, 0.0))
    return NodeError(probe.name, probe.op_type, own, output, inherited)


def rank_nodes(job: tuple[str, str, tuple[dict[str, Any], ...]]) -> list[str]:
    """`sensitive_nodes` as a spawned worker calls it: (float model, quantized model, feeds) -> node names,
    most sensitive first."""
    float_path, quant_path, feeds = job
    return [n.name for n in sensitive_nodes(Path(float_path), Path(quant_path), feeds)]
