"""`perfkit doctor [MODEL]`: is this machine fit to benchmark on, and how small a difference can it resolve?

Without a model, the machine's checks (measure.machine), each with its fix. With one, also an A/A check: the
model against itself, in two workers, interleaved for about 20 s, exactly as `bench` times variants. The spread
of its per-round ratios says how wide a speed-up's interval will be on this machine for this model, and so the
smallest difference a `bench` at the default plan can call: the number to know before trusting a 3 % speed-up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from perfkit.ab import measure_pair
from perfkit.analysis.stats import MIN_PAIRS, half_spread, median_ci, per_round_ratios, percentile
from perfkit.analysis.verdict import judge
from perfkit.core.records import Ratio
from perfkit.core.spec import BenchSpec, Plan
from perfkit.measure.interleave import MIN_ROUNDS, Tick, block_ns
from perfkit.prepare import Progress

AA_SECONDS = 18.0  # of timing, both sides together: with start-up and warm-up the check takes about 20 s


@dataclass(frozen=True)
class Resolution:
    """What the A/A check found for one model on this machine."""

    model: str
    digest: str
    rounds: int
    ratio: Ratio | None  # the model against itself: should be ≈1 with an interval holding 1
    spread: float  # about one standard deviation of the per-round log ratios
    floor: float  # half-width of a speed-up's 95 % interval at the default plan (its rounds and block length)
    failed: str = ""


def aa_check(spec: BenchSpec, on_progress: Progress = lambda _: None,
             on_tick: Callable[[Tick], None] = lambda _: None, seconds: float = AA_SECONDS) -> Resolution:
    """The model against itself, interleaved, for about `seconds` of timing."""
    default = Plan()  # the rounds of 100 ms blocks a `bench` at the default plan times
    plan = replace(default, min_time_s=seconds / 2, max_time_s=seconds / 2, threshold=spec.plan.threshold,
                   isolate=spec.plan.isolate, block_s=block_ns(default) / 1e9)
    report = measure_pair(replace(spec, plan=plan, variants=()), spec.model, on_progress, on_tick)
    a, b = report.results[0], report.results[1]
    if not (a.measurement and b.measurement):
        return Resolution(spec.model, a.model.digest, 0, None, math.nan, math.nan,
                          failed=a.reason or b.reason or "no figures")
    ratios = sorted(math.log(r) for r in per_round_ratios(a.measurement.blocks, b.measurement.blocks) if r > 0)
    if len(ratios) < MIN_PAIRS:
        return Resolution(spec.model, a.model.digest, len(ratios), None, math.nan, math.nan,
                          failed=f"only {len(ratios)} rounds")
    spread = half_spread(ratios)
    return Resolution(spec.model, a.model.digest, len(ratios), judge(report).speedups[1], spread,
                      floor=typical_half_width(ratios, max(MIN_ROUNDS, round(default.min_time_s * 1e9 /
                                                                                 block_ns(default)))))


def typical_half_width(log_ratios: list[float], rounds: int, draws: int = 400) -> float:
    """The half-width, as a share, of the interval `paired_ratio` gives over `rounds` rounds on this machine:
    the median over `draws` resamples of the observed per-round log ratios, each interval made by the same
    order statistics the real one uses."""
    rng = random.Random(0)
    widths = []
    for _ in range(draws):
        sample = sorted(rng.choice(log_ratios) for _ in range(rounds))
        ci = median_ci(sample)
        if ci:
            widths.append((ci[1] - ci[0]) / 2)
    return math.expm1(percentile(sorted(widths), 50)) if widths else math.nan

