"""perfkit compare: a rank test on the raw samples plus a practical threshold, and the CI gate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from perfkit import bench
from perfkit.analysis.comparison import compare_runs, mann_whitney, parse_threshold
from perfkit.cli import main
from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec
from tests.conftest import FAST, graph_model, tensor


def test_mann_whitney_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(100, 5, 300))  # rounding makes ties, as the timer's resolution does
    b = np.round(rng.normal(101, 5, 200))
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    assert mann_whitney(list(a), list(b)) == pytest.approx(expected, rel=1e-6)
    assert mann_whitney([1.0] * 10, [1.0] * 10) == 1.0


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
    assert case.verdict == "slower" and case.change > 0.5 and case.p_value < 1e-6
    (back,) = compare_runs(slowed, fast).cases
    assert back.verdict == "faster"
    (same,) = compare_runs(fast, fast).cases
    assert same.verdict == "≈" and same.change == 0


def test_a_significant_change_below_the_practical_threshold_is_not_called(runs):
    fast, _ = runs
    r = fast.results[0]
    rng = np.random.default_rng(1)

    def with_samples(shift: float):
        """The row with tight samples around 10 µs, every one `shift` slower: a real but small change."""
        samples = tuple(int(v * (1 + shift)) for v in rng.normal(10_000, 20, 500))
        return replace(fast, results=(replace(r, measurement=replace(r.measurement, samples_ns=samples),
                                              summary=replace(r.summary, median=float(np.median(samples)))),))

    base, nudged = with_samples(0.0), with_samples(0.01)
    (case,) = compare_runs(base, nudged).cases
    assert case.p_value < 0.01 and case.verdict == "≈"
    (strict,) = compare_runs(base, nudged, practical=0.005).cases
    assert strict.verdict == "slower"


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
