"""onnxruntime's transformer fusions (onnxruntime.transformers): Attention, SkipLayerNorm, BiasGelu, … with
the model type, heads and hidden size given, read from a Hugging Face config.json beside the model, or read
from the graph (TorchScript and dynamo exports, tf2onnx)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.core.errors import Unsupported, brief
from perfkit.files.onnx_file import op_histogram
from perfkit.transforms import BuildContext
from perfkit.transforms.auto import model_kind
from perfkit.transforms.cache import weights_beside

if TYPE_CHECKING:
    import onnx

# A Hugging Face model_type -> the family its graph has; families onnxruntime has no type for are mapped below.
HF_FAMILIES = {
    **dict.fromkeys(("bert", "roberta", "distilbert", "electra", "xlm-roberta", "camembert", "mpnet"), "bert"),
    **dict.fromkeys(("vit", "deit", "dinov2"), "vit"),
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma"), "llama"),
    **dict.fromkeys(("gpt2", "gpt_neox", "swin", "bart", "t5", "clip", "phi"), None),  # their own name
}
# onnxruntime has no llama type: its gpt2 fusions fuse the RMSNorms (SimplifiedLayerNormalization) and leave
# rotary attention as it is, which is the most its optimizer does for a llama-like decoder.
ORT_TYPES = {"llama": "gpt2"}
HEADS_KEYS = ("num_attention_heads", "n_head", "n_heads", "encoder_attention_heads")
HIDDEN_KEYS = ("hidden_size", "n_embd", "dim", "d_model")
ATTENTION_OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention")
# Fused ops in the default domain (a decomposed LayerNorm becomes one); more MatMuls or Gathers are no fusion.
FUSED_STANDARD_OPS = ("LayerNormalization", "Gelu", "RMSNormalization")
PER_NODE_HEADS = ("swin",)  # heads and width differ by stage: onnxruntime reads them at each attention


@dataclass(frozen=True)
class Found:
    """What the fusions are run with, and where each came from (for the notes)."""

    model_type: str  # onnxruntime's name
    family: str  # what the graph is (llama where onnxruntime's type is gpt2)
    heads: int
    hidden: int
    source: str  # "given", "config.json", "the graph"


def fuse(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    """Fuse attention, LayerNorm, GELU, … into onnxruntime's contrib ops; model type and sizes given,
    from config.json beside the model, or detected. Unsupported when they cannot be told or nothing fuses."""
    import logging
    import tempfile

    import onnx

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # "producer not matched" and such
    proto = onnx.load(str(src), load_external_data=False)  # shapes and dims only: weights may be gigabytes
    found = resolve(proto, options, read_hf_config(src, ctx))
    # The temporary files live in dst's folder and go with it, so nothing is left anywhere else.
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".fusion-") as work:
        fused = run_fusions(src, Path(work), found)
        fused.save_model_to_file(str(dst), use_external_data_format=weights_beside(src))
    return describe(found, proto, onnx.load(str(dst), load_external_data=False))


def resolve(proto: onnx.ModelProto, options: dict, config: dict) -> Found:
    """Options first, then config.json, then the graph; Unsupported naming the option when heads or hidden
    size stay unknown."""
    family, source = options["model_type"], "given"
    if family == "auto":
        family, source = config_family(config), "config.json"
    if not family:
        family, source = detect_model_type(proto), "the graph"
    heads, hidden = int(options["num_heads"]), int(options["hidden_size"])
    if family in PER_NODE_HEADS:  # onnxruntime asserts on a hidden size without heads: both or neither
        return Found(family, family, heads, hidden if heads else 0, source)
    heads, hidden = heads or config_int(config, HEADS_KEYS), hidden or config_int(config, HIDDEN_KEYS)
    if not (heads and hidden):
        found_heads, found_hidden = infer_heads_and_hidden(proto)
        heads, hidden = heads or found_heads, hidden or found_hidden
        _require(heads, hidden)
    ort_type = ORT_TYPES.get(family, family)
    if proto.producer_name == "tf2onnx" and ort_type in ("bert", "gpt2"):
        ort_type += "_tf"  # onnxruntime's patterns for TensorFlow's graphs
    return Found(ort_type, family, heads, hidden, source)


def _require(heads: int, hidden: int) -> None:
    if not heads:
        raise Unsupported("fusion: cannot read the number of attention heads from this graph — give "
                          f"fusion:num_heads=N,hidden_size={hidden or 'H'}")
    if not hidden:
        raise Unsupported(f"fusion: cannot read the hidden size from this graph — give fusion:num_heads={heads},"
                          "hidden_size=H")
    if hidden % heads:
        raise Unsupported(f"fusion: hidden size {hidden} is not a multiple of {heads} heads — give "
                          "fusion:num_heads=N,hidden_size=H")


def run_fusions(src: Path, work: Path, found: Found):
    """onnxruntime's basic graph optimization, then its fusions; anything the optimizer raises (its asserts
    included) becomes a skipped row that names the values it was given."""
    from onnxruntime.transformers import optimizer

    basic = work / "basic.onnx"
    _basic_pass(src, basic)
    try:
        return optimizer.optimize_model(str(basic), model_type=found.model_type, num_heads=found.heads,
                                        hidden_size=found.hidden, opt_level=0, use_gpu=False)
    except Exception as exc:  # noqa: BLE001 - the optimizer's failures are asserts, IndexErrors, …
        raise Unsupported(f"fusion: onnxruntime's {found.model_type} fusions failed on this graph with "
                          f"{found.heads} heads, hidden size {found.hidden} ({brief(exc, 120, typed=True)}) — "
                          "give fusion:model_type=…,num_heads=…,hidden_size=… if those are wrong") from None


def _basic_pass(src: Path, dst: Path) -> None:
    """optimize_model's own basic pre-pass imports torch (onnxruntime 1.2x-1.3x), so the same pass runs here.
    As there, ConstantSharing stays off (shared constants break the gpt2 fusions: "graph is not a DAG"), and
    weights that were beside src are written beside dst, where optimize_model will look for them."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    if weights_beside(src):
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", dst.name + ".data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"], disabled_optimizers=["ConstantSharing"])


