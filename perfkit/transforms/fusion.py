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
    found = resolve(proto, options, read_hf_config(src, ctx), src.parent)
    hint = failure_hint(found, options, proto)
    # The temporary files live in dst's folder and go with it, so nothing is left anywhere else.
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".fusion-") as work:
        fused, fallback = run_fusions(src, Path(work), found, hint)
        fused.save_model_to_file(str(dst), use_external_data_format=weights_beside(src))
    return describe(found, proto, onnx.load(str(dst), load_external_data=False), fallback)


def resolve(proto: onnx.ModelProto, options: dict, config: dict, folder: Path | None = None) -> Found:
    """Options first, then config.json, then the graph (its weights in `folder`); Unsupported naming the
    option when heads or hidden size stay unknown."""
    family, source = options["model_type"], "given"
    if family == "auto":
        family, source = config_family(config), "config.json"
    if not family:
        family, source = detect_model_type(proto, folder), "the graph"
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


def run_fusions(src: Path, work: Path, found: Found, hint: str):
    """onnxruntime's basic graph optimization, then its fusions, and the note on a fallback ("" when none).
    Where its gpt2 fusions raise (its postprocess indexes a Gemm bias that bias-free heads lack), its bert
    LayerNorm/GELU fusions run instead; anything else the optimizer raises (asserts included) becomes a
    skipped row worded by `hint`."""
    basic = work / "basic.onnx"
    _basic_pass(src, basic)
    try:
        return _optimize(basic, found, found.model_type), ""
    except Exception as exc:  # noqa: BLE001 - the optimizer's failures are asserts, IndexErrors, …
        failure = brief(exc, 120, typed=True)
    if not found.model_type.startswith("gpt2"):
        raise Unsupported(f"fusion: {hint.format(failure=failure)}")
    bert = found.model_type.replace("gpt2", "bert")
    try:
        fused = _optimize(basic, found, bert, attention=False)
    except Exception as exc:  # noqa: BLE001 - as above
        raise Unsupported(f"fusion: {hint.format(failure=failure)}; its {bert} LayerNorm/GELU fusions failed "
                          f"too ({brief(exc, 80, typed=True)})") from None
    return fused, (f"onnxruntime's {found.model_type} patterns fail on this graph ({failure}): fell back to its "
                   f"{bert} LayerNorm/GELU fusions, attention left as it is (its {bert} attention patterns "
                   "do not mask the future)")


def _optimize(path: Path, found: Found, model_type: str, attention: bool = True):
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions(model_type)
    options.enable_attention = attention
    return optimizer.optimize_model(str(path), model_type=model_type, num_heads=found.heads,
                                    hidden_size=found.hidden, opt_level=0, use_gpu=False,
                                    optimization_options=options)


def failure_hint(found: Found, options: dict, proto: onnx.ModelProto) -> str:
    """How a failure of onnxruntime's fusions reads ({failure} left to fill): with values read from config.json
    or the graph that agree with its weights, the patterns are to blame; otherwise the values may be."""
    given = options["model_type"] != "auto" or int(options["num_heads"]) or int(options["hidden_size"])
    sizes = f"{found.heads} heads, hidden size {found.hidden}"
    if not given and found.heads and _square_width(proto) in (0, found.hidden):
        return (f"onnxruntime's {found.model_type} patterns fail on this graph ({{failure}}) — the values look "
                f"right ({found.family}{_ort_name(found)}, {sizes}, from {found.source})")
    return (f"onnxruntime's {found.model_type} fusions failed on this graph with {sizes} ({{failure}}) — give "
            "fusion:model_type=…,num_heads=…,hidden_size=… if those are wrong")


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


def describe(found: Found, before: onnx.ModelProto, after: onnx.ModelProto, fallback: str = "") -> list[str]:
    """The notes: what was used, any fallback, and what was fused (ops the output has more of than the
    input); Unsupported when nothing was, as that file would be onnxruntime's basic optimization under another
    name."""
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
             *([fallback] if fallback else []),
             "fused " + ", ".join(f"{n}×{op}" for op, n in sorted(gained.items(), key=lambda kv: -kv[1]))]
    if not fallback and not set(gained) & set(ATTENTION_OPS):
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


