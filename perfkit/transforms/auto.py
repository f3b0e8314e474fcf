"""What `--variants auto` builds: the kind of model, read from its op histogram, and the sensible set of chains
for that kind and the targets."""

from __future__ import annotations

from collections import Counter

CLASSICAL = ("TreeEnsemble", "SVM", "Linear", "Scaler", "Normalizer", "OneHotEncoder", "Imputer", "ZipMap")


def model_kind(ops: Counter[str]) -> str:
    """classical (scikit-learn style), transformer, cnn, mlp, or other — what `auto` tunes for."""
    plain = {op.split(":")[-1] for op in ops}
    if any(op.startswith("ai.onnx.ml:") for op in ops) or any(p.startswith(CLASSICAL) for p in plain):
        return "classical"
    attention = {"Attention", "MultiHeadAttention", "GroupQueryAttention", "Softmax"} & plain
    if attention and ops.get("MatMul", 0) + ops.get("com.microsoft:Attention", 0) >= 2:
        return "transformer"
    if plain & {"Conv", "ConvTranspose"}:
        return "cnn"
    if plain & {"MatMul", "Gemm"}:
        return "mlp"
    return "other"


def auto_chains(kind: str, gpu: bool) -> tuple[str, ...]:
    """The sensible set per kind of model: static int8 for conv nets (activations calibrated once), dynamic
    int8 for transformers (activation ranges vary per input), nothing quantized for tree ensembles; fp16 only
    where a GPU can run it natively (on the CPU provider it is emulated through casts)."""
    chains = {
        "classical": ("ort-opt:basic", "ort-opt:all"),
        "transformer": ("ort-opt:all", "fusion", "int8-dynamic", "fusion+int8-dynamic",
                        "fusion+int8-dynamic:per-channel"),
        "cnn": ("ort-opt:all", "int8-static:qdq,s8s8,per-channel", "int8-static:qdq,u8s8,per-channel",
                "int8-static:qoperator,u8s8,per-channel"),
        "mlp": ("ort-opt:all", "int8-dynamic", "int8-static:qdq,per-channel"),
    }.get(kind, ("ort-opt:all",))
    if gpu and kind != "classical":
        chains += ("fusion+fp16",) if kind == "transformer" else ("fp16",)
    return chains
