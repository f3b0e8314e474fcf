"""Successive halving on interleaved rounds: every candidate gets a short measurement beside the baseline, the
better half a longer one, and so on until the few asked for stand. Each stage is one interleaved sweep
(`measure.interleave`) of the baseline and the candidates left, so a candidate's score is its per-round ratio
against the baseline timed in the same rounds: a busy minute lands on both and cancels, and stages timed
minutes apart stay comparable. A candidate the caller's `judge` rejects (accuracy budget, memory cap, a crash)
is dropped before it is timed further.

Why halving: most candidates of a search space are clearly worse after a second of timing; spending the time
where the decision is close is what makes a five-minute search trustworthy (Jamieson & Talwalkar, 2016).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from perfkit.analysis.stats import paired_ratio, percentile
from perfkit.core.spec import Plan
from perfkit.measure.case import Case, Outcome
from perfkit.measure.interleave import Tick, interleave
from perfkit.measure.isolate import Failure

OBJECTIVES = ("median", "p99", "throughput")
ETA = 2  # each stage keeps the better 1/ETA of the candidates and times them ETA times longer
MIN_STAGE_S = 0.25  # below a quarter second per candidate a score is mostly warm-up noise
# Each stage's workers are fresh and short-lived: a short warm-up, one process per case.
STAGE_PLAN: dict[str, Any] = {"warmup_calls": 5, "warmup_time_s": 0.2, "warmup_max_s": 3.0, "workers": 1}
OVERHEAD_S = 1.5  # per case and stage beyond its timing, until measured: a worker spawned, a session opened


@dataclass(frozen=True)
class Entrant:
    """One candidate's case, and the items one call processes (throughput compares across batch sizes)."""

    case: Case
    items: int = 1


@dataclass(frozen=True)
class Standing:
    """One candidate after one stage: its figures, its score against the baseline (above 1: better), and what
    became of it: kept, out (the worse half), dropped (judged: budget, memory, failure)."""

    index: int
    stage: int
    seconds: float
    median_ns: float | None
    p99_ns: float | None
    score: float | None
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Halving:
    """The search: every standing per stage, the survivors best first, and why it stopped early if it did."""

    standings: tuple[Standing, ...]
    survivors: tuple[int, ...]
    outcomes: dict[int, Outcome]  # each candidate's last outcome (the baseline's too): accuracy, memory
    stopped: tuple[str, ...] = ()  # where the deadline cut the search short
    overhead_s: float = OVERHEAD_S  # measured per case and stage beyond its timing: for the next search's plans


Judge = Callable[[int, Outcome], str]  # a reason to drop the candidate, or ""


def score(base: Outcome, row: Outcome, objective: str, items: tuple[int, int] = (1, 1)) -> float | None:
    """How much better `row` is than `base` on the objective, from one sweep: the median of per-round ratios
    (median), the ratio of the tails (p99), or of items per second (throughput: calls of different batches)."""
    b, r = base.measurement, row.measurement
    if objective == "p99":
        b99, r99 = _p99(b.samples_ns), _p99(r.samples_ns)
        return b99 / r99 if r99 else None
    paired = paired_ratio(b.blocks, r.blocks, 0.0)
    value = paired.value if paired else _median(b.samples_ns) / max(_median(r.samples_ns), 1.0)
    return value * items[1] / items[0] if objective == "throughput" else value


