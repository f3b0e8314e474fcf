"""What the HTML report's plots share: value → pixel scales, and the dashed line joining a Pareto front."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

PLOT_W = 520  # px of every plot's drawing area, right of its labels
ERROR_FLOOR = 1e-9  # 1 − cos of an exact match, so a log scale can hold it

Scale = Callable[[float], float]


def scale(lo: float, hi: float, log: bool, left: int) -> Scale:
    """Value -> x pixel inside the plot area."""
    if log:
        a, b = math.log10(lo), math.log10(hi)
        return lambda v: left + (math.log10(max(v, lo)) - a) / ((b - a) or 1) * PLOT_W
    return lambda v: left + (v - lo) / ((hi - lo) or 1) * PLOT_W


def error_scale(lo: float, hi: float, top: float, bottom: float) -> Scale:
    """1 − cos -> y pixel, log scale, more accurate lower down."""
    a, b = math.log10(lo), math.log10(hi)
    return lambda err: bottom - (math.log10(max(err, ERROR_FLOOR)) - a) / ((b - a) or 1) * (bottom - top)


def front_line(points: Sequence[tuple[float, float, int]], front: Collection[int], x: Scale, y: Scale) -> str:
    """The polyline joining the front's (x value, error, key) points left to right; "" for fewer than two."""
    ordered = sorted((p for p in points if p[2] in front), key=lambda p: p[0])
    if len(ordered) < 2:
        return ""
    path = " ".join(f"{x(v):.1f},{y(err):.1f}" for v, err, _ in ordered)
    return f'<polyline points="{path}" class="front"/>'
