"""fp16 conversion that checks its own result and repairs it by keeping the guilty nodes in fp32.

After converting (onnxconverter-common, or onnxruntime's transformer path for graphs with its fused ops),
the model is loaded and run on the check feeds. The CPU provider alone would hide most fp16 trouble: it
has few fp16 kernels, computes the rest in fp32 and drops the fp16 round trips between them. So the
fp16 graph is also run *node by node* on the first feeds, each node's output materialised in fp16 before
the next node reads it, as on a device that computes in fp16. When the model breaks — a type error at
load, NaN/Inf outputs, an fp16 tensor that overflows, accuracy over the budget — the node-by-node values
are compared with the fp32 model's, the nodes that *introduce* the error (finite inputs, non-finite
output; an error that jumps past what their inputs carried; a weight damaged by the conversion) are kept
in fp32, and the conversion is redone, a few rounds at most.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit.transforms import BuildContext
from perfkit.transforms.cache import LARGE_BYTES, save, weights_beside

if TYPE_CHECKING:
    import onnx

MAX_ROUNDS = 8  # each round keeps the nodes that introduce the worst error in fp32; most models settle in 1-3
INTRODUCED = 1e-2  # a node whose output error (relative to the output's scale) passes this is suspect...
AMPLIFIES = 10.0  # ...when it is this many times the error its inputs carried
LAYERWISE_FEEDS = 2  # feeds run node by node (every tensor of the model is kept for them)
Values = dict[str, list[Any]]  # tensor name -> its value on each layer-wise feed


def convert(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    import onnx

    fp32 = onnx.load(str(src))
    large = fp32.ByteSize() > LARGE_BYTES  # too big for one protobuf message: sessions load it from files
    name_nodes(fp32)
    engine = options["engine"]
    if engine == "auto":
        engine = "ort" if any(n.domain == "com.microsoft" for n in fp32.graph.node) else "occ"
    notes = [f"converted with {'onnxruntime.transformers' if engine == 'ort' else 'onnxconverter-common'}"]
    reference = Fp32Tensors(fp32, ctx.check_feeds[:LAYERWISE_FEEDS], large)
    blocked: set[str] = set()
    problem = ""
    for _ in range(MAX_ROUNDS):
        fp16 = to_fp16(fp32, engine, options["keep_io"], options["block"], sorted(blocked), large)
        problem, guilty = check(fp16, ctx, large, reference)
        if not problem or not options["repair"]:
            break
        if guilty <= blocked:  # already in fp32 and still wrong: its fp16 inputs carry the damage
            guilty = producers(fp32, guilty) - blocked
        if not guilty:
            break
        blocked |= guilty
    if blocked:
        shown = ", ".join(sorted(blocked)[:6]) + (" …" if len(blocked) > 6 else "")
        notes.append(f"kept {len(blocked)} node(s) in fp32 to repair it: {shown}")
    if problem:
        notes.append(f"still broken after repair: {problem}" if options["repair"] else f"broken: {problem}")
    save(fp16, dst, large or weights_beside(src))
    return notes


class Fp32Tensors:
    """The fp32 model and every one of its tensors on the layer-wise feeds, computed when first needed."""

    def __init__(self, proto: onnx.ModelProto, feeds, large: bool) -> None:
        self.proto, self.feeds, self.large = proto, feeds, large
        self._values: Values | None = None

    @property
    def values(self) -> Values:
        if self._values is None:
            names, runs = run_all(self.proto, self.feeds, self.large, expose=True)
            self._values = {n: [r[k] for r in runs] for k, n in enumerate(names)}
        return self._values


def name_nodes(proto: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name: blocking works by node name."""
    taken = {n.name for n in proto.graph.node if n.name}
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def producers(proto: onnx.ModelProto, names: set[str]) -> set[str]:
    """The nodes whose outputs feed the named nodes."""
    made_by = {o: n.name for n in proto.graph.node for o in n.output}
    return {made_by[i] for n in proto.graph.node if n.name in names for i in n.input if i in made_by}


def to_fp16(fp32: onnx.ModelProto, engine: str, keep_io: bool, user_blocks: tuple[str, ...],
            node_blocks: list[str], large: bool = False) -> onnx.ModelProto:
    import warnings

    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(fp32)
    with warnings.catch_warnings():  # "truncated to 1e4" per initializer: the check below judges the result
        warnings.simplefilter("ignore")
        if engine == "ort":
            from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
            from onnxruntime.transformers.onnx_model import OnnxModel

            model = OnnxModel(copy)
            model.convert_float_to_float16(use_symbolic_shape_infer=False, keep_io_types=keep_io,
                                           op_block_list=[*DEFAULT_OP_BLOCK_LIST, *user_blocks],
                                           node_block_list=node_blocks)
            return model.model
        from onnxconverter_common import float16

        # onnx's in-memory shape inference cannot take a model over 2 GB; the types in the graph must do.
        return float16.convert_float_to_float16(copy, keep_io_types=keep_io, disable_shape_infer=large,
                                                op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *user_blocks],
                                                node_block_list=node_blocks)


