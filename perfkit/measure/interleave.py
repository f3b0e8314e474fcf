"""The interleaving scheduler: the rows of a run timed in rounds. Every case keeps its own worker with its
session open and warmed up; in each round every case still needed runs one short block of calls, in a fresh
seeded random order, one worker at a time. Slow drift of the machine (other programs, clock frequency, a
neighbour VM) then lands on every row of a round alike and cancels in their per-round ratios.

How long: every case is timed for at least the plan's minimum time (as a sequential sweep would be) and
MIN_ROUNDS rounds; a case then stays in the rotation only while one of its comparisons is still undecided
(wider than the practical threshold, yet narrow enough that the time left can bring it there), up to the
plan's maximum time. Each isolated case has two workers, and each round is timed in one drawn at random: two
processes running the same bytes can differ for their whole lives, and the interval should hold that too.
With many or large cases, not every worker fits in memory at once: cases are
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
SECOND_WARMUP_S = 0.2  # the second worker's warm-up, at least the plan's count of calls
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
    workers: list[LocalWorker | ProcessWorker] = field(default_factory=list)  # two processes, or this one
    current: int = 0  # which of them times this round
    estimate_ns: float = 0.0
    samples: list[int] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # this round's calls so far
    failure: Failure | None = None

    @property
    def timed_ns(self) -> int:
        return sum(self.samples)

    @property
    def worker(self) -> LocalWorker | ProcessWorker | None:
        return self.workers[self.current] if self.workers else None

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def block_ns(plan: Plan) -> float:
    """How long one case's block of a round lasts under `plan`."""
    if plan.block_s is not None:
        return plan.block_s * 1e9
    return min(max(plan.min_time_s * 1e9 / TARGET_ROUNDS, BLOCK_MIN_NS), BLOCK_MAX_NS)


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
        self.block_ns = block_ns(plan)
        self.expected = max(MIN_ROUNDS, math.ceil(plan.min_time_s * 1e9 / self.block_ns))

    def run(self) -> dict[int, Outcome | Failure]:
        try:
            for step in (self._spawn, self._ready, self._start):
                # Every process spawned at once, their imports in parallel; then the sessions, one at a time.
                for slot in self.slots.values():
                    self._attempt(slot, step)
            self.started = self.clock()
            while active := self._active():
                self._round(active)
            return {i: self._finish(s) for i, s in self.slots.items()}
        finally:
            for slot in self.slots.values():
                slot.close()

    def _round(self, active: set[int]) -> None:
        for i in active:  # each case's process for this round, drawn at random: see _spawn
            slot = self.slots[i]
            slot.current = random.Random(self.round * 7919 + i).randrange(len(slot.workers) or 1)
        order = sorted(active)
        random.Random(self.round).shuffle(order)  # a fresh seeded order every round
        # Each case runs twice a round, the second pass in the reverse order (A B C C B A): drift that is linear
        # across the round then lands on every case's two halves alike.
        for i in order + order[::-1]:
            self._attempt(self.slots[i], self._half)
            self._tick(len(active))
        for i in order:
            self._attempt(self.slots[i], self._close_round)
        self.round += 1

    def _spawn(self, slot: _Slot) -> None:
        """Two workers for an isolated case, each round timed in one of them drawn at random: two processes
        running the same bytes were seen to differ by up to 3 % for as long as they live (where their memory
        landed), which no number of rounds in one process can show; drawn per round, that difference is part
        of the round-to-round spread, and so of the interval."""
        case = self.cases[slot.index]
        slot.workers = [open_worker(case)]
        if isinstance(slot.workers[0], ProcessWorker) and case.plan.workers > 1:  # --no-isolate: there is one
            # The clock frequency settled in the first worker's warm-up: the second needs its own caches only.
            short = replace(case.plan, warmup_time_s=min(case.plan.warmup_time_s, SECOND_WARMUP_S))
            slot.workers.append(open_worker(replace(case, plan=short)))

    def _ready(self, slot: _Slot) -> None:
        for worker in slot.workers:
            if isinstance(worker, ProcessWorker):
                worker.ready()

    def _start(self, slot: _Slot) -> None:
        """This case's sessions opened and warmed up, one at a time."""
        estimates = [worker.open() for worker in slot.workers]
        slot.estimate_ns = max(float(estimates[0]), 1.0)

    def _half(self, slot: _Slot) -> None:
        """One of the case's two passes this round, half its block each; a call longer than half a block
        runs once a round, in the first pass."""
        assert slot.worker is not None
        cap = max(1, self.plan.max_rounds // TARGET_ROUNDS)  # keeps the raw samples of a row bounded
        calls = int(min(max(1, self.block_ns // slot.estimate_ns), cap))
        if calls < 2 and slot.pending:
            return
        rewarm = 1 if slot.estimate_ns < REWARM_BELOW_NS else 0
        slot.pending += slot.worker.block(max(1, calls // 2), rewarm)

    def _close_round(self, slot: _Slot) -> None:
        """The round's two passes as one block: its calls, their median."""
        samples, slot.pending = slot.pending, []
        median = float(sorted(samples)[len(samples) // 2])
        slot.samples += samples
        slot.blocks.append(Block(self.round, len(samples), median))
        slot.estimate_ns = max(median, 1.0)

    def _attempt(self, slot: _Slot, step: Callable[[_Slot], None]) -> None:
        """A step of one case; whatever goes wrong fails that case only."""
        if slot.failure is not None:
            return
        try:
            step(slot)
        except Exception as exc:
            slot.failure = guarded(exc)
            slot.close()

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
        """Decided: the interval is narrower than the threshold; or so wide that the rounds left before the
        maximum time cannot narrow it enough to decide the verdict for any change it still holds (an interval
        shrinks as one over the root of the rounds). Timing on would then only cost time. Never "it excludes 1
        now": looking every round and stopping at the first such look would call noise a difference."""
        ratio = paired_ratio(self.slots[a].blocks, self.slots[b].blocks, self.plan.threshold)
        if ratio is None:
            return False
        t, half = self.plan.threshold, (ratio.high - ratio.low) / 2 / ratio.value
        if half <= t:
            return True
        if t <= 0:  # --threshold 0: no width to narrow to, so more rounds decide nothing more
            return True
        # The largest change the interval still allows would be decided by a wider interval than the threshold:
        # give up only when even that one could not be decided in time (the estimate alone, early on a busy
        # machine, was seen at -2.5 % for a true +21 %).
        enough = max(t, max(abs(math.log(ratio.low)), abs(math.log(ratio.high))) - t / 2)
        needed = ratio.rounds * (half / enough) ** 2
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
        if slot.failure is not None:
            return slot.failure
        assert slot.worker is not None
        try:
            return slot.worker.finish(tuple(slot.samples), tuple(slot.blocks))
        except Exception as exc:
            return guarded(exc)
        finally:
            slot.close()


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
    other (joined by `pairs`, even in chains: native → model as given → variants) stay together where they
    fit; a set too large for the cap is split, every case some other is compared with in each part."""
    root = list(range(len(sizes)))

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for a, b in pairs:
        root[find(b)] = find(a)
    sets: dict[int, list[int]] = {}
    for i in range(len(sizes)):
        sets.setdefault(find(i), []).append(i)
    hubs = {a for a, _ in pairs}
    groups: list[list[int]] = []
    for members in sets.values():
        for part in _split([i for i in members if i in hubs], [i for i in members if i not in hubs], sizes, cap):
            if groups and sum(sizes[i] for i in groups[-1]) + sum(sizes[i] for i in part) <= cap:
                groups[-1] += part
            else:
                groups.append(part)
    return groups


def _split(hubs: list[int], leaves: list[int], sizes: Sequence[int], cap: int) -> list[list[int]]:
    """The leaves in parts under the cap, each part with all the hubs (the rows the leaves are compared with)."""
    if sum(sizes[i] for i in hubs + leaves) <= cap or not leaves:
        return [sorted(hubs + leaves)]
    parts: list[list[int]] = []
    for i in leaves:
        if not parts or sum(sizes[j] for j in parts[-1]) + sizes[i] > cap:
            parts.append(list(hubs))
        parts[-1].append(i)
    return [sorted(p) for p in parts]
