"""Pure statistics over raw latency samples: percentiles, the median's interval, spread, outliers, warnings."""

from __future__ import annotations

import math
from collections.abc import Sequence

from perfkit.core.records import Ratio, Summary

Z95 = 1.959964  # two-sided 95 % normal quantile
TAIL_SAMPLES = 5  # a percentile is reported only with at least this many samples beyond it
CV_LIMIT = 0.10  # above 10 % spread the median is hard to trust on a shared machine
OUTLIER_Z = 3.5  # modified z-score beyond which a sample is an outlier (Iglewicz & Hoaglin)
OUTLIER_SHARE = 0.02  # flag when more than 2 % of the samples are outliers: stalls, not jitter
HARNESS_SHARE = 0.01  # the timer's or the harness's own cost above 1 % of the latency is called out


def required_n(p: float) -> int:
    """Fewest samples that leave TAIL_SAMPLES beyond percentile p (p90 -> 50, p99 -> 500)."""
    return math.ceil(TAIL_SAMPLES / (1 - p / 100) - 1e-9)


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on already sorted values."""
    if not sorted_values:
        raise ValueError("no samples")
    pos = (len(sorted_values) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_ci(sorted_values: list[float]) -> tuple[float, float] | None:
    """Distribution-free 95 % interval of the median from order statistics; None below 6 samples."""
    n = len(sorted_values)
    if n < 6:
        return None
    half = Z95 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return sorted_values[lo], sorted_values[hi]


def count_outliers(sorted_values: list[float], median: float) -> int:
    """Samples whose modified z-score (from the median absolute deviation) exceeds OUTLIER_Z."""
    deviations = sorted(abs(v - median) for v in sorted_values)
    mad = percentile(deviations, 50)
    if mad > 0:
        return sum(1 for d in deviations if 0.6745 * d / mad > OUTLIER_Z)
    # Over half the samples equal the median (a coarse clock): scale by the mean absolute deviation instead.
    mean_ad = sum(deviations) / len(deviations)
    if mean_ad == 0:
        return 0
    return sum(1 for d in deviations if d / (1.253314 * mean_ad) > OUTLIER_Z)


def summarize(samples: Sequence[int] | Sequence[float]) -> Summary:
    values = sorted(float(v) for v in samples)
    n = len(values)
    if n == 0:
        raise ValueError("no samples")
    mean = sum(values) / n
    stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    median = percentile(values, 50)
    ci = median_ci(values)
    return Summary(
        n=n, median=median, ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        mean=mean, stdev=stdev, cv=stdev / mean if mean > 0 else 0.0,
        p90=percentile(values, 90) if n >= required_n(90) else None,
        p99=percentile(values, 99) if n >= required_n(99) else None,
        min=values[0], max=values[-1], outliers=count_outliers(values, median),
    )


def throughput(items_per_call: int, median_ns: float) -> float | None:
    """Items per second at the median latency; None when a call processes no items or takes no time."""
    if items_per_call <= 0 or median_ns <= 0:
        return None
    return items_per_call * 1e9 / median_ns


def stability_warnings(s: Summary, harness_ns: float, resolution_ns: float) -> list[str]:
    """Warnings with a hint each, for results whose figures should not be taken at face value."""
    out = []
    if s.cv > CV_LIMIT:
        width = s.ci_rel
        held = f"; the median holds to ±{max(width, 0.001):.1%}, the tail does not" \
            if width is not None and width < 0.02 else ""
        out.append(f"unstable: CV {s.cv:.0%} (> {CV_LIMIT:.0%}){held} — close other programs, pin --threads, "
                   "or raise --min-time")
    if s.n and s.outliers / s.n > OUTLIER_SHARE:
        out.append(f"{s.outliers} of {s.n} calls ({s.outliers / s.n:.1%}) far slower than the median — stalls from "
                   "other programs or thread-pool contention; try --threads 1 or a quieter machine")
    if s.median > 0 and harness_ns / s.median > HARNESS_SHARE:
        out.append(f"harness cost {harness_ns:.0f} ns is {harness_ns / s.median:.1%} of the median — the call "
                   "is too short to time alone; compare ratios, not absolute figures")
    if s.median > 0 and resolution_ns / s.median > HARNESS_SHARE:
        out.append(f"timer resolution {resolution_ns:.0f} ns is {resolution_ns / s.median:.1%} of the median")
    return out


def speedup(baseline: Summary, other: Summary) -> Ratio | None:
    """baseline median / other median; the range from both medians' intervals (relative widths added in
    quadrature); not significant when the intervals overlap. None without intervals (n < 6)."""
    b_ci, o_ci, rel_b, rel_o = baseline.interval(), other.interval(), baseline.ci_rel, other.ci_rel
    if b_ci is None or o_ci is None or rel_b is None or rel_o is None or other.median <= 0 or baseline.median <= 0:
        return None
    value = baseline.median / other.median
    rel = math.hypot(rel_b, rel_o)
    overlap = b_ci[0] <= o_ci[1] and o_ci[0] <= b_ci[1]
    return Ratio(value, value * (1 - rel), value * (1 + rel), not overlap)
