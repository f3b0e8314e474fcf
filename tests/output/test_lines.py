"""`perfkit history`'s lines: each case's medians oldest first, the change first to last, a trend bar."""

from perfkit.output.lines import history_lines
from perfkit.output.store import HistoryPoint


def point(run, median, status="ok", variant="base"):
    return HistoryPoint(run, "2026-12-03", variant, "ort:cpu", 8, median, status)


def test_each_case_shows_its_trend_and_a_bar_scaled_to_its_own_range():
    lines = history_lines([point("r1", 1e6), point("r2", 1.5e6), point("r3", 2e6), point("r1", 5e5, variant="fast")])
    assert lines[0] == "base on ort:cpu, batch 8  (+100.0% first to last)"
    assert lines[1:4] == [f"  r1  {'1 ms':>10}  █", f"  r2  {'1.5 ms':>10}  {'█' * 11}",
                          f"  r3  {'2 ms':>10}  {'█' * 20}"]
    assert lines[4:] == ["fast on ort:cpu, batch 8", f"  r1  {'500 µs':>10}  "]  # one run: no trend, no bar


def test_a_failed_run_shows_its_status_instead_of_a_figure():
    lines = history_lines([point("r1", 1e6), point("r2", None, status="failed")])
    assert lines == ["base on ort:cpu, batch 8", f"  r1  {'1 ms':>10}  ", f"  r2  {'failed':>10}  "]
