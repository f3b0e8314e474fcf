"""Figures as people read them: nanoseconds, bytes, rates, ratios with their noise, cosines near 1."""

from __future__ import annotations

import math

from perfkit.core.records import Ratio


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            value = ns / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{ns:.0f} ns"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def fmt_ratio(r: Ratio | None) -> str:
    """"2.31× ±2%"; "≈1.02× ±3%" when the difference is inside the noise or under the threshold. The ± is the
    interval's farther side."""
    if r is None:
        return "-"
    if not r.value:
        return "0×"
    spread = max(r.high - r.value, r.value - r.low) / r.value
    text = f"{r.value:.2f}× ±{spread:.1%}" if spread < 0.01 else f"{r.value:.2f}× ±{spread:.0%}"
    return text if r.significant else "≈" + text


def fmt_cos(value: float) -> str:
    """Cosine shown by its distance from 1, so 0.99999 and 0.999 read differently."""
    if value >= 1 - 5e-7:
        return "1.000000"
    digits = min(max(2, 1 - math.floor(math.log10(1 - value))), 7)
    return f"{value:.{digits}f}"
