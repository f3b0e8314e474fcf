"""Where each node ran, from onnxruntime's profile of a GPU row: nodes per provider, the Memcpy nodes
onnxruntime inserted between providers, and compute ops left on the CPU — the quiet reason a GPU row is slow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from perfkit.core.records import OpTime

# Ops that carry a model's arithmetic: one of these on the CPU under a GPU target is a fallback worth a flag.
COMPUTE_OPS = {
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv", "MatMul", "MatMulInteger",
    "QLinearMatMul", "FusedMatMul", "MatMulNBits", "DynamicQuantizeMatMul", "Gemm", "FusedGemm", "QGemm", "Attention",
    "MultiHeadAttention", "GroupQueryAttention", "PackedAttention", "Einsum", "LSTM", "GRU", "RNN",
    "SkipLayerNormalization", "LayerNormalization", "BiasGelu", "FastGelu", "BatchNormalization",
}
MEMCPY_OPS = {"MemcpyToHost", "MemcpyFromHost"}


@dataclass(frozen=True)
class Placement:
    requested: str  # the provider asked for, e.g. "CUDA"
    nodes: tuple[tuple[str, int], ...]  # (provider, nodes that ran there)
    memcpy: int  # Memcpy nodes onnxruntime inserted to move tensors between providers
    fallback: tuple[tuple[str, int], ...]  # (compute op, nodes of it that ran elsewhere than requested)

    def line(self) -> str:
        where = ", ".join(f"{n} on {p}" for p, n in self.nodes)
        text = f"placement: {where}; {self.memcpy} Memcpy node(s)"
        if self.fallback:
            text += (f"; compute ops left off {self.requested}: "
                     + ", ".join(f"{op} ×{n}" for op, n in self.fallback))
        return text


def placement(profile: tuple[OpTime, ...], requested_provider: str) -> Placement | None:
    """From a profile's per-op entries (op, provider, nodes); None without a profile."""
    if not profile:
        return None
    requested = requested_provider.removesuffix("ExecutionProvider")
    per_provider: Counter[str] = Counter()
    memcpy = 0
    fallback: Counter[str] = Counter()
    for entry in profile:
        provider = entry.provider or "?"
        per_provider[provider] += entry.nodes
        if entry.op in MEMCPY_OPS:
            memcpy += entry.nodes
        elif entry.op in COMPUTE_OPS and provider != requested:
            fallback[entry.op] += entry.nodes
    return Placement(requested, tuple(per_provider.most_common()), memcpy, tuple(sorted(fallback.items())))


def fallback_message(p: Placement) -> str:
    ops = ", ".join(f"{op} ×{n}" for op, n in p.fallback)
    return (f"compute ops ran off {p.requested}: {ops} ({p.memcpy} Memcpy node(s) move tensors between providers) "
            "— the provider has no kernel for them with these types; re-export with supported ops or types, or "
            "accept the fallback without --fail-on-fallback")
