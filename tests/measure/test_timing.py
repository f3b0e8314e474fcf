import gc

from perfkit.core.spec import Plan
from perfkit.measure.timing import harness_cost, measure, timed_rounds, warm_up


class FakeClock:
    """Time advances only when the model 'runs' (by `cost` ns a call) plus 1 ns per clock read."""

    def __init__(self, cost: int = 1000) -> None:
        self.now, self.cost, self.calls = 0, cost, 0

    def __call__(self) -> int:
        self.now += 1
        return self.now

    def call(self) -> None:
        self.calls += 1
        self.now += self.cost


def test_warm_up_needs_both_count_and_time():
    clock = FakeClock(cost=1_000_000)  # 1 ms a call
    calls, spent, last = warm_up(clock.call, Plan(warmup_calls=10, warmup_time_s=0.05), clock)
    assert calls == 50 and spent >= 50_000_000 and last >= 1_000_000
    clock = FakeClock(cost=100_000_000)  # 100 ms: count decides
    calls, _, _ = warm_up(clock.call, Plan(warmup_calls=10, warmup_time_s=0.05), clock)
    assert calls == 10


def test_warm_up_stops_at_its_cap_for_slow_models():
    clock = FakeClock(cost=3_000_000_000)  # 3 s a call
    calls, _, _ = warm_up(clock.call, Plan(warmup_calls=10, warmup_time_s=1, warmup_max_s=10), clock)
    assert calls == 4


def test_rounds_stop_when_count_and_time_are_both_reached():
    clock = FakeClock(cost=1_000_000)
    samples = timed_rounds(clock.call, Plan(min_rounds=30, min_time_s=0.1, max_time_s=5, max_rounds=10_000),
                           estimate_ns=1_000_000, clock=clock)
    assert len(samples) >= 100 and all(s == 1_000_001 for s in samples)
    assert len(samples) < 200  # and soon after: the stop rules are checked every CHUNK_TARGET_NS


def test_rounds_stop_at_max_rounds_and_max_time():
    fast = FakeClock(cost=10)
    assert len(timed_rounds(fast.call, Plan(min_time_s=10, max_rounds=500), 10, fast)) == 500
    slow = FakeClock(cost=1_000_000_000)
    assert len(timed_rounds(slow.call, Plan(min_rounds=1000, min_time_s=0, max_time_s=3), 10**9, slow)) == 3


def test_warm_up_never_enters_the_samples():
    clock = FakeClock(cost=1000)
    durations = iter([50_000] * 20)  # the first 20 calls are slow (cold caches)

    def call():
        clock.now += next(durations, 1000)

    timing = measure(call, Plan(warmup_calls=20, warmup_time_s=0, min_rounds=50, min_time_s=0, max_rounds=50), clock)
    assert timing.warmup_calls == 20 and timing.warmup_ns >= 20 * 50_000
    assert len(timing.samples_ns) == 50 and max(timing.samples_ns) == 1001


def test_gc_is_off_while_timing_and_restored_after():
    seen = []
    clock = FakeClock()

    def call():
        seen.append(gc.isenabled())
        clock.call()

    assert gc.isenabled()
    timed_rounds(call, Plan(min_rounds=5, min_time_s=0, max_rounds=5), 1000, clock)
    assert seen == [False] * 5 and gc.isenabled()


def test_harness_cost_uses_the_same_clock():
    median, resolution = harness_cost(FakeClock(), rounds=100)
    assert median == 1 and resolution == 1
