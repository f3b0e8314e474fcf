"""The interleaving scheduler: the rows of a run timed in rounds. Every case keeps its own worker with its
session open and warmed up; in each round every case still needed runs one short block of calls, in a fresh
seeded random order, one worker at a time. Slow drift of the machine (other programs, clock frequency, a
neighbour VM) then lands on every row of a round alike and cancels in their per-round ratios.

How long: every case is timed for at least the plan's minimum time (as a sequential sweep would be) and
MIN_ROUNDS rounds; a case then stays in the rotation only while one of its comparisons is still undecided
(wider than the practical threshold, not wholly beyond it, and narrow enough that the time left can decide
it), up to the plan's maximum time. Halfway through the expected rounds each case moves to a second worker,
spawned with the first: two processes running the same bytes can differ for their whole lives, and the
interval should hold that too. With many or large cases, not every worker fits in memory at once: cases are
measured in groups under a memory cap (`memory_groups`), a group's baseline with each of its groups, so every
comparison still has its pairs.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from perfkit.analysis.stats import paired_ratio
from perfkit.core.report import Block
from perfkit.core.spec import Plan
from perfkit.measure.case import Case, Outcome
from perfkit.measure.isolate import Failure, guarded
from perfkit.measure.worker import LocalWorker, ProcessWorker, open_worker

TARGET_ROUNDS = 20  # rounds that fill the minimum time: enough per-round ratios for a distribution-free interval
MIN_ROUNDS = 10  # never fewer, whatever the minimum time: below this the interval of a median is too wide
BLOCK_MIN_NS, BLOCK_MAX_NS = 5_000_000, 200_000_000  # a block is long enough to dwarf a switch, short enough
# to leave many rounds inside the minimum time
REWARM_BELOW_NS = 10_000_000  # the first call of a block, after another worker ran, is 1.5-1.6x slower for a
# 0.2 ms CNN (caches and its thread pool refill) and 1.01x for a 40 ms ResNet: below 10 ms it is not timed


@dataclass(frozen=True)
class Tick:
    """Where the sweep is, after each block: for a progress bar redrawn by the scheduler itself."""

    round: int  # rounds finished in this group
    rounds: int  # rounds expected at the minimum time (more when intervals are still wide)
    rows: int  # rows still in the rotation
    elapsed_s: float
    left_s: float | None  # None: past the expected rounds, running until the intervals narrow or max time
    group: int = 1
    groups: int = 1


@dataclass
class _Slot:
    """One case during its group's sweep."""

    index: int
    worker: LocalWorker | ProcessWorker | None = None
    spare: LocalWorker | ProcessWorker | None = None  # the second half's worker, spawned with the first
    estimate_ns: float = 0.0
    samples: list[int] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    failure: Failure | None = None

    @property
    def timed_ns(self) -> int:
        return sum(self.samples)


def interleave(cases: Sequence[Case], plan: Plan, pairs: Sequence[tuple[int, int]], *,
               groups: Sequence[Sequence[int]] | None = None, on_tick: Callable[[Tick], None] = lambda _: None,
               clock: Callable[[], float] = time.monotonic) -> list[Outcome | Failure]:
    """Every case measured in interleaved rounds; `pairs` are (baseline, row) indexes whose per-round ratios
    decide when to stop. A case that fails (crash, hang, error) is a Failure; the others go on."""
    groups = groups or [list(range(len(cases)))]
    results: dict[int, Outcome | Failure] = {}
    first_round = 0
    for g, members in enumerate(groups, 1):
        inside = [(a, b) for a, b in pairs if a in members and b in members]
        sweep = _Sweep(cases, plan, members, inside, first_round, on_tick, clock, (g, len(groups)))
        for i, outcome in sweep.run().items():
            results[i] = merge(results[i], outcome) if i in results else outcome
        first_round = sweep.round
    return [results[i] for i in range(len(cases))]


