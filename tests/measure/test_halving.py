"""Successive halving on the fake backend: which candidates survive each stage, what is dropped, and the
deadline. Every figure is simulated time, the same on every machine."""

from __future__ import annotations

import pytest

from perfkit.core.spec import Plan, Target
from perfkit.measure.case import Case
from perfkit.measure.halving import Entrant, halve, score

PLAN = Plan(warmup_calls=2, warmup_time_s=0.0, warmup_max_s=1.0, min_rounds=10, min_time_s=0.05,
            max_time_s=0.05, max_rounds=400, timeout_s=60, isolate=False)
FEED = ({"x": [[1.0, 2.0, 3.0, 4.0]]},)


def entrants(fake_backend, tmp_path, latencies_ms, items=None):
    out = []
    for k, ms in enumerate(latencies_ms):
        path = fake_backend.write_model(tmp_path / f"m{k}.onnx", latency_ns=ms * 1e6)
        out.append(Entrant(Case(path, Target(), FEED, PLAN), (items or [1] * len(latencies_ms))[k]))
    return out


def test_the_fastest_candidate_survives_and_the_worse_half_goes_out_each_stage(fake_backend, tmp_path):
    got = halve(entrants(fake_backend, tmp_path, [1.0, 0.9, 0.5, 1.2, 0.7]), PLAN, first_stage_s=0.05)
    assert got.survivors == (2,)
    first = {s.index: s.status for s in got.standings if s.stage == 0}
    assert first == {1: "out", 2: "kept", 3: "out", 4: "kept"}
    second = {s.index: s.status for s in got.standings if s.stage == 1}
    assert second == {2: "kept", 4: "out"}
    fastest = next(s for s in got.standings if s.index == 2 and s.stage == 0)
    assert fastest.score == pytest.approx(2.0, rel=0.03)


def test_later_stages_time_the_survivors_longer(fake_backend, tmp_path):
    got = halve(entrants(fake_backend, tmp_path, [1.0, 0.9, 0.5, 1.2, 0.7]), PLAN, first_stage_s=0.05)
    seconds = {s.stage: s.seconds for s in got.standings}
    assert seconds[1] == pytest.approx(2 * seconds[0])


def test_a_judged_candidate_is_dropped_and_never_timed_again(fake_backend, tmp_path):
    got = halve(entrants(fake_backend, tmp_path, [1.0, 0.4, 0.5, 0.6]), PLAN, first_stage_s=0.05,
                judge=lambda i, _: "outside the accuracy budget" if i == 1 else "")
    assert got.survivors == (2,)
    assert [(s.stage, s.status, s.reason) for s in got.standings if s.index == 1] == \
        [(0, "dropped", "outside the accuracy budget")]


def test_a_deadline_already_passed_times_nothing(fake_backend, tmp_path):
    got = halve(entrants(fake_backend, tmp_path, [1.0, 0.5]), PLAN, deadline=0.0, clock=lambda: 10.0)
    assert got.standings == () and got.survivors == ()
    assert got.stopped == ("time budget reached before stage 1: nothing was timed",)


def test_throughput_scores_items_per_second_across_batches(fake_backend, tmp_path):
    # batch 8 in 4 ms beats batch 1 in 1 ms on items per second, though each call is slower
    got = halve(entrants(fake_backend, tmp_path, [1.0, 4.0, 0.9], items=[1, 8, 1]), PLAN, objective="throughput",
                first_stage_s=0.05)
    assert got.survivors == (1,)
    best = next(s for s in got.standings if s.index == 1 and s.stage == 0)
    assert best.score == pytest.approx(2.0, rel=0.03)


def test_p99_scores_the_tails_not_the_medians(fake_backend, tmp_path):
    (base, row) = entrants(fake_backend, tmp_path, [1.0, 0.5])
    got = halve([base, row], PLAN, objective="p99", first_stage_s=0.05)
    outcome = got.outcomes[1]
    assert score(got.outcomes[0], outcome, "p99") == pytest.approx(2.0, rel=0.03)


def test_a_first_stage_too_long_for_the_deadline_times_those_first_in_line(fake_backend, tmp_path):
    now = [0.0]
    got = halve(entrants(fake_backend, tmp_path, [1.0, 0.9, 0.5, 1.2, 0.7]), PLAN, first_stage_s=1.0,
                deadline=4.0, overhead_s=0.75, clock=lambda: now[0])
    assert {s.index for s in got.standings} == {1, 2, 3}  # 4 s fits the default and three at 1 s each
    assert got.survivors == (2,)