def describe(found: Found, before: onnx.ModelProto, after: onnx.ModelProto) -> list[str]:
    """The notes: what was used and what was fused (ops the output has more of than the input); Unsupported
    when nothing was, as that file would be onnxruntime's basic optimization under another name."""
    had, has = op_histogram(before), op_histogram(after)
    gained = {op.split(":")[-1]: n - had.get(op, 0) for op, n in has.items()
              if n > had.get(op, 0) and (op.startswith("com.microsoft:") or op in FUSED_STANDARD_OPS)}
    expected = f"{'/'.join(ATTENTION_OPS[:2])} from onnxruntime's {found.model_type} attention patterns"
    if not gained:
        raise Unsupported(f"fusion fused nothing for {found.family} ({found.model_type} patterns, {expected}; "
                          "LayerNorm, GELU): the graph does not match them")
    sizes = "heads read at each attention" if found.family in PER_NODE_HEADS else \
        f"{found.heads} heads, hidden size {found.hidden}"
    notes = [f"model type {found.family}{_ort_name(found)}, {sizes} (from {found.source}; give "
             "fusion:model_type=…,num_heads=…,hidden_size=… to override)",
             "fused " + ", ".join(f"{n}×{op}" for op, n in sorted(gained.items(), key=lambda kv: -kv[1]))]
    if not set(gained) & set(ATTENTION_OPS):
        notes.append(f"no attention fused: the graph does not match {expected} (SDPA or dynamo exports often "
                     "do not); only the ops above were fused")
    return notes


def _ort_name(found: Found) -> str:
    return "" if found.model_type == found.family else f" (onnxruntime's {found.model_type} fusions)"


def read_hf_config(src: Path, ctx: BuildContext) -> dict:
    """A Hugging Face config.json beside the model the user gave (optimum's exports write one), or beside
    src; {} when there is none or it cannot be read."""
    given = Path(ctx.source) if ctx.source else None
    folders = [given if given.is_dir() else given.parent] if given else []
    for folder in [*folders, src.parent]:
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and "model_type" in config:
            return config
    return {}


def config_family(config: dict) -> str:
    """The family a config's model_type names; "" when it names none onnxruntime fuses."""
    model_type = str(config.get("model_type", ""))
    if model_type not in HF_FAMILIES:
        return ""
    return HF_FAMILIES[model_type] or model_type


def config_int(config: dict, keys: tuple[str, ...]) -> int:
    """The first of `keys` the config holds as a number (swin's per-stage lists are left to the graph)."""
    for key in keys:
        if isinstance(config.get(key), int):
            return int(config[key])
    return 0


def detect_model_type(proto: onnx.ModelProto) -> str:
    """bert, gpt2, llama, vit or swin from input names and ops; Unsupported when the graph has no attention."""
    ops = op_histogram(proto)
    if model_kind(ops) != "transformer":
        raise Unsupported("fusion: no attention (Softmax between MatMuls) in this graph — "
                          "give fusion:model_type=… if it is a transformer")
    names = {i.name.lower() for i in proto.graph.input}
    plain = Counter({k.split(":")[-1]: v for k, v in ops.items()})
    if any("pixel" in n for n in names) or (plain["Conv"] and not any("ids" in n for n in names)):
        # Swin's stages widen (patch merging): its LayerNorms have several widths, a ViT's one.
        return "swin" if len(norm_widths(proto)) > 1 else "vit"
    if _rms_norm(plain) and plain["Sin"] and plain["Cos"]:
        return "llama"  # RMSNorm and rotary embeddings
    # A causal mask: Trilu (older exports) or a position compared with positions (Range <= Range).
    if plain["Trilu"] or plain["LessOrEqual"] or any("past" in n for n in names):
        return "gpt2"
    return "bert"