class _Sweep:
    """One group: workers started, rounds until no case is needed, workers finished."""

    def __init__(self, cases: Sequence[Case], plan: Plan, members: Sequence[int], pairs: Sequence[tuple[int, int]],
                 first_round: int, on_tick: Callable[[Tick], None], clock: Callable[[], float],
                 group: tuple[int, int]) -> None:
        self.cases, self.plan, self.pairs, self.on_tick, self.clock = cases, plan, pairs, on_tick, clock
        self.slots = {i: _Slot(i) for i in members}
        self.round, self.first_round, self.group = first_round, first_round, group
        self.block_ns = min(max(plan.min_time_s * 1e9 / TARGET_ROUNDS, BLOCK_MIN_NS), BLOCK_MAX_NS)
        self.expected = max(MIN_ROUNDS, math.ceil(plan.min_time_s * 1e9 / self.block_ns))

    def run(self) -> dict[int, Outcome | Failure]:
        try:
            for step in (self._spawn, self._ready, self._start):
                # Every process spawned at once, their imports in parallel; then the sessions, one at a time.
                for slot in self.slots.values():
                    self._attempt(slot, step)
            self.started = self.clock()
            while active := self._active():
                if self.round - self.first_round == self.expected // 2:
                    for i in active:
                        self._attempt(self.slots[i], self._restart)
                order = sorted(active)
                random.Random(self.round).shuffle(order)  # a fresh seeded order every round
                for i in order:
                    self._attempt(self.slots[i], self._block)
                    self._tick(len(active))
                self.round += 1
            return {i: self._finish(s) for i, s in self.slots.items()}
        finally:
            for slot in self.slots.values():
                for worker in (slot.worker, slot.spare):
                    if worker is not None:
                        worker.close()

    def _spawn(self, slot: _Slot) -> None:
        slot.worker = open_worker(self.cases[slot.index])
        if isinstance(slot.worker, ProcessWorker):  # in this process (--no-isolate) there is no second one
            slot.spare = open_worker(self.cases[slot.index])

    def _ready(self, slot: _Slot) -> None:
        for worker in (slot.worker, slot.spare):
            if isinstance(worker, ProcessWorker):
                worker.ready()

    def _start(self, slot: _Slot) -> None:
        """This case's session opened and warmed up, alone."""
        assert slot.worker is not None
        slot.estimate_ns = max(float(slot.worker.open()), 1.0)

    def _restart(self, slot: _Slot) -> None:
        """A fresh worker for the second half: two processes running the same bytes were seen to differ by up
        to 3 % for the whole of their lives (where their memory landed), which no number of rounds with one
        process can show; with two in turn, the per-round ratios carry that difference into the interval."""
        if slot.worker is not None and slot.spare is not None:
            slot.worker.close()
            slot.worker, slot.spare = slot.spare, None
            slot.worker.open()

    def _block(self, slot: _Slot) -> None:
        assert slot.worker is not None
        cap = max(1, self.plan.max_rounds // TARGET_ROUNDS)  # keeps the raw samples of a row bounded
        calls = int(min(max(1, self.block_ns // slot.estimate_ns), cap))
        rewarm = 1 if slot.estimate_ns < REWARM_BELOW_NS else 0
        samples = slot.worker.block(calls, rewarm)
        median = sorted(samples)[len(samples) // 2]
        slot.samples += samples
        slot.blocks.append(Block(self.round, len(samples), float(median)))
        slot.estimate_ns = max(float(median), 1.0)

    def _attempt(self, slot: _Slot, step: Callable[[_Slot], None]) -> None:
        """A step of one case; whatever goes wrong fails that case only."""
        if slot.failure is not None:
            return
        try:
            step(slot)
        except Exception as exc:
            slot.failure = guarded(exc)
            for worker in (slot.worker, slot.spare):
                if worker is not None:
                    worker.close()

    def _active(self) -> set[int]:
        """The cases that still need rounds: those short of the minimum, and both sides of every comparison
        still wider than the threshold; none past the maximum time or sample count."""
        plan = self.plan
        ok = {i for i, s in self.slots.items() if s.failure is None and s.timed_ns < plan.max_time_s * 1e9
              and len(s.samples) < plan.max_rounds}
        rounds = self.round - self.first_round
        short = {i for i in ok if rounds < MIN_ROUNDS or self.slots[i].timed_ns < plan.min_time_s * 1e9
                 or len(self.slots[i].samples) < plan.min_rounds}
        wide = {i for a, b in self.pairs if a in ok and b in ok and not self._narrow(a, b) for i in (a, b)}
        return short | wide

    def _narrow(self, a: int, b: int) -> bool:
        """Decided: the interval is narrower than the threshold; or lies wholly beyond it (a change too large
        for more rounds to matter; "beyond 1" alone would let early looks call noise a difference); or is so
        wide that the rounds left before the maximum time cannot narrow it to the threshold (an interval
        shrinks as one over the root of the rounds), so timing on would only cost time."""
        ratio = paired_ratio(self.slots[a].blocks, self.slots[b].blocks, self.plan.threshold)
        if ratio is None:
            return False
        t, half = self.plan.threshold, (ratio.high - ratio.low) / 2 / ratio.value
        if half <= t or ratio.low > 1 + t or ratio.high < 1 / (1 + t):
            return True
        needed = ratio.rounds * (half / t) ** 2
        possible = self.plan.max_time_s * 1e9 / self.block_ns
        return needed > possible

    def _tick(self, rows: int) -> None:
        done = self.round - self.first_round
        elapsed = self.clock() - self.started
        per_round = elapsed / (done + 1)  # this round is under way: count it
        left = (self.expected - done - 1) * per_round if done + 1 < self.expected else None
        self.on_tick(Tick(done, self.expected, rows, elapsed, left if left is None else max(left, 0.0),
                          *self.group))

    def _finish(self, slot: _Slot) -> Outcome | Failure:
        if slot.failure is None and not slot.samples:
            slot.failure = Failure("failed", "no block was timed")
        self._attempt(slot, lambda s: None)
        if slot.failure is not None:
            return slot.failure
        assert slot.worker is not None
        try:
            return slot.worker.finish(tuple(slot.samples), tuple(slot.blocks))
        except Exception as exc:
            return guarded(exc)


def merge(first: Outcome | Failure, later: Outcome | Failure) -> Outcome | Failure:
    """A baseline measured with more than one group: its samples and blocks together, its first start."""
    if isinstance(first, Failure):
        return first
    if isinstance(later, Failure):
        return later
    m, n = first.measurement, later.measurement
    return replace(first, measurement=replace(m, samples_ns=m.samples_ns + n.samples_ns, blocks=m.blocks + n.blocks))


def memory_groups(sizes: Sequence[int], pairs: Sequence[tuple[int, int]], cap: int) -> list[list[int]]:
    """Cases whose workers can be open at once under `cap` bytes (estimated `sizes`). Cases compared with each
    other stay together where they fit; a set too large for the cap is split, its baseline in every part."""
    baseline_of = {b: a for a, b in pairs}
    sets: dict[int, list[int]] = {}
    for i in range(len(sizes)):
        sets.setdefault(baseline_of.get(i, i), []).append(i)
    groups: list[list[int]] = []
    for base, members in sets.items():
        for part in _split(base, members, sizes, cap):
            if groups and sum(sizes[i] for i in groups[-1]) + sum(sizes[i] for i in part) <= cap:
                groups[-1] += part
            else:
                groups.append(part)
    return groups


def _split(base: int, members: list[int], sizes: Sequence[int], cap: int) -> list[list[int]]:
    """`members` (the baseline first) in parts under the cap, each starting with the baseline."""
    if sum(sizes[i] for i in members) <= cap:
        return [members]
    parts: list[list[int]] = []
    for i in members:
        if i == base:
            continue
        if not parts or sum(sizes[j] for j in parts[-1]) + sizes[i] > cap:
            parts.append([base])
        parts[-1].append(i)
    return parts
