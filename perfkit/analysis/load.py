"""Reading a load test: percentiles of a step, how many requests a percentile needs, the search for the highest
rate that meets an SLO, the knee of the latency-throughput curve, and the cost of a million inferences."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from perfkit.core.load import Slo

TAIL_REQUESTS = 20  # requests beyond the percentile a step must hold for its value to be read (p99: 2,000)
MIN_REQUESTS = 200
SEARCH_TOLERANCE = 0.05  # the search stops when the bracket is this narrow (relative to its passing end)
MAX_PROBES = 16


def needed_requests(slo: Slo | None) -> int:
    """Requests a step needs for the SLO's percentile: with fewer than TAIL_REQUESTS beyond it, one slow request
    more or less moves p99 from one sample to another, so a pass or fail would be luck (LoadGen's early-stopping
    rule reasons the same way, with a binomial bound)."""
    if slo is None:
        return MIN_REQUESTS
    return max(MIN_REQUESTS, math.ceil(round(TAIL_REQUESTS / (1 - slo.percentile / 100), 6)))


def percentiles(latencies_ns: np.ndarray) -> dict[str, int]:
    """p50/p90/p99/p99.9, each an observed latency (the higher neighbour), mean and max."""
    if latencies_ns.size == 0:
        return {"p50_ns": 0, "p90_ns": 0, "p99_ns": 0, "p999_ns": 0, "max_ns": 0}
    values = np.percentile(latencies_ns, [50, 90, 99, 99.9], method="higher")
    return {"p50_ns": int(values[0]), "p90_ns": int(values[1]), "p99_ns": int(values[2]),
            "p999_ns": int(values[3]), "max_ns": int(latencies_ns.max())}


def latency_at(latencies_ns: np.ndarray, percentile: float) -> int:
    return int(np.percentile(latencies_ns, percentile, method="higher")) if latencies_ns.size else 0


def meets(latencies_ns: np.ndarray, slo: Slo) -> bool:
    return latencies_ns.size > 0 and latency_at(latencies_ns, slo.percentile) <= slo.limit_ns


def search_rate(passes: Callable[[float], bool], start: float, tolerance: float = SEARCH_TOLERANCE,
                max_probes: int = MAX_PROBES) -> float | None:
    """The highest rate `passes` accepts, within `tolerance`: doubling or halving from `start` until a passing
    and a failing rate bracket it, then bisection (LoadGen's peak-performance search). None when even a
    1/1024 of `start` fails."""
    probes = 0

    def probe(rate: float) -> bool:
        nonlocal probes
        probes += 1
        return passes(rate)

    if probe(start):
        low, high = start, start * 2
        while probes < max_probes and probe(high):
            low, high = high, high * 2
    else:
        low, high = start / 2, start
        while not probe(low):
            if probes >= max_probes or low < start / 1024:
                return None
            low, high = low / 2, low
    while probes < max_probes and (high - low) / low > tolerance:
        middle = (low + high) / 2
        if probe(middle):
            low = middle
        else:
            high = middle
    return low


def knee(throughputs: list[float], tail_latencies: list[int]) -> int | None:
    """The step where throughput per unit of tail latency peaks (Kleinrock's power): past it, more load buys
    more waiting than answers. None with fewer than three steps."""
    if len(throughputs) < 3:
        return None
    power = [t / max(lat, 1) for t, lat in zip(throughputs, tail_latencies, strict=True)]
    return int(np.argmax(power))


def cost_per_million(price_per_hour: float, requests_per_s: float) -> float | None:
    """Dollars for a million inferences on a machine of that price kept busy at that rate."""
    return None if requests_per_s <= 0 else price_per_hour / 3600 / requests_per_s * 1e6


@dataclass(frozen=True)
class RateChange:
    """The highest rate under the SLO in two runs: each search ends with the answer bracketed between a passing
    and a failing rate, so the ratio is an interval too; it is a change only where that interval excludes 1."""

    old: float
    new: float
    low: float  # new's passing end over old's failing end
    high: float  # new's failing end over old's passing end

    @property
    def ratio(self) -> float:
        return self.new / self.old

    @property
    def significant(self) -> bool:
        return self.low > 1 or self.high < 1


def rate_change(old: float, old_fail: float | None, new: float, new_fail: float | None) -> RateChange:
    """Where a search never found a failing rate, its bracket's top is taken as its own answer (open above)."""
    return RateChange(old, new, new / (old_fail or old), (new_fail or math.inf) / old)
