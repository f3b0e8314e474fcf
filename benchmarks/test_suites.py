"""The suites a team keeps beside its code, written with perfkit's pytest plugin: each test opens one model
variant (built locally by perfkit.examples, nothing downloaded), pytest-benchmark times it in pedantic mode,
and the record's extra_info carries p50/p90/p99, the providers that ran, the lineage and the accuracy.

Run: pytest benchmarks/test_suites.py --benchmark-only   (records under results/benchmarks/; compare two
saved runs with pytest-benchmark's --benchmark-compare, or gate with --benchmark-compare-fail=median:10%)
"""

from __future__ import annotations

import pytest

CNN = {"model": "example:cnn", "batch": 8}
ENCODER = {"model": "example:small-encoder", "batch": 1, "dims": ("sequence=128",)}
PIPELINE = {"model": "example:sklearn-pipeline", "trust": True}  # perfkit wrote it: safe to unpickle


@pytest.mark.parametrize("variant", [None, "ort-opt:all", "int8-static:qdq,u8s8,per-channel"])
def test_cnn(perfkit_benchmark, variant):
    case = perfkit_benchmark(**CNN, variant=variant)
    assert case.cosine is not None and case.cosine >= 0.999


@pytest.mark.parametrize("variant", [None, "fusion", "int8-dynamic", "fusion+int8-dynamic"])
def test_encoder(perfkit_benchmark, variant):
    case = perfkit_benchmark(**ENCODER, variant=variant)
    assert case.cosine >= 0.99


@pytest.mark.parametrize("variant", ["native", None])
def test_sklearn_pipeline(perfkit_benchmark, variant):
    pytest.importorskip("skl2onnx")
    case = perfkit_benchmark(**PIPELINE, variant=variant)
    assert variant == "native" or case.agree == 1.0  # the conversion gives scikit-learn's labels


@pytest.mark.perfkit(**ENCODER, variant="fusion+int8-dynamic")
def test_encoder_int8_gate(perfkit_benchmark, perfkit_case, perfkit_speedup):
    """The gate a team would keep: int8 must stay clearly faster than fp32 and keep its accuracy. Measured
    1.26–1.67× over 7 runs on the 2-core development machine (each run's own interval is ±1 %: the spread
    between runs is the machine's), so the gate sits at 1.2×, below that spread, not at its median."""
    int8 = perfkit_benchmark()
    fp32 = perfkit_case(**ENCODER)
    ratio = perfkit_speedup(fp32, int8)
    print(f"\nsmall encoder, fusion+int8-dynamic vs fp32: {ratio.value:.2f}× ({ratio.low:.2f}–{ratio.high:.2f}), "
          f"cos {int8.cosine:.5f}")
    assert ratio.value >= 1.2 and int8.cosine >= 0.999


def test_pipeline_onnx_beats_scikit_learn(benchmark, perfkit_case, perfkit_speedup):
    pytest.importorskip("skl2onnx")
    native = perfkit_case(**PIPELINE, variant="native")
    onnx_row = perfkit_case(**PIPELINE)
    ratio = perfkit_speedup(native, onnx_row)
    print(f"\nscikit-learn pipeline, ONNX vs native: {ratio.value:.1f}× ({ratio.low:.1f}–{ratio.high:.1f})")
    benchmark.extra_info.update({**onnx_row.info(), "vs_native": ratio.value})
    benchmark.pedantic(onnx_row.call, rounds=500, warmup_rounds=50)
    assert ratio.value >= 5 and onnx_row.agree == 1.0
