"""`perfkit doctor [MODEL]`: is this machine fit to benchmark on, and how small a difference can it resolve?

Without a model, the machine's checks (measure.machine), each with its fix. With one, also an A/A check: the
model against itself, in two workers, interleaved for about 20 s, exactly as `bench` times variants. The spread
of its per-round ratios says how wide a speed-up's interval will be on this machine for this model, and so the
smallest difference a `bench` at the default plan can call: the number to know before trusting a 3 % speed-up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from perfkit.ab import measure_pair
from perfkit.analysis.stats import Z95, per_round_ratios, percentile
from perfkit.analysis.verdict import judge
from perfkit.core.records import Ratio
from perfkit.core.spec import BenchSpec, Plan
from perfkit.measure.interleave import TARGET_ROUNDS, Tick
from perfkit.prepare import Progress

AA_SECONDS = 18.0  # of timing, both sides together: with start-up and warm-up the check takes about 20 s
MEDIAN_EFFICIENCY = 1.2533  # the median of n normal draws varies sqrt(pi/2) times more than their mean


@dataclass(frozen=True)
class Resolution:
    """What the A/A check found for one model on this machine."""

    model: str
    digest: str
    rounds: int
    ratio: Ratio | None  # the model against itself: should be ≈1 with an interval holding 1
    spread: float  # standard deviation of the per-round log ratios
    floor: float  # half-width of a speed-up's 95 % interval at the default plan (TARGET_ROUNDS rounds)
    floor_long: float  # and with --min-time 10 (five times the rounds)
    failed: str = ""


def aa_check(spec: BenchSpec, on_progress: Progress = lambda _: None,
             on_tick: Callable[[Tick], None] = lambda _: None, seconds: float = AA_SECONDS) -> Resolution:
    """The model against itself, interleaved, for about `seconds` of timing."""
    plan = replace(Plan(), min_time_s=seconds / 2, max_time_s=seconds / 2, threshold=spec.plan.threshold,
                   isolate=spec.plan.isolate)
    report = measure_pair(replace(spec, plan=plan, variants=()), spec.model, on_progress, on_tick)
    a, b = report.results[0], report.results[1]
    if not (a.measurement and b.measurement):
        return Resolution(spec.model, a.model.digest, 0, None, math.nan, math.nan, math.nan,
                          failed=a.reason or b.reason or "no figures")
    ratios = sorted(math.log(r) for r in per_round_ratios(a.measurement.blocks, b.measurement.blocks) if r > 0)
    spread = (percentile(ratios, 84) - percentile(ratios, 16)) / 2 if len(ratios) >= 5 else math.nan
    return Resolution(spec.model, a.model.digest, len(ratios), judge(report).speedups[1], spread,
                      floor=_half_width(spread, TARGET_ROUNDS), floor_long=_half_width(spread, 5 * TARGET_ROUNDS))


def _half_width(spread: float, rounds: int) -> float:
    """The paired interval's half-width, as a share, for `rounds` rounds with per-round log spread `spread`."""
    return math.expm1(Z95 * MEDIAN_EFFICIENCY * spread / math.sqrt(rounds))


def created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
