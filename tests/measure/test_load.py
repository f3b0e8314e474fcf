"""The load generator on a simulated clock: queueing theory, coordinated omission, the batcher's grouping."""

from __future__ import annotations

import numpy as np
import pytest

from perfkit.core.load import Batching
from perfkit.measure.load import SimulatedClock, batched_server, offline, poisson_arrivals, server


class Machine:
    """Simulated nanoseconds: they move only when a call runs or the generator waits."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: float) -> None:
        self.now += int(ns)


def service(machine: Machine, ns: int, stall_at: int | None = None, stall_ns: int = 0):
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        machine.advance(ns + (stall_ns if calls == stall_at else 0))

    return call


@pytest.mark.parametrize("utilisation", [0.5, 0.8])
def test_a_deterministic_server_waits_as_m_d_1_theory_says(utilisation):
    machine = Machine()
    mu = 1 / 1e-3  # 1 ms of service: 1,000 requests/s at most
    rate = utilisation * mu
    arrivals = poisson_arrivals(rate, 200_000, seed=1)
    served = server([service(machine, 1_000_000)], arrivals, 1, SimulatedClock(machine))
    waits = (served.latencies_ns - 1_000_000) / 1e9
    theory = utilisation / (2 * mu * (1 - utilisation))  # Pollaczek-Khinchine for deterministic service
    assert waits.mean() == pytest.approx(theory, rel=0.05)
    assert served.requests / (served.wall_ns / 1e9) == pytest.approx(rate, rel=0.02)


def test_a_stall_shows_in_the_percentiles_because_latency_runs_from_the_schedule():
    machine = Machine()
    arrivals = np.arange(2_000, dtype=np.int64) * 2_000_000  # one request every 2 ms, service 1 ms
    calm = server([service(machine, 1_000_000)], arrivals, 1, SimulatedClock(machine))
    stalled = server([service(machine, 1_000_000, stall_at=1_000, stall_ns=1_000_000_000)], arrivals, 1,
                     SimulatedClock(machine))
    assert np.percentile(calm.latencies_ns, 99) == 1_000_000
    # the 1 s stall delays the ~500 requests scheduled during it: far more than 1 % of 2,000 requests
    assert np.percentile(stalled.latencies_ns, 99) > 900_000_000
    assert (stalled.latencies_ns > 100_000_000).sum() > 400
    # timed from the send instead, only the stalled request would be slow: p99 would stay at 1 ms
    sent_latency = np.where(np.arange(2_000) == 999, 1_001_000_000, 1_000_000)
    assert np.percentile(sent_latency, 99) == 1_000_000


def test_offline_callers_are_timed_back_to_back_after_warm_up():
    machine = Machine()
    served = offline([service(machine, 250_000)], 4, duration_ns=1_000_000_000, warmup_ns=100_000_000,
                     clock=SimulatedClock(machine))
    assert served.requests == 4_000 and served.items == 16_000
    assert set(served.latencies_ns.tolist()) == {250_000}


def test_the_batcher_groups_what_arrives_within_the_delay_up_to_its_size():
    machine = Machine()
    sizes: list[int] = []

    def call_for(k: int):
        def call() -> None:
            sizes.append(k)
            machine.advance(100_000 + 10_000 * k)  # a batch costs less per request than single calls
        return call

    # bursts of 6 requests 10 µs apart, every 10 ms: a batch of 4 fills at once, the other 2 wait out the delay
    arrivals = np.asarray([b * 10_000_000 + i * 10_000 for b in range(50) for i in range(6)], dtype=np.int64)
    served = batched_server(call_for, arrivals, Batching(4, 2_000_000), 1, SimulatedClock(machine))
    assert sizes == [4, 2] * 50
    assert served.calls == 100 and served.requests == 300
    # the two left over waited for the delay from the first of them: 2 ms, then their batch's 120 µs
    assert served.latencies_ns[4] == 2_000_000 + 120_000
    # a lone request still runs, after the delay
    machine.now, sizes[:] = 0, []
    alone = batched_server(call_for, np.asarray([0], dtype=np.int64), Batching(8, 1_000_000), 1,
                           SimulatedClock(machine))
    assert sizes == [1] and alone.latencies_ns[0] == 1_000_000 + 110_000