def _rms_norm(plain: Counter[str]) -> bool:
    fused = plain["SimplifiedLayerNormalization"] or plain["RMSNormalization"]
    return bool(fused or (plain["ReduceMean"] and plain["Sqrt"] and not plain["LayerNormalization"]))


def norm_widths(proto: onnx.ModelProto) -> Counter[int]:
    """The sizes of the LayerNormalization scales (dims only: the weights may not be loaded)."""
    dims = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    widths: Counter[int] = Counter()
    for node in proto.graph.node:
        if node.op_type in ("LayerNormalization", "SkipLayerNormalization") and len(node.input) > 1:
            scale = dims.get(node.input[1 if node.op_type == "LayerNormalization" else 2], ())
            if len(scale) == 1:
                widths[scale[0]] += 1
    return widths


def infer_heads_and_hidden(proto: onnx.ModelProto) -> tuple[int, int]:
    """hidden size from the square projection weights (Q, K, V, out: hidden × hidden), else the LayerNorm
    scales; heads from the reshapes to (…, heads or -1, head size) before attention. 0 for what is not found."""
    hidden = _square_width(proto) or _most_common(norm_widths(proto))
    splits: Counter[tuple[int, int]] = Counter()
    for heads, head_size in head_reshapes(proto):
        if heads == -1 and hidden and hidden % head_size == 0:
            heads = hidden // head_size
        if heads > 0 and (not hidden or heads * head_size == hidden):
            splits[(heads, heads * head_size)] += 1
    if splits:
        heads, width = _most_common(splits)
        return heads, hidden or width
    return 0, hidden


def _most_common(counts: Counter):
    return counts.most_common(1)[0][0] if counts else 0


def _square_width(proto: onnx.ModelProto) -> int:
    """The most common n of the n × n weights of MatMul and Gemm (read from dims, not data)."""
    dims = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    widths: Counter[int] = Counter()
    for node in proto.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1:
            shape = dims.get(node.input[1], ())
            if len(shape) == 2 and shape[0] == shape[1] > 1:
                widths[shape[0]] += 1
    return _most_common(widths)


def head_reshapes(proto: onnx.ModelProto) -> list[tuple[int, int]]:
    """(heads, head size) of each Reshape to four dims whose last two are constants: a constant shape
    (0, 0, 12, 64), or a Concat of dims read at run time and constants (batch, seq, -1, 64), as the
    TorchScript and dynamo exporters write it. The shape's length comes from onnx's shape inference."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - an unusual graph: only constant shapes are read then
        inferred = proto
    graph = ShapeReader(inferred)
    found = []
    for node in proto.graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and graph.length(node.input[1]) == 4:
            tail = graph.tail(node.input[1])
            if len(tail) >= 2 and tail[-1] > 0:
                found.append((tail[-2], tail[-1]))
    return found


class ShapeReader:
    """Constant values and inferred lengths of the 1-D shape tensors a graph computes."""

    def __init__(self, proto: onnx.ModelProto):
        from onnx import numpy_helper

        # Inline tensors only: a small shape constant is never in external data.
        inline = [t for t in proto.graph.initializer if not t.external_data and len(t.dims) <= 1]
        self.values = {t.name: numpy_helper.to_array(t).ravel().tolist() for t in inline}
        for node in proto.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).ravel().tolist()
        self.lengths = {v.name: v.type.tensor_type.shape.dim for v in proto.graph.value_info}
        self.producers = {o: n for n in proto.graph.node for o in n.output}

    def length(self, name: str) -> int:
        if name in self.values:
            return len(self.values[name])
        dims = self.lengths.get(name)
        return dims[0].dim_value if dims is not None and len(dims) == 1 else 0

    def tail(self, name: str) -> list[int]:
        """The constant values at the end of the tensor: all of a constant, the constant parts a Concat
        ends with."""
        if name in self.values:
            return [int(v) for v in self.values[name]]
        node = self.producers.get(name)
        if node is None or node.op_type not in ("Concat", "Cast", "Identity"):
            return []
        if node.op_type != "Concat":
            return self.tail(node.input[0])
        values: list[int] = []
        for part in reversed(node.input):
            if part not in self.values:
                break
            values = [int(v) for v in self.values[part]] + values
        return values
