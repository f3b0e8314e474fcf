"""The load generator: callers back to back (offline), requests arriving on a seeded Poisson schedule (server),
and a dynamic batcher in front of a session. Latency in the server scenario runs from each request's
*scheduled* arrival, so a stall's backlog lands in the percentiles instead of hiding behind a late send
(coordinated omission).

Every loop takes a `LoadClock`; the real one sleeps, then spins the last stretch, so a request starts within
microseconds of its schedule. A simulated clock (a fake backend's, which only moves when told) is moved to the
next arrival instead of slept on, so queueing can be checked against theory exactly.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from perfkit.core.load import Batching

SPIN_NS = 150_000  # the last stretch before an arrival is spun, not slept: time.sleep overshoots by ~50-100 µs
LEAD_NS = 2_000_000  # the schedule starts this long after the loop is set up


class LoadClock(Protocol):
    def now(self) -> int: ...
    def sleep_until(self, ns: int) -> None: ...


class RealClock:
    now = staticmethod(time.perf_counter_ns)

    @staticmethod
    def sleep_until(ns: int) -> None:
        remaining = ns - time.perf_counter_ns()
        if remaining > SPIN_NS:
            time.sleep((remaining - SPIN_NS) / 1e9)
        while time.perf_counter_ns() < ns:  # a busy wait: time.sleep(0) itself costs ~70 µs under timer slack
            pass


class SimulatedClock:
    """A backend's simulated clock (it has `advance`): time moves only when a call runs or a wait is asked."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    def sleep_until(self, ns: int) -> None:
        gap = ns - self.now()
        if gap > 0:
            self._clock.advance(gap)


def clock_for(backend_clock: Callable[[], int]) -> LoadClock:
    return SimulatedClock(backend_clock) if hasattr(backend_clock, "advance") else RealClock()


@dataclass(frozen=True)
class Served:
    """What one load step measured: per-request latencies (ns), in arrival order for the server scenario."""

    latencies_ns: np.ndarray
    requests: int
    items: int
    wall_ns: int  # from the first scheduled arrival (server) or the end of warm-up (offline) to the last answer
    cpu_s: float  # this process's CPU time over the same span
    calls: int  # session calls: fewer than requests when a batcher grouped them
    errors: tuple[str, ...] = ()


def poisson_arrivals(rate: float, count: int, seed: int) -> np.ndarray:
    """`count` arrival offsets (ns from the start), exponential gaps of mean 1/rate, the same for a seed."""
    gaps = np.random.default_rng(seed).exponential(1e9 / rate, count)
    return np.cumsum(gaps).astype(np.int64)


def offline(calls: Sequence[Callable[[], Any]], items_per_call: int, duration_ns: int, warmup_ns: int,
            clock: LoadClock) -> Served:
    """One caller per entry of `calls`, each calling back to back: warm-up first (not counted), then every
    call's latency until the duration is up. One caller runs in this thread."""
    start = clock.now()
    warm_end, end = start + warmup_ns, start + warmup_ns + duration_ns
    results: list[list[int]] = [[] for _ in calls]
    errors: list[str] = []

    def caller(k: int) -> None:
        call, out = calls[k], results[k]
        try:
            while clock.now() < warm_end:
                call()
            while (t0 := clock.now()) < end:
                call()
                out.append(clock.now() - t0)
        except Exception as exc:  # a model that fails under load: the step reports it, the run goes on
            errors.append(f"{type(exc).__name__}: {exc}")

    cpu0 = time.process_time()
    _run_all(caller, len(calls))
    latencies = np.asarray([x for r in results for x in r], dtype=np.int64)
    wall = max(clock.now() - warm_end, 1)
    return Served(latencies, len(latencies), len(latencies) * items_per_call, wall,
                  _cpu_since(cpu0, warmup_ns, wall), len(latencies), tuple(errors[:3]))


def server(calls: Sequence[Callable[[], Any]], arrivals: np.ndarray, items_per_call: int,
           clock: LoadClock) -> Served:
    """Requests at their scheduled times, each taken by the first free worker in arrival order (a FIFO queue
    with one server per entry of `calls`, each worker on its own call); latency from the scheduled arrival to
    the answer."""
    start = clock.now() + LEAD_NS
    latencies = np.zeros(len(arrivals), dtype=np.int64)
    taken = iter(range(len(arrivals)))
    lock = threading.Lock()
    errors: list[str] = []

    def worker(k: int) -> None:
        call = calls[k]
        while True:
            with lock:
                i = next(taken, None)
            if i is None or errors:
                return
            due = start + int(arrivals[i])
            if clock.now() < due:
                clock.sleep_until(due)
            try:
                call()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            latencies[i] = clock.now() - due

    cpu0 = time.process_time()
    _run_all(worker, len(calls))
    wall = max(clock.now() - start, 1)
    return Served(latencies, len(arrivals), len(arrivals) * items_per_call, wall, _cpu_since(cpu0, 0, wall),
                  len(arrivals), tuple(errors[:3]))


