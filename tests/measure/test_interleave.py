"""The interleaving scheduler with real onnxruntime in real spawned workers: rounds shared by every case, idle
workers stopped, a worker killed mid-sweep failing its case only; and the memory groups."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest

from perfkit.core.spec import Target
from perfkit.measure import interleave as scheduler
from perfkit.measure.case import Case, Outcome
from perfkit.measure.interleave import MIN_ROUNDS, interleave, memory_groups
from perfkit.measure.isolate import Failure
from tests.conftest import FAST

ISOLATED = replace(FAST, isolate=True, min_rounds=10, max_rounds=400)
FEED = ({"x": np.ones((1, 4), np.float32)},)


def state(pid: int) -> str:
    """The process state letter; a stop signal lands within moments, so a few looks are allowed."""
    for _ in range(50):
        with open(f"/proc/{pid}/stat") as f:
            letter = f.read().rsplit(")", 1)[1].split()[0]
        if letter == "T":
            break
        time.sleep(0.001)
    return letter


@pytest.fixture
def opened(monkeypatch):
    """The workers the scheduler opens, in order."""
    workers = []
    real = scheduler.open_worker

    def recording(case):
        workers.append(real(case))
        return workers[-1]

    monkeypatch.setattr(scheduler, "open_worker", recording)
    return workers


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP") or not os.path.exists("/proc/self/stat"), reason="Linux only")
def test_every_case_runs_in_the_same_rounds_in_two_workers_and_idle_workers_are_stopped(relu_model, opened):
    seen = []

    def check(tick):
        seen.append({state(w._process.pid) for w in opened if w._process.is_alive()})

    cases = [Case(relu_model, Target(threads=1), FEED, ISOLATED) for _ in range(3)]
    outcomes = interleave(cases, ISOLATED, [(0, 1), (0, 2)], on_tick=check)
    assert all(isinstance(o, Outcome) for o in outcomes)
    rounds = [[b.round for b in o.measurement.blocks] for o in outcomes]
    assert all(r[:MIN_ROUNDS] == list(range(MIN_ROUNDS)) for r in rounds)
    assert all(len(o.measurement.samples_ns) == sum(b.calls for b in o.measurement.blocks) for o in outcomes)
    # Between blocks every worker is stopped ("T"): none spins beside the next one being timed.
    assert seen and all(states == {"T"} for states in seen), [s for s in seen if s != {"T"}]
    assert len(opened) == 6 and not any(w._process.is_alive() for w in opened)  # two per case, all ended


def test_a_worker_killed_mid_sweep_fails_its_case_and_the_others_go_on(relu_model, opened):
    def kill_second(tick):
        if tick.round == 3:
            for worker in opened[2:4]:  # each case has two workers: case 0's two, then case 1's
                if worker._process.is_alive():
                    os.kill(worker._process.pid, signal.SIGKILL)

    cases = [Case(relu_model, Target(threads=1), FEED, ISOLATED) for _ in range(2)]
    first, second = interleave(cases, ISOLATED, [(0, 1)], on_tick=kill_second)
    assert second == Failure("failed", "killed (SIGKILL — out of memory?)")
    assert isinstance(first, Outcome) and len(first.measurement.blocks) >= MIN_ROUNDS


def test_a_case_that_cannot_open_fails_alone(relu_model, tmp_path):
    missing = str(tmp_path / "absent.onnx")
    cases = [Case(relu_model, Target(), FEED, FAST), Case(missing, Target(), FEED, FAST)]
    good, bad = interleave(cases, FAST, [(0, 1)])
    assert isinstance(good, Outcome) and isinstance(bad, Failure) and bad.status == "failed"


def test_memory_groups_keep_comparisons_together_and_split_with_the_baseline():
    # base 0 with variants 1, 2; base 3 with variant 4. Everything fits: one group.
    pairs = [(0, 1), (0, 2), (3, 4)]
    assert memory_groups([1, 1, 1, 1, 1], pairs, cap=10) == [[0, 1, 2, 3, 4]]
    # The two comparison sets do not fit together: one group each.
    assert memory_groups([2, 2, 2, 2, 2], pairs, cap=6) == [[0, 1, 2], [3, 4]]
    # One set alone is too large: its baseline goes with every part, so every pair is still timed together.
    assert memory_groups([3, 3, 3, 1, 1], pairs, cap=6) == [[0, 1], [0, 2], [3, 4]]
    # A chain (native 0 → model as given 1 → variants 2, 3): both rows others are compared with, in every part.
    chain = [(0, 1), (1, 2), (1, 3)]
    assert memory_groups([500, 200, 200, 200], chain, cap=800) == [[0, 1, 2], [0, 1, 3]]
