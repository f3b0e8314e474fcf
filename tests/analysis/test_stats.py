import pytest

from perfkit.analysis.stats import (
    CV_LIMIT,
    count_outliers,
    median_ci,
    percentile,
    required_n,
    stability_warnings,
    summarize,
    throughput,
)


def test_percentile_interpolates_like_numpy():
    import numpy as np

    values = [float(v) for v in range(1, 12)] + [100.0]
    for p in (0, 10, 50, 90, 99, 100):
        assert percentile(values, p) == pytest.approx(np.percentile(values, p))


def test_median_ci_brackets_the_median_and_narrows_with_n():
    small = median_ci([float(v) for v in range(10)])
    large = median_ci([float(v) / 100 for v in range(1000)])
    assert small[0] <= 4.5 <= small[1]
    assert large[0] <= 4.995 <= large[1]
    assert (large[1] - large[0]) / 10 < (small[1] - small[0]) / 10
    assert median_ci([1.0, 2.0, 3.0]) is None


def test_tail_percentiles_only_when_n_supports_them():
    assert (required_n(90), required_n(99)) == (50, 500)
    few = summarize(list(range(1, 50)))
    assert few.p90 is None and few.p99 is None
    enough = summarize(list(range(1, 501)))
    assert enough.p90 == pytest.approx(450.1) and enough.p99 == pytest.approx(495.01)


def test_summary_of_constant_samples():
    s = summarize([1000] * 40)
    assert (s.median, s.mean, s.stdev, s.cv, s.outliers, s.min, s.max) == (1000, 1000, 0, 0, 0, 1000, 1000)


def test_outliers_by_modified_z_score():
    values = sorted([100.0 + (i % 5) for i in range(95)] + [500.0] * 5)
    assert count_outliers(values, percentile(values, 50)) == 5


def test_throughput_never_divides_by_zero():
    assert throughput(8, 2e6) == pytest.approx(4000)
    assert throughput(0, 2e6) is None
    assert throughput(1, 0) is None


def test_warnings_for_noise_and_harness_cost():
    noisy = summarize([100] * 90 + [1000] * 10)
    texts = stability_warnings(noisy, harness_ns=5, resolution_ns=1)
    assert any(t.startswith("unstable: CV") and "--threads" in t for t in texts)
    assert any("far slower than the median" in t for t in texts)
    assert noisy.cv > CV_LIMIT
    quiet = summarize([1000 + (i % 3) for i in range(100)])
    assert stability_warnings(quiet, harness_ns=5, resolution_ns=1) == []
    assert any("harness cost" in t for t in stability_warnings(quiet, harness_ns=50, resolution_ns=1))
    assert any("timer resolution" in t for t in stability_warnings(quiet, harness_ns=5, resolution_ns=100))


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


def test_speedup_carries_its_uncertainty_and_noise_reads_as_approximately():
    from perfkit.analysis.stats import speedup
    from perfkit.output.units import fmt_ratio

    slow = summarize([2000 + k % 10 for k in range(100)])
    fast = summarize([1000 + k % 10 for k in range(100)])
    ratio = speedup(slow, fast)
    assert ratio.significant and 1.98 < ratio.value < 2.02 and ratio.low < ratio.value < ratio.high
    assert fmt_ratio(ratio).startswith("2.00× ±")
    same = speedup(slow, summarize([2001 + k % 10 for k in range(100)]))
    assert not same.significant and fmt_ratio(same) == "≈1.00×"
    assert speedup(slow, summarize([1000, 1001])) is None and fmt_ratio(None) == "-"