_TYPE_ERROR = re.compile(r"(?:in|of) node \(([^)]+)\)")


def check(fp16: onnx.ModelProto, ctx: BuildContext, large: bool, reference: Fp32Tensors) -> tuple[str, set[str]]:
    """('', ∅) when the fp16 model is sound; else (what is wrong, the fp32 model's nodes to keep in fp32)."""
    from perfkit.analysis.accuracy import compare_outputs, nonfinite, within

    try:
        names, runs = run_all(fp16, ctx.check_feeds, large, expose=False)
    except Exception as exc:  # onnxruntime's own exception classes: a type error names its node
        text = " ".join(str(exc).split())
        return f"onnxruntime cannot load it ({text[:160]})", set(_TYPE_ERROR.findall(text))
    feeds = ctx.check_feeds[:LAYERWISE_FEEDS]
    values = run_node_by_node(fp16, feeds) if feeds else {}
    outputs = tuple(o.name for o in fp16.graph.output)
    emulated = [[values[n][k] for n in outputs] for k in range(len(feeds))] if values else []
    problem = ""
    for label, sample in (("", runs), (" computed in fp16", emulated)):
        bad = next((b for out in sample if (b := nonfinite(out, outputs))), ())
        if bad:
            problem = f"non-finite outputs{label} ({'; '.join(bad)})"
            break
    if not problem and values:
        overflowed = [n for n, v in values.items() if n not in outputs and nonfinite(v, (n,) * len(v))
                      and _finite_in(reference.values, n, fp16)]
        if overflowed:
            problem = f"{len(overflowed)} tensor(s) overflow fp16 (first: {overflowed[0]})"
    if not problem and ctx.budget and ctx.reference:
        ref = ctx.reference.per_feed
        for label, sample in (("", runs), (" computed in fp16", emulated)):
            ok, why = within(compare_outputs(list(ref[:len(sample)]), list(sample), names), ctx.budget) \
                if sample else (True, "")
            if not ok:
                problem = f"over the accuracy budget {ctx.budget.text}{label} ({why})"
                break
    if not problem:
        return "", set()
    return problem, blame(reference, fp16, values) if values else set()


def _finite_in(reference: Values, name: str, fp16: onnx.ModelProto) -> bool:
    """The fp32 twin of an fp16 tensor is finite (an inserted Cast's twin is its input)."""
    import numpy as np

    twin = name if name in reference else next((n.input[0] for n in fp16.graph.node
                                                if n.op_type == "Cast" and name in n.output), None)
    return twin in reference and all(np.isfinite(v).all() for v in reference[twin]
                                     if isinstance(v, np.ndarray) and v.dtype.kind == "f")