def detect_model_type(proto: onnx.ModelProto, folder: Path | None = None) -> str:
    """bert, gpt2, llama, vit or swin from input names, ops and wiring; Unsupported when the graph has no
    attention. `folder` is where the weights lie, for reading a folded causal mask the exporter wrote there."""
    ops = op_histogram(proto)
    if model_kind(ops) != "transformer":
        raise Unsupported("fusion: no attention (Softmax between MatMuls) in this graph — "
                          "give fusion:model_type=… if it is a transformer")
    names = {i.name.lower() for i in proto.graph.input}
    plain = Counter({k.split(":")[-1]: v for k, v in ops.items()})
    if any("pixel" in n for n in names) or (plain["Conv"] and not any("ids" in n for n in names)):
        # Swin's stages widen (patch merging): its LayerNorms have several widths, a ViT's one.
        return "swin" if len(norm_widths(proto)) > 1 else "vit"
    wiring = Wiring(proto)
    decoder = _decoder(plain, names, wiring, folder)
    # With a fixed sequence length the dynamo exporter folds the rotary tables (Sin, Cos) into initializers:
    # rotate-half (Neg of a Slice, concatenated) is what is left of them.
    rotary = bool(plain["Sin"] and plain["Cos"]) or wiring.rotate_half()
    if _rms_norm(plain, wiring) and (rotary or decoder or _vocab_logits(proto, names)):
        return "llama"
    return "gpt2" if decoder else "bert"


def _rms_norm(plain: Counter[str], wiring: Wiring) -> bool:
    fused = plain["SimplifiedLayerNormalization"] or plain["RMSNormalization"]
    return bool(fused or (not plain["LayerNormalization"] and wiring.rms_norm()))


def _decoder(plain: Counter[str], names: set[str], wiring: Wiring, folder: Path | None) -> bool:
    """A causal mask made at run time (Trilu, or positions compared: Range <= Range), a past input, a causal
    attention op, or a causal mask folded to a constant (dynamo exports with a fixed sequence length)."""
    if plain["Trilu"] or plain["LessOrEqual"] or plain["GroupQueryAttention"] or any("past" in n for n in names):
        return True
    return wiring.causal_attention() or any(is_causal_mask(tensor_values(t, folder))
                                            for t in wiring.mask_constants())


def _vocab_logits(proto: onnx.ModelProto, names: set[str]) -> bool:
    """Token ids the only input and an output as wide as the embedding table (a language-model head). Only a
    hint with an RMSNorm: BERT's masked-LM head looks the same."""
    if not names or not all("ids" in n for n in names):
        return False
    dims = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    rows = {dims[n.input[0]][0] for n in proto.graph.node
            if n.op_type == "Gather" and len(dims.get(n.input[0], ())) == 2}
    widths = {o.type.tensor_type.shape.dim[-1].dim_value for o in proto.graph.output
              if o.type.tensor_type.shape.dim}
    return bool(rows & widths - {0})


# A folded causal mask is read only up to this many elements (a 2048 × 2048 float mask is 16 MiB).
MASK_READ_LIMIT = 1 << 22
MASKED = -1e4  # additive masks put -inf, the dtype's min, or at least this far below zero above the diagonal


def tensor_values(tensor: onnx.TensorProto, folder: Path | None):
    """A small tensor's values, read from the proto or, for weights written beside the model, from just its
    bytes there; None when it is large, external without a folder, or cannot be read."""
    import numpy as np
    from onnx import external_data_helper, numpy_helper

    if int(np.prod(tensor.dims, dtype=np.int64)) > MASK_READ_LIMIT:
        return None
    try:
        if external_data_helper.uses_external_data(tensor):
            if folder is None:
                return None
            tensor = _copy(tensor)  # the graph's own proto stays without data, as fuse loaded it
            external_data_helper.load_external_data_for_tensor(tensor, str(folder))
        return numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001 - a missing or short weights file: no mask read, no detection from it
        return None


def _copy(tensor: onnx.TensorProto) -> onnx.TensorProto:
    import onnx

    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    return copy


