"""The pytest plugin, run as a user runs it: a suite file in a fresh pytest session (pytester), with the
real pytest-benchmark timing the real onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def test_importing_the_plugin_imports_nothing_heavy():
    code = ("import sys, perfkit.pytest_plugin\n"
            "print(sorted(m for m in ('onnxruntime', 'numpy', 'onnx', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


SUITE = '''
import pytest

@pytest.mark.perfkit(model="example:cnn", variant="int8-dynamic", batch=4, rounds=30, warmup_rounds=3)
def test_cnn_int8(perfkit_benchmark, perfkit_case, perfkit_speedup):
    int8 = perfkit_benchmark()
    fp32 = perfkit_case("example:cnn", batch=4)
    ratio = perfkit_speedup(fp32, int8)
    assert ratio.value > 0 and ratio.low <= ratio.value <= ratio.high and ratio.rounds == 20
    assert int8.cosine > 0.99 and fp32.cosine > 0.9999  # fp32 against the model as written, optimizations off

@pytest.mark.perfkit("example:one-node")
def test_plain(perfkit_benchmark):
    case = perfkit_benchmark()
    assert case.label == "base" and case.providers[0] == "CPUExecutionProvider"
'''


def test_a_suite_times_variants_and_records_what_pytest_benchmark_lacks(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFKIT_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_suite=SUITE)
    out = tmp_path / "bench.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--benchmark-only", f"--benchmark-json={out}")
    result.assert_outcomes(passed=2)
    records = {b["name"]: b for b in json.loads(out.read_text())["benchmarks"]}
    int8 = records["test_cnn_int8"]
    assert int8["stats"]["rounds"] == 30
    info = int8["extra_info"]
    assert info["variant"] == "int8-dynamic" and info["lineage"] == ["int8-dynamic"]
    assert info["providers"][0] == "CPUExecutionProvider" and info["batch"] == 4
    assert info["cosine"] > 0.99 and info["p50_ns"] > 0 and "p99_ns" in info
    plain = records["test_plain"]["extra_info"]
    assert plain["variant"] == "base" and plain["accuracy"]["y"]["max_abs"] == 0
    assert records["test_plain"]["stats"]["rounds"] >= 20  # rounds chosen from the call's own speed


@pytest.mark.slow  # two pytest sessions in subprocesses: about 8 s
def test_benchmark_compare_keeps_working(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFKIT_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_suite='''
import pytest

@pytest.mark.perfkit(model="example:one-node", rounds=30, warmup_rounds=3)
def test_node(perfkit_benchmark):
    perfkit_benchmark()
''')
    storage = f"file://{tmp_path / 'storage'}"
    first = pytester.runpytest_subprocess("--benchmark-only", f"--benchmark-storage={storage}", "--benchmark-autosave")
    first.assert_outcomes(passed=1)
    # the median: one stall in 30 calls of 8 µs moved the mean 17x on a busy CI machine
    again = pytester.runpytest_subprocess("--benchmark-only", f"--benchmark-storage={storage}",
                                          "--benchmark-compare", "--benchmark-compare-fail=median:1000%")
    again.assert_outcomes(passed=1)
    assert "0001" in again.stdout.str()  # compared against the saved run


def test_a_marker_without_a_model_is_a_usage_error(pytester):
    pytester.makepyfile(test_suite='''
def test_node(perfkit_benchmark):
    perfkit_benchmark()
''')
    result = pytester.runpytest_subprocess("--benchmark-only")
    assert "needs @pytest.mark.perfkit(model=...)" in result.stdout.str() + result.stderr.str()


def test_a_case_opened_from_a_tuned_config_runs_its_file_on_its_session(tmp_path):
    import numpy as np
    import onnx

    from perfkit.files.tuned import write_folder
    from perfkit.suite import open_case
    from tests.files.test_tuned import TUNED, config_for
    from tests.models import mlp

    onnx.save(mlp(), tmp_path / "m.onnx")
    written = write_folder(tmp_path / "tuned", config_for(str(tmp_path / "m.onnx")),
                           {"x": np.ones((2, 16), np.float32)})
    case = open_case(str(tmp_path / "m.onnx"), config=str(written), cache_dir=str(tmp_path / "cache"))
    try:
        assert case.lineage == ("tuned",) and case.target == TUNED and case.batch == 2
        assert case.settings["session.intra_op.allow_spinning"] == "0"
        assert case.settings["execution_mode"] == "ORT_PARALLEL"
        assert case.cosine > 0.9999
        case.call()
    finally:
        case.close()
