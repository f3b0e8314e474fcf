"""Plain-text lines for the commands that print lists rather than a table: `perfkit compare` and
`perfkit history`."""

from __future__ import annotations

from perfkit.analysis.comparison import Comparison
from perfkit.output.store import HistoryPoint
from perfkit.output.units import fmt_ns


def comparison_lines(c: Comparison) -> list[str]:
    """The comparison as a header, one line per case (medians, the change with its interval, the verdict and
    what it rests on), then its warnings."""
    width = max((len(x.key) for x in c.cases), default=10)
    lines = [c.title, *c.notes]
    lines.append(f"{'case':<{width}}  {'old':>10}  {'new':>10}  {'change':>8}  {'95% interval':>17}  verdict")
    for x in c.cases:
        old_ns = fmt_ns(x.old_ns) if x.old_ns else "-"
        new_ns = fmt_ns(x.new_ns) if x.new_ns else "-"
        change = f"{x.change:+.1%}" if x.change is not None else "-"
        interval = f"[{x.low:+.1%}, {x.high:+.1%}]" if x.low is not None and x.high is not None else "-"
        why = f"  ({x.why})" if x.why else ""
        lines.append(f"{x.key:<{width}}  {old_ns:>10}  {new_ns:>10}  {change:>8}  {interval:>17}  {x.verdict}{why}")
    lines += [f"warning: {w}" for w in c.warnings]
    return lines


def history_lines(points: list[HistoryPoint]) -> list[str]:
    """Each case's median run by run, oldest first, with its change first to last and a trend bar."""
    cases: dict[tuple[str, str, int], list[HistoryPoint]] = {}
    for point in points:
        cases.setdefault((point.variant, point.target, point.batch), []).append(point)
    lines = []
    for (variant, target, batch), runs in cases.items():
        medians = [p.median_ns for p in runs if p.median_ns]
        trend = f"  ({medians[-1] / medians[0] - 1:+.1%} first to last)" if len(medians) >= 2 else ""
        lines.append(f"{variant} on {target}, batch {batch}{trend}")
        for p in runs:
            shown = fmt_ns(p.median_ns) if p.median_ns else p.status
            lines.append(f"  {p.run_id}  {shown:>10}  {_bar(p.median_ns, medians)}")
    return lines


def _bar(value: float | None, values: list[float]) -> str:
    """A text bar scaled between the case's fastest and slowest run: the trend at a glance."""
    if not value or not values or max(values) == min(values):
        return ""
    return "█" * (1 + round(19 * (value - min(values)) / (max(values) - min(values))))
