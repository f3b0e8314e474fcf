"""Outputs judged on their own and against a reference. NaN or Inf never passes."""

from __future__ import annotations

from typing import Any


def nonfinite(outputs: list[Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """One entry per floating-point output that holds NaN or Inf, e.g. "logits: 3 NaN, 1 Inf of 10"."""
    import numpy as np

    found = []
    for name, out in zip(names, outputs, strict=False):
        if not isinstance(out, np.ndarray) or out.dtype.kind not in "fc":
            continue  # integers, strings, sequences and maps cannot hold NaN
        nan = int(np.isnan(out).sum())
        inf = int(np.isinf(out).sum())
        if nan or inf:
            found.append(f"{name}: {nan} NaN, {inf} Inf of {out.size}")
    return tuple(found)