def _session(proto: onnx.ModelProto, large: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor
    if not large:
        return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # saving with external data rewrites the tensors it saves to point at the file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        save(copy, path, large)
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_all(proto: onnx.ModelProto, feeds, large: bool, expose: bool) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The whole model on the CPU provider on each feed, every node output made a graph output when
    `expose`. Returns (output names, outputs per feed)."""
    import onnx

    model = proto
    if expose:
        model = onnx.ModelProto()
        model.CopyFrom(proto)
        present = {o.name for o in model.graph.output}
        for node in model.graph.node:
            for out in node.output:
                if out and out not in present:
                    model.graph.output.append(onnx.ValueInfoProto(name=out))
                    present.add(out)
    session = _session(model, large)
    wanted = {i.name: i.type for i in session.get_inputs()}
    runs = [session.run(None, {k: _cast(v, wanted[k]) for k, v in feed.items() if k in wanted}) for feed in feeds]
    return tuple(o.name for o in session.get_outputs()), runs


def run_node_by_node(proto: onnx.ModelProto, feeds) -> Values:
    """Every node in a session of its own, fed the values its producers materialised: an fp16 tensor is
    rounded to fp16 between any two nodes, whatever the CPU provider computes inside a node. A graph with
    subgraphs (If, Loop, Scan) is run whole with its tensors exposed instead."""
    import onnx
    from onnx import helper

    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in proto.graph.node for a in n.attribute):
        names, runs = run_all(proto, feeds, False, expose=True)
        return {n: [r[k] for r in runs] for k, n in enumerate(names)}
    inits = {t.name: t for t in proto.graph.initializer}
    types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    values: Values = {name: [_cast(f[name], "tensor(float16)" if types[name] == onnx.TensorProto.FLOAT16 else "")
                             for f in feeds] for name in feeds[0] if name in types}
    for node in topological(proto.graph.node, set(values) | set(inits)):
        fed = list(dict.fromkeys(i for i in node.input if i and i not in inits))
        inputs = [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(values[i][0].dtype),
                                                values[i][0].shape) for i in fed]
        graph = helper.make_graph([node], node.name or "node", inputs,
                                  [onnx.ValueInfoProto(name=o) for o in node.output if o],
                                  [inits[i] for i in dict.fromkeys(node.input) if i in inits])
        model = helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
        session = _session(model, False)
        outs = [o for o in node.output if o]
        for o in outs:
            values[o] = []
        for k in range(len(feeds)):
            for o, value in zip(outs, session.run(None, {i: values[i][k] for i in fed}), strict=True):
                values[o].append(value)
    return values


def topological(nodes, available: set[str]) -> list:
    """Nodes in an order where each comes after its producers (onnxruntime's converter appends its
    input Casts at the end of the graph)."""
    pending, ordered, have = list(nodes), [], set(available)
    while pending:
        ready = [n for n in pending if all(not i or i in have for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i and i not in have})[:3]
            raise ValueError(f"graph inputs missing for {len(pending)} node(s): {', '.join(missing)}")
        for n in ready:
            have.update(n.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    return ordered


def _cast(array, onnx_type: str):
    import numpy as np

    return array.astype(np.float16) if onnx_type == "tensor(float16)" and array.dtype == np.float32 else array


def blame(reference: Fp32Tensors, fp16: onnx.ModelProto, got_values: Values) -> set[str]:
    """Names of the fp32 model's nodes that introduce the largest error in the fp16 model."""
    from onnx import numpy_helper

    ref_values = reference.values
    original = {n.name for n in reference.proto.graph.node}
    ref_inits = {t.name: numpy_helper.to_array(t) for t in reference.proto.graph.initializer}
    got_inits = {t.name: numpy_helper.to_array(t) for t in fp16.graph.initializer}
    consumers: dict[str, list[str]] = {}
    for node in fp16.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node.name)

    err: dict[str, float] = {}
    for name in ref_inits.keys() & got_inits.keys():
        err[name] = relative_error([got_inits[name]], [ref_inits[name]])
    suspects: list[tuple[float, str]] = []
    for node in fp16.graph.node:
        carried = max((err.get(i, 0.0) for i in node.input if i), default=0.0)
        worst = 0.0
        for out in node.output:
            # An inserted Cast has no twin in fp32: its output is compared with its input's fp32 value.
            twin = out if out in ref_values else (node.input[0] if node.op_type == "Cast" else None)
            if out in got_values and twin in ref_values:
                err[out] = relative_error(got_values[out], ref_values[twin])
                worst = max(worst, err[out])
        damaged_weight = any(err.get(i, 0.0) > INTRODUCED for i in node.input if i in got_inits)
        if (worst == float("inf") and carried < float("inf")) or damaged_weight or \
                (worst > INTRODUCED and worst > AMPLIFIES * max(carried, 1e-4)):
            suspects.append((worst, node.name))
    guilty: set[str] = set()
    for _, name in sorted(suspects, reverse=True)[:4]:
        if name in original:
            guilty.add(name)
        else:  # a Cast the converter inserted: keep the nodes it feeds in fp32 instead
            out = next(n.output[0] for n in fp16.graph.node if n.name == name)
            guilty |= {c for c in consumers.get(out, []) if c in original}
    return guilty


def relative_error(got: list, ref: list) -> float:
    """Largest |got - ref| relative to the tensor's scale over the feeds; inf where got is not finite
    but ref is."""
    import numpy as np

    worst = 0.0
    for g, r in zip(got, ref, strict=False):
        if not (isinstance(g, np.ndarray) and isinstance(r, np.ndarray)) or g.shape != r.shape:
            continue
        if g.dtype.kind not in "fc" or r.dtype.kind not in "fc":
            continue
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        finite = np.isfinite(r64)
        if np.any(finite & ~np.isfinite(g64)):
            return float("inf")
        if not finite.any():
            continue
        scale = float(np.max(np.abs(r64[finite]))) + 1e-6
        worst = max(worst, float(np.max(np.abs(g64[finite] - r64[finite]))) / scale)
    return worst
