"""onnxruntime's transformer fusions (onnxruntime.transformers): Attention, SkipLayerNorm, BiasGelu, … with
the model type, heads and hidden size read from the graph."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.core.errors import Unsupported
from perfkit.files.onnx_file import op_histogram
from perfkit.transforms import BuildContext
from perfkit.transforms.auto import model_kind
from perfkit.transforms.cache import is_large
from perfkit.transforms.ort_opt import graph_optimize

if TYPE_CHECKING:
    import onnx


def fuse(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    """Fuse attention, LayerNorm, GELU, … into onnxruntime's contrib ops; model type detected or given."""
    import logging

    import onnx
    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # "producer not matched" and such
    proto = onnx.load(str(src))
    model_type = options["model_type"]
    notes = []
    if model_type == "auto":
        model_type = detect_model_type(proto)
        notes.append(f"model type {model_type} (detected from the graph; give fusion:model_type=… to override)")
    heads, hidden = int(options["num_heads"]), int(options["hidden_size"])
    if not heads or not hidden:
        found_heads, found_hidden = infer_heads_and_hidden(proto)
        heads, hidden = heads or found_heads, hidden or found_hidden
    # optimize_model's own basic-level pre-pass imports torch (onnxruntime 1.2x-1.3x); the same pass is
    # onnxruntime's basic graph optimization, run here first, and its fusions then run with opt_level=0.
    basic = dst.with_name("basic.onnx")
    graph_optimize(src, basic, {"level": "basic"}, ctx)
    fused = optimizer.optimize_model(str(basic), model_type=model_type, num_heads=heads, hidden_size=hidden,
                                     opt_level=0, use_gpu=False)
    fused.save_model_to_file(str(dst), use_external_data_format=is_large(src))
    for leftover in dst.parent.glob("basic.onnx*"):
        leftover.unlink()
    stats = {k: v for k, v in (fused.get_fused_operator_statistics() or {}).items() if v}
    if stats:
        notes.append("fused " + ", ".join(f"{n}×{k}" for k, n in sorted(stats.items(), key=lambda kv: -kv[1])))
    else:
        notes.append(f"nothing was fused: the graph does not match onnxruntime's {model_type} patterns; the file "
                     "holds onnxruntime's basic optimization only")
    if heads and hidden:
        notes.append(f"{heads} heads, hidden size {hidden}")
    return notes


def detect_model_type(proto: onnx.ModelProto) -> str:
    """bert, gpt2 or vit from input names and ops; Unsupported when the graph has no attention at all."""
    ops = op_histogram(proto)
    if model_kind(ops) != "transformer":
        raise Unsupported("fusion: no attention (Softmax between MatMuls) in this graph — "
                          "give fusion:model_type=… if it is a transformer")
    names = {i.name.lower() for i in proto.graph.input}
    plain = Counter({k.split(":")[-1]: v for k, v in ops.items()})
    if any("past" in n for n in names) or plain["Trilu"]:
        return "gpt2"
    if any("pixel" in n for n in names) or (plain["Conv"] and not any("ids" in n for n in names)):
        return "vit"
    return "bert"


def infer_heads_and_hidden(proto: onnx.ModelProto) -> tuple[int, int]:
    """hidden size from the LayerNormalization scales; heads from the (0, 0, heads, head size) reshapes."""
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    consts = {o: a.t for n in proto.graph.node if n.op_type == "Constant" for a in n.attribute
              for o in n.output if a.name == "value"}
    widths: Counter[int] = Counter()
    for node in proto.graph.node:
        if node.op_type in ("LayerNormalization", "SkipLayerNormalization") and len(node.input) > 1:
            scale = inits.get(node.input[1 if node.op_type == "LayerNormalization" else 2])
            if scale is not None and len(scale.dims) == 1:
                widths[scale.dims[0]] += 1
    hidden = widths.most_common(1)[0][0] if widths else 0
    heads: Counter[tuple[int, int]] = Counter()
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        tensor = inits.get(node.input[1]) or consts.get(node.input[1])
        if tensor is None:
            continue
        shape = numpy_helper.to_array(tensor).tolist()
        if len(shape) == 4 and shape[2] > 0 and shape[3] > 0 and (not hidden or shape[2] * shape[3] == hidden):
            heads[(shape[2], shape[2] * shape[3])] += 1
    if heads:
        (n_heads, width), _ = heads.most_common(1)[0]
        return n_heads, hidden or width
    return 0, hidden