def is_causal_mask(values) -> bool:
    """Lower-triangular over its last two dims: a boolean keep-mask (True on and below the diagonal) or its
    negation, or an additive mask of 0 on and below the diagonal and a large negative number above."""
    import numpy as np

    if values is None or values.ndim < 2 or values.shape[-1] != values.shape[-2] or values.shape[-1] < 2:
        return False
    keep = np.tril(np.ones(values.shape[-2:], dtype=bool))
    if values.dtype == bool:
        return bool((values == keep).all() or (values == ~keep).all())
    if values.dtype.kind != "f":
        return False
    return bool((values[..., keep] == 0).all() and (values[..., ~keep] <= MASKED).all())


def _squares(node: onnx.NodeProto) -> bool:
    return node.op_type == "Pow" or (node.op_type == "Mul" and node.input[0] == node.input[1])


class Wiring:
    """Which node makes and which nodes read each tensor, and the graph's constants by name."""

    def __init__(self, proto: onnx.ModelProto):
        self.nodes = list(proto.graph.node)
        self.producers = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.constants = {t.name: t for t in proto.graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = node.attribute[0].t

    def made_by(self, name: str, op: str) -> bool:
        node = self.producers.get(name)
        return node is not None and node.op_type == op

    def read_by(self, name: str, op: str) -> bool:
        return any(n.op_type == op for n in self.consumers.get(name, ()))

    def rotate_half(self) -> bool:
        """rotate_half(x) = concat(-x2, x1) with x1, x2 the halves of each head: a Neg of a Slice, concatenated."""
        return any(n.op_type == "Neg" and self.made_by(n.input[0], "Slice") and self.read_by(n.output[0], "Concat")
                   for n in self.nodes)

    def rms_norm(self) -> bool:
        """A mean of squares of a tensor that is not centred first (a LayerNorm's is of x - mean(x)), as the
        exporters decompose an RMSNorm: Pow, ReduceMean, Add, Sqrt, Reciprocal or Div."""
        means = [self.producers.get(n.input[0]) for n in self.nodes if n.op_type == "ReduceMean"]
        return any(_squares(square) and not self.made_by(square.input[0], "Sub") for square in means if square)

    def causal_attention(self) -> bool:
        """An attention op told to mask the future (ONNX's is_causal, onnxruntime's unidirectional)."""
        flags = ("is_causal", "unidirectional")
        return any(a.name in flags and a.i == 1 for n in self.nodes if "Attention" in n.op_type
                   for a in n.attribute)

    def mask_constants(self) -> list[onnx.TensorProto]:
        """Constants of shape (…, n, n) that an Add or Where applies to the scores on their way to a Softmax, or
        that an And/Or combines with the padding mask first (an attention_mask input with a fixed length)."""
        found = []
        for name, tensor in self.constants.items():
            square = len(tensor.dims) >= 2 and tensor.dims[-1] == tensor.dims[-2] > 1
            if square and any(n.op_type in ("Add", "Where", "And", "Or") and self.reaches_softmax(n)
                              for n in self.consumers.get(name, ())):
                found.append(tensor)
        return found

    def reaches_softmax(self, node: onnx.NodeProto, hops: int = 3) -> bool:
        """Whether a Softmax reads the node's output within `hops` nodes (a Where, then the Add of the mask)."""
        readers = self.consumers.get(node.output[0], ()) if node.output else ()
        return any(r.op_type == "Softmax" or (hops > 1 and self.reaches_softmax(r, hops - 1)) for r in readers)


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


class ShapeReader(Wiring):
    """Constant values and inferred lengths of the 1-D shape tensors a graph computes."""

    def __init__(self, proto: onnx.ModelProto):
        from onnx import numpy_helper

        super().__init__(proto)
        # Inline tensors only: a small shape constant is never in external data.
        self.values = {name: numpy_helper.to_array(t).ravel().tolist() for name, t in self.constants.items()
                       if not t.external_data and len(t.dims) <= 1}
        self.lengths = {v.name: v.type.tensor_type.shape.dim for v in proto.graph.value_info}

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