def halve(entrants: Sequence[Entrant], plan: Plan, *, objective: str = "median", keep: int = 1,
          first_stage_s: float = 0.5, deadline: float | None = None, overhead_s: float = OVERHEAD_S,
          judge: Judge = lambda i, o: "",
          groups: Callable[[list[int]], list[list[int]]] | None = None,
          on_tick: Callable[[Tick], None] = lambda _: None, clock: Callable[[], float] = time.monotonic) -> Halving:
    """Successive halving of entrants[1:] against entrants[0], the baseline, which is timed in every stage.
    Stops when `keep` candidates are left, or when the next stage cannot fit before `deadline` (then the
    ranking so far stands, and `stopped` says so)."""
    alive = list(range(1, len(entrants)))
    standings: list[Standing] = []
    outcomes: dict[int, Outcome] = {}
    stage, seconds, stopped = 0, first_stage_s, list[str]()
    while alive and (stage == 0 or len(alive) > keep):
        if deadline is not None:
            alive, fit = _fit(alive, stage, deadline - clock(), overhead_s, stopped)
            if fit is None:
                break
            seconds = min(seconds, fit)
        members = [0, *alive]
        stage_plan = replace(plan, min_time_s=seconds, max_time_s=seconds, **STAGE_PLAN)
        began = clock()
        got = interleave([replace(entrants[i].case, plan=stage_plan) for i in members], stage_plan,
                         [(0, k) for k in range(1, len(members))],
                         groups=groups(members) if groups else None, on_tick=on_tick)
        overhead_s = max((clock() - began) / len(members) - seconds, 0.0)
        if isinstance(got[0], Failure):
            raise BaselineFailed(got[0].reason)
        outcomes[0] = got[0]
        stand = Stage(stage, seconds, entrants, objective, judge)
        ranked = stand.score(alive, got, outcomes)
        survivors = max(keep, math.ceil(len(ranked) / ETA)) if len(ranked) > keep else len(ranked)
        alive = [i for _, i in ranked[:survivors]]
        out = {i for _, i in ranked[survivors:]}
        standings += [replace(s, status="out") if s.index in out else s for s in stand.standings]
        stage, seconds = stage + 1, seconds * ETA
    return Halving(tuple(standings), tuple(alive), outcomes, tuple(stopped), overhead_s)


def _fit(alive: list[int], stage: int, left: float, overhead_s: float, stopped: list[str]
         ) -> tuple[list[int], float | None]:
    """The candidates this stage can time before the deadline and the seconds each gets; None: none fits.
    A first stage that cannot time everyone times those first in line (the caller's order); a later one
    stops, and the ranking so far stands."""
    if stage == 0 and left / (len(alive) + 1) - overhead_s < MIN_STAGE_S:
        room = int(left // (MIN_STAGE_S + overhead_s)) - 1
        if room >= 1:
            stopped.append(f"time budget: {room} of {len(alive)} candidates timed, in the order given")
            alive = alive[:room]
    fit = left / (len(alive) + 1) - overhead_s
    if fit >= MIN_STAGE_S:
        return alive, fit
    stopped.append(f"time budget reached before stage {stage + 1}" +
                   (f": the ranking of stage {stage} stands" if stage else ": nothing was timed"))
    return (alive if stage else []), None  # nothing untimed is handed on as if it had been ranked


@dataclass
class Stage:
    """One stage's scoring: each candidate judged, scored against the baseline timed in the same rounds."""

    index: int
    seconds: float
    entrants: Sequence[Entrant]
    objective: str
    judge: Judge
    standings: list[Standing] = field(default_factory=list)

    def score(self, alive: list[int], got: list[Outcome | Failure], outcomes: dict[int, Outcome]
              ) -> list[tuple[float, int]]:
        """(score, candidate) for those that stay in, best first; the others become dropped standings."""
        base, ranked = got[0], []
        assert not isinstance(base, Failure)
        for k, i in enumerate(alive, 1):
            outcome = got[k]
            if isinstance(outcome, Failure):
                self.standings.append(Standing(i, self.index, self.seconds, None, None, None, "dropped",
                                               outcome.reason))
                continue
            outcomes[i] = outcome
            reason = self.judge(i, outcome)
            value = score(base, outcome, self.objective, (self.entrants[0].items, self.entrants[i].items))
            samples = outcome.measurement.samples_ns
            if reason or value is None:
                self.standings.append(Standing(i, self.index, self.seconds, _median(samples), _p99(samples), value,
                                               "dropped", reason or "too few rounds to score"))
                continue
            self.standings.append(Standing(i, self.index, self.seconds, _median(samples), _p99(samples), value,
                                           "kept"))
            ranked.append((value, i))
        return sorted(ranked, reverse=True)


class BaselineFailed(Exception):
    """The baseline itself failed in a stage: nothing can be scored against it."""


def _median(samples: Sequence[int]) -> float:
    return percentile(sorted(float(v) for v in samples), 50) if samples else 0.0


def _p99(samples: Sequence[int]) -> float:
    return percentile(sorted(float(v) for v in samples), 99) if samples else 0.0