def batched_server(call_for: Callable[[int], Callable[[], Any]], arrivals: np.ndarray, batching: Batching,
                   items_per_request: int, clock: LoadClock) -> Served:
    """One batcher in front of one session: the first waiting request opens a batch, which runs when
    `max_batch` requests have arrived or `delay` after that first one's arrival, whichever comes first (at once
    when a backlog already fills it). `call_for(k)`: a call on a batch of k requests."""
    start = clock.now() + LEAD_NS
    due = start + arrivals
    latencies = np.zeros(len(arrivals), dtype=np.int64)
    cpu0 = time.process_time()
    i = calls = 0
    errors: list[str] = []
    while i < len(due):
        if clock.now() < due[i]:
            clock.sleep_until(int(due[i]))
        last = min(i + batching.max_batch, len(due)) - 1
        ready = int(due[i]) + batching.delay_ns
        if last - i + 1 == batching.max_batch:  # it fills when its last request arrives, if that is sooner
            ready = min(ready, int(due[last]))
        if clock.now() < ready:
            clock.sleep_until(ready)
        now = clock.now()
        k = int(np.searchsorted(due[i:last + 1], now, side="right")) or 1
        try:
            call_for(k)()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            break
        latencies[i:i + k] = clock.now() - due[i:i + k]
        i, calls = i + k, calls + 1
    wall = max(clock.now() - start, 1)
    return Served(latencies[:i], i, i * items_per_request, wall, _cpu_since(cpu0, 0, wall), calls,
                  tuple(errors[:3]))


def _run_all(body: Callable[[int], None], count: int) -> None:
    if count == 1:
        body(0)
        return
    threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _cpu_since(cpu0: float, warmup_ns: int, wall_ns: int) -> float:
    """CPU seconds of this process over the measured span (warm-up's share taken out in proportion)."""
    total = time.process_time() - cpu0
    return total * wall_ns / (wall_ns + warmup_ns)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def offline_processes(model: Any, target: Any, feed: dict[str, Any], items_per_call: int, callers: int,
                      duration_ns: int, warmup_ns: int, timeout_s: float) -> Served:
    """Callers as spawned processes, each with its own session: no GIL shared between them (a native model
    that holds it scales here and not with threads). They start timing together, after all have warmed up."""
    import multiprocessing as mp
    import queue as queues

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(callers), ctx.Queue()
    procs = [ctx.Process(target=_process_caller, args=(model, target, feed, warmup_ns, duration_ns, barrier,
                                                       results), daemon=True) for _ in range(callers)]
    for p in procs:
        p.start()
    got: list[tuple[list[int], float, int, str]] = []
    try:
        for _ in procs:
            got.append(results.get(timeout=timeout_s))
    except queues.Empty:
        got.append(([], 0.0, 0, f"a caller process gave no answer within {timeout_s:g} s"))
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    latencies = np.asarray([x for lat, _, _, _ in got for x in lat], dtype=np.int64)
    wall = max((w for _, _, w, _ in got), default=1) or 1
    return Served(latencies, len(latencies), len(latencies) * items_per_call, wall, sum(c for _, c, _, _ in got),
                  len(latencies), tuple(e for *_, e in got if e)[:3])


def _process_caller(model: Any, target: Any, feed: dict[str, Any], warmup_ns: int, duration_ns: int, barrier: Any,
                    results: Any) -> None:
    from perfkit.backends import get_backend

    out: list[int] = []
    try:
        session = get_backend(target.backend).open(model, target)
        call = session.bind(session.prepare(feed))
        warm_end = time.perf_counter_ns() + warmup_ns
        while time.perf_counter_ns() < warm_end:
            call()
        barrier.wait()
        cpu0, start = time.process_time(), time.perf_counter_ns()
        end = start + duration_ns
        while (t0 := time.perf_counter_ns()) < end:
            call()
            out.append(time.perf_counter_ns() - t0)
        results.put((out, time.process_time() - cpu0, time.perf_counter_ns() - start, ""))
    except Exception as exc:
        barrier.abort()
        results.put((out, 0.0, 0, f"{type(exc).__name__}: {exc}"))
