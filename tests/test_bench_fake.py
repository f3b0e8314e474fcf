"""perfkit bench's flow on the fake backend (tests/fakes.py): every figure is simulated, so the rows, the
speed-ups and the pick are the same on every machine, and nothing here needs onnxruntime."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from perfkit import bench
from perfkit.analysis.verdict import judge
from perfkit.core.spec import Plan
from perfkit.options import make_spec
from perfkit.output.cells import notes
from perfkit.output.render import render

# The fake clock moves only when the fake session runs: these bounds are simulated time, not waiting.
PLAN = Plan(warmup_calls=2, warmup_time_s=0.0, warmup_max_s=1.0, min_rounds=30, min_time_s=0.0, max_time_s=1.0,
            max_rounds=200, timeout_s=60, isolate=False)


def run(fake_backend, tmp_path, variants=(), **options):
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=1_000_000)
    options.setdefault("plan", PLAN)
    return bench.run(make_spec(model, results_dir=None, variants=variants, cache_dir=str(tmp_path / "cache"),
                               **options))


def test_the_flow_runs_without_onnxruntime(fake_backend, tmp_path):
    with pytest.raises(ImportError):
        import onnxruntime  # noqa: F401
    (row,) = run(fake_backend, tmp_path).results
    assert row.status == "ok" and row.providers == (fake_backend.PROVIDER,)
    assert row.summary.median == pytest.approx(1_000_000, rel=0.006)  # the ±2 % pattern's middle


def test_a_variant_twice_as_fast_is_the_pick(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("fast",))
    verdict = judge(report)
    base, fast = report.results
    assert fast.model.lineage == ("fast",) and verdict.baseline == (0, 0)
    assert verdict.speedups[1].value == pytest.approx(2.0, rel=0.01) and verdict.speedups[1].significant
    assert verdict.best == (1,)
    pick = "★ fastest inside cos>=0.99,agree>=0.99 on ort:cpu, batch 1: row 2 fast (2.00×"
    assert pick in render(report, "table", width=250)


def test_a_faster_variant_outside_the_budget_is_not_the_pick(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("wrong",), accuracy_budget="max_abs<=1e-3")
    verdict = judge(report)
    assert verdict.speedups[1].value == pytest.approx(4.0, rel=0.01)  # the fake calls jitter ±2 %
    assert verdict.budget[1] == (False, "y: max_abs 0.5 (budget <=0.001)")
    assert verdict.best == (0,)


def test_the_same_file_under_another_name_is_not_called_faster(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("same",))
    ratio = judge(report).speedups[1]
    assert ratio.value == 1.0 and not ratio.significant
    assert judge(report).best == (0,)  # the model as given, since nothing is faster beyond the noise


def test_a_variant_that_breaks_is_one_failed_row_and_the_run_goes_on(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("broken", "fast"))
    base, broken, fast = report.results
    assert broken.status == "failed" and broken.reason == "building broken: RuntimeError: this transform always breaks"
    assert base.status == fast.status == "ok" and report.failed and report.complete


def test_a_gpu_target_the_backend_lacks_makes_skipped_rows(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, targets=("ort:cpu", "ort:cuda"))
    cpu, cuda = report.results
    assert cpu.status == "ok" and cuda.status == "skipped" and cuda.summary is None
    assert cuda.reason == "the fake backend has no cuda device — no GPU row is measured here, and none pretends"


def test_two_equal_variants_are_interleaved_and_the_first_of_the_tie_is_the_pick(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("fast", "fast+same"))
    base, fast, same = report.results
    rounds = [b.round for b in base.measurement.blocks]
    assert rounds == [b.round for b in fast.measurement.blocks][:len(rounds)] and len(rounds) >= 10
    assert judge(report).best == (1,)


# A busy machine, simulated: slow waves, a step, bursts. One row timed after another sees another machine.
PERIOD_NS = 400_000_000  # a wave a few rows long


def waves(now: int) -> float:
    return 1 + 0.3 * math.sin(2 * math.pi * now / PERIOD_NS)


def step(now: int) -> float:
    return 1.0 if now < 150_000_000 else 1.25


def bursts(now: int) -> float:
    return 2.5 if (now // 7_000_000) % 9 == 0 else 1.0  # 7 ms of triple-slow calls in every 63 ms


DRIFTS = {"waves": waves, "step": step, "bursts": bursts}
BUSY = Plan(warmup_calls=2, warmup_time_s=0.0, warmup_max_s=1.0, min_rounds=30, min_time_s=0.1, max_time_s=0.3,
            max_rounds=2000, timeout_s=60, isolate=False)


@pytest.mark.parametrize("drift", DRIFTS)
def test_on_a_drifting_machine_a_copy_is_never_called_different_when_interleaved(fake_backend, tmp_path, drift):
    fake_backend.MACHINE.reset(DRIFTS[drift])
    report = run(fake_backend, tmp_path, ("same",), plan=BUSY)
    ratio = judge(report).speedups[1]
    assert not ratio.significant and ratio.low <= 1 <= ratio.high and ratio.rounds >= 10, ratio


@pytest.mark.parametrize("drift", ["waves", "step"])
def test_timed_one_after_the_other_the_same_copy_is_called_different(fake_backend, tmp_path, drift):
    """The design interleaving replaces, on the same simulated machine: it is fooled by the drift."""
    fake_backend.MACHINE.reset(DRIFTS[drift])
    report = run(fake_backend, tmp_path, ("same",), plan=replace(BUSY, interleave=False))
    ratio = judge(report).speedups[1]
    assert ratio.significant and ratio.rounds == 0 and abs(ratio.value - 1) > 0.05, ratio


@pytest.mark.parametrize("drift", DRIFTS)
def test_on_a_drifting_machine_a_planted_ten_percent_slowdown_is_found(fake_backend, tmp_path, drift):
    fake_backend.MACHINE.reset(DRIFTS[drift])
    report = run(fake_backend, tmp_path, ("slow10",), plan=BUSY)
    ratio = judge(report).speedups[1]
    assert ratio.significant and ratio.high < 1 and ratio.value == pytest.approx(1 / 1.1, rel=0.02), ratio


def test_a_noisy_run_says_so_once_under_the_table(fake_backend, tmp_path):
    fake_backend.MACHINE.reset(bursts)
    report = run(fake_backend, tmp_path, ("same", "slow10"), plan=BUSY)
    lines = notes(report, judge(report))
    (line,) = [t for t in lines if "far slower" in t]  # not once per row as well
    assert line.startswith("noise: noisy — ") and "rows 1–3 stalled" in line and "perfkit doctor" in line


def test_the_flow_makes_the_golden_report(fake_backend, tmp_path):
    from perfkit.core.report import to_json
    from tests.output.test_golden import GOLDEN, UPDATE

    made = to_json(fake_backend.golden_run(tmp_path)) + "\n"
    if UPDATE:
        (GOLDEN / "report.json").write_text(made)
    assert made == (GOLDEN / "report.json").read_text()


def test_rows_too_large_for_memory_together_are_measured_in_groups_and_say_so(fake_backend, tmp_path, monkeypatch):
    from perfkit import rows

    monkeypatch.setattr(rows, "available_memory", lambda: int(2.5 * rows.WORKER_BYTES / rows.MEMORY_SHARE))
    report = run(fake_backend, tmp_path, ("same", "fast", "slow10"))
    note = next(w for w in report.warnings if w.startswith("memory:"))
    assert "measured in 3 groups of rows (1, 2; 1, 3; 1, 4)" in note
    base = report.results[0].measurement.blocks
    verdict = judge(report)
    # The baseline was timed with each group, so every variant is still paired with it, round by round.
    assert len(base) == sum(len(r.measurement.blocks) for r in report.results[1:])
    assert [round(verdict.speedups[i].value, 2) for i in (1, 2, 3)] == [1.0, 2.0, 0.91]
    assert all(verdict.speedups[i].rounds >= 10 for i in (1, 2, 3))


def test_a_zero_threshold_stops_at_the_minimum_instead_of_dividing_by_it(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("slow10",), plan=replace(BUSY, threshold=0.0))
    ratio = judge(report).speedups[1]
    assert ratio.significant and ratio.rounds >= 10
