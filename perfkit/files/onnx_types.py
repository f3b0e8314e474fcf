"""The element types an ONNX graph's nodes are fed, read from the file without running it: what a node
onnxruntime has no kernel for was given, and whether a model computes in float16."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from perfkit.files.onnx_file import dtype_name

if TYPE_CHECKING:
    import onnx

# Ops that hold most of a model's arithmetic: fed float16, the model computes in float16.
COMPUTE_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum", "Attention", "MultiHeadAttention",
               "GroupQueryAttention", "LSTM", "GRU", "RNN", "FusedMatMul", "FusedConv")
FLOAT16 = 10  # onnx.TensorProto.FLOAT16, without importing onnx to say so


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph inside it (If, Loop, Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from graphs(sub)


def nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    return (node for g in graphs(graph) for node in g.node)


def element_types(proto: onnx.ModelProto, infer: bool = True) -> dict[str, int]:
    """Tensor name -> ONNX element type, from what the file declares (inputs, outputs, value_info, initializers,
    Constant nodes); with `infer`, onnx's shape inference fills in the rest when it can."""
    if infer:
        import onnx

        # The graph without its weights: shape inference needs only their types. An invalid or custom-op graph
        # fails it, and what is declared is all there is.
        with contextlib.suppress(Exception):
            proto = onnx.shape_inference.infer_shapes(proto)
    types: dict[str, int] = {}
    for graph in graphs(proto.graph):
        for value in (*graph.input, *graph.output, *graph.value_info):
            if value.type.WhichOneof("value") == "tensor_type":
                types[value.name] = value.type.tensor_type.elem_type
        for tensor in graph.initializer:
            types[tensor.name] = tensor.data_type
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                types[node.output[0]] = node.attribute[0].t.data_type
    return types


def kernel_inputs(path: str, op: str, node_name: str) -> str:
    """What the node onnxruntime names (op type and name; '' for an unnamed node) is fed, by type and the
    op's own input names: "bfloat16 (inputs A, B)", "float64 (input X), int64 (input shape)"; "" when the file
    does not say (a node onnxruntime made itself, an unreadable file)."""
    import onnx

    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception:  # the load error said what it could: the types are a bonus
        return ""
    found = [n for n in nodes(proto.graph) if n.op_type == op and n.name == node_name]
    if not found:
        return ""
    types = element_types(proto)
    opset = next((i.version for i in proto.opset_import if i.domain == found[0].domain), None)
    try:
        formal = [i.name for i in onnx.defs.get_schema(op, opset or onnx.defs.onnx_opset_version(),
                                                        found[0].domain).inputs]
    except Exception:  # a custom op: no schema to name its inputs
        formal = []
    by_type: dict[str, dict[str, None]] = {}  # type -> the inputs fed it, in order, each once
    for node in found:
        for i, name in enumerate(node.input):
            if name and name in types:  # a variadic op's inputs share its last formal name
                label = formal[min(i, len(formal) - 1)] if formal else name
                by_type.setdefault(dtype_name(types[name]), {})[label] = None
    return ", ".join(_typed(t, [n for n in names if n != "input"]) for t, names in by_type.items())


def _typed(dtype: str, inputs: list[str]) -> str:
    """`bfloat16 (inputs A, B)`; the type alone for an op whose one input is just called `input`."""
    if not inputs:
        return dtype
    return f"{dtype} (input{'s' if len(inputs) > 1 else ''} {', '.join(inputs)})"


def fp16_compute(proto: onnx.ModelProto) -> tuple[str, ...]:
    """The compute ops (COMPUTE_OPS) fed float16, each op type once: the model computes in fp16. Nothing
    float16 declared anywhere (the usual fp32 model) is answered without shape inference."""
    declared = element_types(proto, infer=False)
    if FLOAT16 not in declared.values():
        return ()
    types = element_types(proto)
    fed = (n.op_type for n in nodes(proto.graph) if n.op_type in COMPUTE_OPS
           and any(types.get(i) == FLOAT16 for i in n.input if i))
    return tuple(dict.fromkeys(fed))
