"""The timing loop: warm-up kept apart, calibrated rounds, GC off, per-call perf_counter_ns samples."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from perfkit.backends import Clock
from perfkit.core.spec import Plan

CHUNK_TARGET_NS = 50_000_000  # check the stop rules about every 50 ms, without a clock read per sample


@dataclass(frozen=True)
class Timing:
    """Raw samples of one case. Warm-up is counted here but never enters `samples_ns`."""

    samples_ns: tuple[int, ...]
    warmup_calls: int
    warmup_ns: int
    harness_ns: float  # the loop's own cost per sample, measured with a call that does nothing
    resolution_ns: float  # smallest step the clock showed


def warm_up(call: Callable[[], object], plan: Plan, clock: Clock = time.perf_counter_ns) -> tuple[int, int, int]:
    """Call until both the warm-up count and time are reached (or the warm-up cap); return
    (calls, total ns, last call's ns) — the last call estimates the latency for calibration."""
    start = clock()
    calls, last = 0, 0
    while True:
        t0 = clock()
        call()
        t1 = clock()
        calls, last = calls + 1, t1 - t0
        elapsed = t1 - start
        if calls >= plan.warmup_calls and elapsed >= plan.warmup_time_s * 1e9:
            break
        if elapsed >= plan.warmup_max_s * 1e9:
            break
    return calls, t1 - start, last


def timed_rounds(call: Callable[[], object], plan: Plan, estimate_ns: int,
                 clock: Clock = time.perf_counter_ns) -> list[int]:
    """Per-call samples until min rounds and min time are both reached, or max time or max rounds."""
    chunk = max(1, min(plan.max_rounds, CHUNK_TARGET_NS // max(estimate_ns, 1)))
    samples: list[int] = []
    spent = 0
    with gc_off():
        while True:
            block = _loop(call, min(chunk, plan.max_rounds - len(samples)), clock)
            samples.extend(block)
            spent += sum(block)
            n = len(samples)
            if n >= plan.max_rounds or spent >= plan.max_time_s * 1e9:
                break
            if n >= plan.min_rounds and spent >= plan.min_time_s * 1e9:
                break
    return samples


def timed_calls(call: Callable[[], object], n: int, clock: Clock = time.perf_counter_ns) -> list[int]:
    """Exactly n timed calls with GC off: one interleaved block."""
    with gc_off():
        return _loop(call, n, clock)


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    """The garbage collector paused inside the timed region, as it was after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def harness_cost(clock: Clock = time.perf_counter_ns, rounds: int = 2000) -> tuple[float, float]:
    """(median ns the loop adds around a call that does nothing, smallest clock step seen)."""
    def nothing() -> None:
        return None

    samples = sorted(_loop(nothing, rounds, clock))
    steps = [b - a for a, b in zip(samples, samples[1:], strict=False) if b > a]
    return float(samples[len(samples) // 2]), float(min(steps) if steps else samples[0] or 1)


def _loop(call: Callable[[], object], n: int, clock: Clock) -> list[int]:
    out = [0] * n
    for i in range(n):
        t0 = clock()
        call()
        out[i] = clock() - t0
    return out


def measure(call: Callable[[], object], plan: Plan, clock: Clock = time.perf_counter_ns) -> Timing:
    """Warm up, then time; the harness's own cost is measured with the same clock and loop."""
    calls, warm_ns, estimate = warm_up(call, plan, clock)
    samples = timed_rounds(call, plan, estimate, clock)
    harness, resolution = harness_cost(clock)
    return Timing(tuple(samples), calls, warm_ns, harness, resolution)
