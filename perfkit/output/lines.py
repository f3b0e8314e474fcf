"""Plain-text lines for the commands that print lists rather than a table: `perfkit compare` and
`perfkit history`."""

from __future__ import annotations

from perfkit.analysis.comparison import ALPHA, Comparison
from perfkit.output.store import HistoryPoint
from perfkit.output.units import fmt_ns


def comparison_lines(c: Comparison) -> list[str]:
    width = max((len(x.key) for x in c.cases), default=10)
    lines = [f"{c.old.run_id} → {c.new.run_id}  (rank test p < {ALPHA:g} and a change of at least "
             f"{c.practical:.0%} to call it)"]
    before, after = (sorted({r.model.digest[:12] for r in run.results if r.model.is_base and r.model.digest})
                     for run in (c.old, c.new))
    if before != after:  # a new model version: the point of many comparisons, said so it is not a surprise
        lines.append(f"the model changed between the runs: {c.old.spec.model} ({', '.join(before)}) → "
                     f"{c.new.spec.model} ({', '.join(after)})")
    lines.append(f"{'case':<{width}}  {'old':>10}  {'new':>10}  {'change':>8}  {'p':>8}  verdict")
    for x in c.cases:
        old = fmt_ns(x.old_ns) if x.old_ns else "-"
        new = fmt_ns(x.new_ns) if x.new_ns else "-"
        change = f"{x.change:+.1%}" if x.change is not None else "-"
        p = "-" if x.p_value is None else "<1e-6" if x.p_value < 1e-6 else f"{x.p_value:.2g}"
        lines.append(f"{x.key:<{width}}  {old:>10}  {new:>10}  {change:>8}  {p:>8}  {x.verdict}")
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
