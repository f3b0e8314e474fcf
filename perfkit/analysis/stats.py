"""Pure statistics over raw latency samples and interleaved blocks: percentiles, the median's interval (over
rounds when the row was interleaved), spread, outliers, the paired speed-up, warnings."""

from __future__ import annotations

import math
from collections.abc import Sequence

from perfkit.core.records import Ratio, Summary
from perfkit.core.report import Block

Z95 = 1.959964  # two-sided 95 % normal quantile
TAIL_SAMPLES = 5  # a percentile is reported only with at least this many samples beyond it
OUTLIER_Z = 3.5  # modified z-score beyond which a sample is an outlier (Iglewicz & Hoaglin)
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
    return sorted_values[lo], sorted_values[n - 1 - lo]  # the same rank from either end


def rounds_ci(blocks: Sequence[Block], median: float) -> tuple[float, float] | None:
    """The order-statistic interval of the block medians, stretched to hold the pooled median."""
    ci = median_ci(sorted(b.median_ns for b in blocks))
    return (min(ci[0], median), max(ci[1], median)) if ci else None


def half_spread(sorted_values: list[float]) -> float:
    """Half the 16th-84th percentile range: about one standard deviation, robust to a stray value."""
    return (percentile(sorted_values, 84) - percentile(sorted_values, 16)) / 2


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


MIN_PAIRS = 6  # the fewest rounds that give the median of the per-round ratios an interval


def summarize(samples: Sequence[int] | Sequence[float], blocks: Sequence[Block] = ()) -> Summary:
    """Percentiles and spread over every sample; the median's interval over the blocks' medians when the
    row was interleaved (calls of one block share the machine's state, so they are not independent: an
    interval over calls is narrower than the truth), else over the calls."""
    values = sorted(float(v) for v in samples)
    n = len(values)
    if n == 0:
        raise ValueError("no samples")
    mean = sum(values) / n
    stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    median = percentile(values, 50)
    ci = rounds_ci(blocks, median) if len(blocks) >= MIN_PAIRS else median_ci(values)
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
    """What is wrong with one row's figure alone: a call too short for the harness or the clock. How noisy
    the machine was is said once for the whole run (analysis.noise)."""
    out = []
    if s.median > 0 and harness_ns / s.median > HARNESS_SHARE:
        out.append(f"harness cost {harness_ns:.0f} ns is {harness_ns / s.median:.1%} of the median — the call "
                   "is too short to time alone; compare ratios, not absolute figures")
    if s.median > 0 and resolution_ns / s.median > HARNESS_SHARE:
        out.append(f"timer resolution {resolution_ns:.0f} ns is {resolution_ns / s.median:.1%} of the median")
    return out


def paired_ratio(base: Sequence[Block], row: Sequence[Block], threshold: float) -> Ratio | None:
    """How many times faster `row` ran than `base`: the median of the per-round ratios (base block median
    over row block median, same round), with the distribution-free interval of that median over rounds.
    Drift slower than a round moves both blocks of a round alike and cancels in their ratio; faster noise
    widens the interval instead of faking a difference. None with fewer than MIN_PAIRS shared rounds."""
    ratios = sorted(per_round_ratios(base, row))
    ci = median_ci(ratios) if len(ratios) >= MIN_PAIRS else None
    if ci is None:
        return None
    value = percentile(ratios, 50)
    return Ratio(value, ci[0], ci[1], _called(value, ci, threshold), rounds=len(ratios))


def per_round_ratios(base: Sequence[Block], row: Sequence[Block]) -> list[float]:
    """Base block median over row block median, for every round both were timed in."""
    by_round = {b.round: b.median_ns for b in base}
    return [by_round[b.round] / b.median_ns for b in row if b.round in by_round and b.median_ns > 0]


def speedup(baseline: Summary, other: Summary, threshold: float = 0.0) -> Ratio | None:
    """Two rows timed apart (no shared rounds: an old run, or --no-interleave): baseline median / other
    median, its range from both medians' intervals (relative widths added in quadrature, in log space so a
    wide one never crosses zero). Drift between the two rows is invisible here, which is why rows that are
    compared are interleaved. None without intervals (n < 6)."""
    b_ci, o_ci, rel_b, rel_o = baseline.interval(), other.interval(), baseline.ci_rel, other.ci_rel
    if b_ci is None or o_ci is None or rel_b is None or rel_o is None or other.median <= 0 or baseline.median <= 0:
        return None
    value = baseline.median / other.median
    spread = math.exp(math.hypot(math.log1p(rel_b), math.log1p(rel_o)))
    overlap = b_ci[0] <= o_ci[1] and o_ci[0] <= b_ci[1]
    return Ratio(value, value / spread, value * spread, not overlap and abs(value - 1) >= threshold)


def _called(value: float, ci: tuple[float, float], threshold: float) -> bool:
    """A difference: the change is at least the practical threshold, and the whole interval lies beyond half
    of it — past "excludes 1", since two processes running the same bytes differ by a percent or two for as
    long as they live (where their memory landed), which rounds of one pair cannot show."""
    margin = 1 + threshold / 2
    return (ci[0] > margin or ci[1] < 1 / margin) and abs(value - 1) >= threshold


BOOTSTRAP = 400  # resamples for the interval of a tail ratio: its 2.5th and 97.5th percentiles settle by then


def tail_ratio(base: Sequence[int], row: Sequence[int], threshold: float, p: float = 99.0, seed: int = 0
               ) -> Ratio | None:
    """How many times lower `row`'s p-th percentile latency is than `base`'s, with a seeded bootstrap interval
    (each row's calls resampled on their own: a tail has no per-round pairing). None with too few calls for
    the percentile (`required_n`)."""
    import numpy as np

    if min(len(base), len(row)) < required_n(p):
        return None
    rng = np.random.default_rng(seed)
    b, r = np.asarray(base, dtype=float), np.asarray(row, dtype=float)
    value = float(np.percentile(b, p) / np.percentile(r, p))
    draws = [np.percentile(rng.choice(b, b.size), p) / np.percentile(rng.choice(r, r.size), p)
             for _ in range(BOOTSTRAP)]
    low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    return Ratio(value, low, high, _called(value, (low, high), threshold))


QUIET_MARGIN = 1.25  # a round whose reference block ran within this of the reference's fastest: a quiet spell


def quiet_rounds(reference: Sequence[Block], margin: float = QUIET_MARGIN) -> set[int]:
    """The rounds in which the reference row ran near its fastest: when other programs left the machine alone."""
    fastest = min((b.median_ns for b in reference), default=0.0)
    return {b.round for b in reference if b.median_ns <= fastest * margin}


def ratio_in(base: Sequence[Block], row: Sequence[Block], rounds: set[int], threshold: float) -> Ratio | None:
    """paired_ratio over the given rounds only."""
    return paired_ratio([b for b in base if b.round in rounds], [b for b in row if b.round in rounds], threshold)
