import pytest

from perfkit.analysis.stats import (
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


def test_a_rows_own_warnings_are_about_its_harness_and_clock_not_the_machines_noise():
    noisy = summarize([100] * 90 + [1000] * 10)
    assert stability_warnings(noisy, harness_ns=0.5, resolution_ns=0.1) == []  # said once per run instead
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
    assert not same.significant and fmt_ratio(same).startswith("≈1.00× ±")
    assert speedup(slow, summarize([1000, 1001])) is None and fmt_ratio(None) == "-"
    wide = speedup(summarize([1000 * (1 + k % 9) for k in range(40)]),
                   summarize([900 * (1 + k % 7) for k in range(40)]))
    assert wide.low > 0  # log-space: a wide interval never crosses zero, as the old formula's [-2.90, 7.42] did


def blocks(medians, first_round=0):
    from perfkit.core.report import Block

    return tuple(Block(first_round + k, 100, float(m)) for k, m in enumerate(medians))


def test_a_paired_ratio_cancels_drift_that_moves_both_rows_of_a_round():
    from perfkit.analysis.stats import paired_ratio

    drift = [1000 * (1 + 0.5 * (k % 5)) for k in range(20)]  # the machine moves ±50 % between rounds
    base, copy = blocks(drift), blocks([d * (1 + 0.003 * (-1) ** k) for k, d in enumerate(drift)])
    same = paired_ratio(base, copy, threshold=0.02)
    assert same.rounds == 20 and same.low <= 1 <= same.high and not same.significant
    slower = paired_ratio(base, blocks([d * 1.1 for d in drift]), threshold=0.02)
    assert slower.significant and slower.value == pytest.approx(1 / 1.1) and slower.high < 1


def test_a_real_but_tiny_difference_is_not_called_under_the_threshold():
    from perfkit.analysis.stats import paired_ratio

    base = blocks([1000 + k % 3 for k in range(30)])
    tiny = paired_ratio(base, blocks([(1000 + k % 3) / 1.01 for k in range(30)]), threshold=0.02)
    assert tiny.low > 1 and not tiny.significant  # the interval excludes 1, but 1 % is under 2 %
    assert paired_ratio(base, blocks([1000] * 30, first_round=100), threshold=0.02) is None  # no shared rounds


def test_an_interleaved_rows_interval_is_over_rounds_not_calls():
    calls = [1000 + k % 7 for k in range(2000)]  # thousands of calls look precise ...
    drifting = blocks([1000 * (1 + 0.02 * (k % 10)) for k in range(20)])  # ... but the rounds moved 18 %
    over_calls, over_rounds = summarize(calls), summarize(calls, drifting)
    assert over_calls.ci_rel < 0.002 and over_rounds.ci_rel > 0.04
