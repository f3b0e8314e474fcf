"""perfkit compare: a rank test on the raw samples plus a practical threshold, and the CI gate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from perfkit import bench
from perfkit.analysis.comparison import compare_runs, parse_threshold
from perfkit.analysis.stats import summarize
from perfkit.cli import main
from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec
from tests.conftest import FAST, graph_model, tensor


def slow_model(extra: int):
    """y = relu(x) after `extra` 256x256 MatMuls: the same case, made slower by a planted chain."""
    nodes, inits, name = [], [], "x"
    for i in range(extra):
        w = helper.make_tensor(f"w{i}", TensorProto.FLOAT, [256, 256], np.full(256 * 256, 0.001, np.float32))
        inits.append(w)
        nodes.append(helper.make_node("MatMul", [name, f"w{i}"], [f"h{i}"]))
        name = f"h{i}"
    nodes.append(helper.make_node("Relu", [name], ["y"]))
    return graph_model(nodes, [tensor("x", shape=("batch", 256))], [tensor("y", shape=("batch", 256))], inits)


@pytest.fixture
def runs(save, tmp_path):
    plan = replace(FAST, min_rounds=40, max_rounds=200, max_time_s=0.5)

    def run(model, name):
        return bench.run(make_spec(save(model, name), plan=plan, results_dir=str(tmp_path / "results"),
                                   batch=(8,)))
    return run(slow_model(0), "fast.onnx"), run(slow_model(6), "slowed.onnx")


def test_a_planted_slowdown_is_called_slower_and_the_same_run_is_unchanged(runs):
    fast, slowed = runs
    (case,) = compare_runs(fast, slowed).cases
    assert case.verdict == "slower" and case.change > 0.5 and case.low > 0.2
    (back,) = compare_runs(slowed, fast).cases
    assert back.verdict == "faster"
    (same,) = compare_runs(fast, fast).cases
    assert same.verdict == "≈" and same.change == 0


def drifting(run, level: float, spread: float):
    """The run's one row re-made with 20 rounds whose block medians wander ±`spread` around `level` ns."""
    from perfkit.core.report import Block

    r = run.results[0]
    blocks = tuple(Block(k, 10, level * (1 + spread * ((k % 5) - 2) / 2)) for k in range(20))
    samples = tuple(int(b.median_ns) for b in blocks for _ in range(10))
    m = replace(r.measurement, samples_ns=samples, blocks=blocks)
    return replace(run, results=(replace(r, measurement=m, summary=summarize(samples, blocks)),))


def test_stored_runs_are_held_to_their_own_drift_and_the_machines_floor(runs):
    fast, slowed = runs
    old = drifting(fast, 10_000, 0.10)  # within each run the machine wandered ±10 %
    (inside,) = compare_runs(old, drifting(slowed, 10_800, 0.10)).cases
    assert inside.verdict == "≈" and inside.low < 0 < inside.high  # +8 % is inside that
    (beyond,) = compare_runs(old, drifting(slowed, 14_000, 0.10)).cases
    assert beyond.verdict == "slower"
    steady = drifting(fast, 10_000, 0.01)
    (called,) = compare_runs(steady, drifting(slowed, 10_800, 0.01)).cases
    assert called.verdict == "slower"
    floors = {slowed.results[0].model.digest: 0.15}  # `perfkit doctor` found this machine resolves 15 % only
    (floored,) = compare_runs(steady, drifting(slowed, 10_800, 0.01), floors=floors).cases
    assert floored.verdict == "≈" and "A/A floor 15.0%" in floored.why


def test_the_same_model_measured_twice_is_never_a_change_however_the_machine_moved(runs):
    fast, _ = runs
    calm, busy = drifting(fast, 10_000, 0.01), drifting(fast, 16_000, 0.01)  # the machine got 60 % slower
    (case,) = compare_runs(calm, busy).cases
    assert case.verdict == "≈" and case.change == pytest.approx(0.6) and "this machine's" in case.why
    loaded = replace(busy, environment=replace(busy.environment, load_average=5.9, logical_cores=2))
    warnings = compare_runs(calm, loaded).warnings
    assert any("busy machine (load 5.9 on 2 cores)" in w for w in warnings)
    # Other software is a possible cause: then the change is judged, not dismissed.
    upgraded = replace(busy, environment=replace(busy.environment, packages={"onnxruntime": "9.9"}))
    assert compare_runs(calm, upgraded).cases[0].verdict == "slower"


def test_models_measured_now_are_paired_and_gated(save, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fast, slowed = save(slow_model(0), "fast.onnx"), save(slow_model(3), "slowed.onnx")
    quick = ["--batch", "8", "--min-time", "0.2", "--max-time", "0.5", "--no-isolate"]
    cli = CliRunner()
    gate = cli.invoke(main, ["compare", fast, slowed, "--fail-on-regression", "10%", *quick])
    assert gate.exit_code == 1, gate.output
    assert "slower  (paired over" in gate.stdout and "regression" in gate.stderr
    same = cli.invoke(main, ["compare", fast, fast, "--fail-on-regression", "10%", *quick])
    assert same.exit_code == 0 and "slower" not in same.stdout and "faster" not in same.stdout, same.output


def test_different_environments_and_settings_are_warned(runs):
    fast, _ = runs
    other = replace(fast, environment=replace(fast.environment, cpu_model="Other CPU",
                                              packages={**fast.environment.packages, "onnxruntime": "0.1"}),
                    results=tuple(replace(r, target=replace(r.target, threads=1)) for r in fast.results))
    warnings = compare_runs(fast, other).warnings
    assert any("different CPUs" in w for w in warnings)
    assert any("onnxruntime" in w and "→ 0.1" in w for w in warnings)
    assert any("threads default → 1" in w for w in warnings)


def test_the_cli_gate_exits_1_on_a_regression_and_baselines_are_named(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fast, slowed = runs
    cli = CliRunner()
    saved = cli.invoke(main, ["baseline", fast.run_id, "main"])
    assert saved.exit_code == 0 and (tmp_path / "results" / "baselines" / "main.json").is_file()
    gate = cli.invoke(main, ["compare", "main", slowed.run_id, "--fail-on-regression", "5%"])
    assert gate.exit_code == 1 and "slower" in gate.stdout and "regression" in gate.stderr
    assert "the model changed between the runs" in gate.stdout
    fine = cli.invoke(main, ["compare", "main", fast.run_id, "--fail-on-regression", "5%"])
    assert fine.exit_code == 0 and "≈" in fine.stdout
    history = cli.invoke(main, ["history", "fast.onnx"])
    assert fast.run_id in history.stdout and "base on ort:cpu, batch 8" in history.stdout


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("0.1", 0.1)])
def test_thresholds(text, value):
    assert parse_threshold(text) == pytest.approx(value)
    with pytest.raises(PerfkitError):
        parse_threshold("five")



def test_two_stored_runs_can_be_measured_again_now(runs, tmp_path, monkeypatch):
    fast, slowed = runs
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    again = cli.invoke(main, ["compare", fast.run_id, slowed.run_id, "--rerun", "--min-time", "0.2", "--max-time",
                              "0.5", "--no-isolate", "--fail-on-regression", "10%"])
    assert again.exit_code == 1, again.output
    assert "fast.onnx → " in again.stdout and "slowed.onnx" in again.stdout and "slower  (paired over" in again.stdout
    Path(slowed.spec.model).unlink()
    gone = cli.invoke(main, ["compare", fast.run_id, slowed.run_id, "--rerun"])
    assert gone.exit_code == 2 and f"the model file of run {slowed.run_id} is gone" in gone.stderr
