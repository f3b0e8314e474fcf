"""Rows the sweep could not tell apart, re-timed in interleaved rounds (A B C, C A B, …: each round in its own
seeded order), so drift on the machine lands on all of them alike."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace
from typing import Any

from perfkit.analysis.stats import summarize
from perfkit.core.report import Contest, Report
from perfkit.core.spec import Plan
from perfkit.measure.case import Case, run_case
from perfkit.measure.isolate import Failure, call_guarded

CONTEST_ROUNDS = 4  # interleaved passes over the contenders; the median of the round medians resists a bad pass


def contest(report: Report, rows: list[int], feeds: list[tuple[dict[str, Any], ...]], plan: Plan) -> Contest:
    """Each turn is a fresh isolated case with a shorter plan; `feeds[i]` are row i's timed feeds."""
    short = replace(plan, min_time_s=plan.min_time_s / 2, max_time_s=max(plan.max_time_s / 4, plan.min_time_s / 2))
    medians: dict[int, list[float]] = {i: [] for i in rows}
    for turn in range(CONTEST_ROUNDS):
        order = list(rows)
        random.Random(turn).shuffle(order)  # a row that always follows the same neighbour was seen to read slower
        for i in order:
            r = report.results[i]
            outcome = call_guarded(run_case, Case(r.model.path, r.target, feeds[i], short), plan.timeout_s,
                                   plan.isolate)
            # The row measured once already; a failure here only drops it from the contest.
            medians[i].append(float("inf") if isinstance(outcome, Failure) else
                              summarize(outcome.measurement.samples_ns).median)
    return Contest(tuple(rows), tuple(statistics.median(medians[i]) for i in rows), CONTEST_ROUNDS)
