"""fp16 conversion that checks its own result and repairs it by keeping the guilty nodes in fp32.

After converting (onnxconverter-common, or onnxruntime's transformer path for graphs with its fused ops),
the model is loaded and run on the check feeds on the CPU provider. When it breaks — a type error at load,
NaN/Inf outputs, accuracy over the budget — the fp32 and fp16 graphs are run with every intermediate
tensor exposed, the nodes that *introduce* the error (finite inputs, non-finite output; or an error that
jumps past what their inputs carried) are blocked, and the conversion is redone, a few rounds at most.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit.transforms import BuildContext
from perfkit.transforms.cache import is_large, save

if TYPE_CHECKING:
    import onnx

MAX_ROUNDS = 6  # each round blocks the nodes that introduce the worst error; most models settle in 1-2
INTRODUCED = 1e-2  # a node whose output error (relative to the output's scale) passes this is suspect...
AMPLIFIES = 10.0  # ...when it is this many times the error its inputs carried
LAYERWISE_FEEDS = 2  # feeds used for the layer-wise comparison (every tensor of the model is kept)


def convert(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    import onnx

    large = is_large(src)
    fp32 = onnx.load(str(src))
    name_nodes(fp32)
    engine = options["engine"]
    if engine == "auto":
        engine = "ort" if any(n.domain == "com.microsoft" for n in fp32.graph.node) else "occ"
    notes = [f"converted with {'onnxruntime.transformers' if engine == 'ort' else 'onnxconverter-common'}"]
    reference = Tensors(fp32, ctx.check_feeds[:LAYERWISE_FEEDS], large)
    blocked: set[str] = set()
    problem = ""
    for _ in range(MAX_ROUNDS):
        fp16 = to_fp16(fp32, engine, options["keep_io"], options["block"], sorted(blocked))
        problem, guilty = check(fp16, ctx, large, reference)
        if not problem or not options["repair"] or not guilty - blocked:
            break
        blocked |= guilty
    if blocked:
        shown = ", ".join(sorted(blocked)[:6]) + (" …" if len(blocked) > 6 else "")
        notes.append(f"kept {len(blocked)} node(s) in fp32 to repair it: {shown}")
    if problem:
        notes.append(f"still broken after repair: {problem}" if options["repair"] else f"broken: {problem}")
    save(fp16, dst, large)
    return notes


class Tensors:
    """Every tensor of the fp32 model on the first feeds, computed once, when first needed."""

    def __init__(self, proto: onnx.ModelProto, feeds, large: bool) -> None:
        self.proto, self.feeds, self.large = proto, feeds, large
        self._values: dict[str, list[Any]] | None = None

    @property
    def values(self) -> dict[str, list[Any]]:
        if self._values is None:
            names, runs = run_all(self.proto, self.feeds, self.large, full=len(self.feeds))
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


def to_fp16(fp32: onnx.ModelProto, engine: str, keep_io: bool, user_blocks: tuple[str, ...],
            node_blocks: list[str]) -> onnx.ModelProto:
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

        return float16.convert_float_to_float16(copy, keep_io_types=keep_io, disable_shape_infer=False,
                                                op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *user_blocks],
                                                node_block_list=node_blocks)


_TYPE_ERROR = re.compile(r"in node \(([^)]+)\)")


def check(fp16: onnx.ModelProto, ctx: BuildContext, large: bool, reference: Tensors) -> tuple[str, set[str]]:
    """('', ∅) when the model loads, its outputs are finite and within the budget, and no fp16 tensor
    overflows; else (what is wrong, the nodes to keep in fp32).

    Every tensor is exposed while checking: the CPU provider has few fp16 kernels and computes the rest
    in fp32, dropping the fp16 round trips between them, which hides an overflow that a GPU would meet.
    An exposed tensor is materialised in fp16, as on a device that computes in fp16."""
    from perfkit.accuracy import compare, nonfinite, within

    try:
        names, runs = run_all(fp16, ctx.check_feeds, large, full=LAYERWISE_FEEDS)
    except Exception as exc:  # onnxruntime's own exception classes: a type error names its node
        text = " ".join(str(exc).split())
        return f"onnxruntime cannot load it ({text[:160]})", set(_TYPE_ERROR.findall(text))
    keep = len(fp16.graph.output)
    outputs = [r[:keep] for r in runs]
    values = {n: [r[k] for r in runs[:LAYERWISE_FEEDS]] for k, n in enumerate(names)}
    problem = ""
    for feed_outputs in outputs:
        if bad := nonfinite(feed_outputs, tuple(names[:keep])):
            problem = f"non-finite outputs ({'; '.join(bad)})"
            break
    if not problem:
        overflowed = [n for n in names[keep:] if nonfinite(values[n], (n,) * len(values[n]))]
        if overflowed and (real := [n for n in overflowed if _finite_in(reference.values, n, fp16)]):
            problem = f"{len(real)} tensor(s) overflow fp16 (first: {real[0]})"
    if not problem and ctx.budget and ctx.reference:
        ok, why = within(compare(list(ctx.reference), outputs, tuple(names[:keep])), ctx.budget)
        if not ok:
            problem = f"over the accuracy budget {ctx.budget.text} ({why})"
    if not problem:
        return "", set()
    return problem, blame(reference, fp16, values)


def _finite_in(reference: dict[str, list[Any]], name: str, fp16: onnx.ModelProto) -> bool:
    """The fp32 twin of an fp16 tensor is finite (an inserted Cast's twin is its input)."""
    import numpy as np

    twin = name if name in reference else next((n.input[0] for n in fp16.graph.node
                                                if n.op_type == "Cast" and name in n.output), None)
    return twin in reference and all(np.isfinite(v).all() for v in reference[twin] if isinstance(v, np.ndarray))


def run_all(proto: onnx.ModelProto, feeds, large: bool, full: int) -> tuple[list[str], list[list[Any]]]:
    """A CPU session on `proto` with every node output made a graph output, run on each feed; the first
    `full` runs keep every tensor, the rest only the model's own outputs. Returns (names, runs)."""
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    present = {o.name for o in model.graph.output}
    keep = len(present)
    for node in model.graph.node:
        for out in node.output:
            if out and out not in present:
                model.graph.output.append(onnx.ValueInfoProto(name=out))
                present.add(out)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        save(model, path, large)
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    wanted = {i.name: i.type for i in session.get_inputs()}
    runs = []
    for i, feed in enumerate(feeds):
        run = session.run(None, {k: _cast(v, wanted[k]) for k, v in feed.items() if k in wanted})
        runs.append(run if i < full else run[:keep])
    return [o.name for o in session.get_outputs()], runs


def _cast(array, onnx_type: str):
    import numpy as np

    return array.astype(np.float16) if onnx_type == "tensor(float16)" and array.dtype == np.float32 else array


def blame(reference: Tensors, fp16: onnx.ModelProto, got_values: dict[str, list[Any]]) -> set[str]:
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
