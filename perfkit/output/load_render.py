"""A load run as a table (one line per step, the knee and the SLO verdict marked), markdown, csv (one row per
step) or json. The json and csv names are stable: concurrency, rate, requests_per_s, items_per_s, p50_ns,
p90_ns, p99_ns, p999_ns, slo_pass per step, max_rate_meeting_slo per row."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

from perfkit.core.load import LOAD_SCHEMA, LoadReport, LoadRow, LoadStep
from perfkit.output.units import fmt_ns

COLUMNS = ("variant", "target", "threads", "load", "requests/s", "items/s", "p50", "p90", "p99", "p99.9", "CPU",
           "SLO")


def cells(report: LoadReport, row: LoadRow, k: int, s: LoadStep) -> list[str]:
    load = f"{s.rate:,.0f}/s offered" if s.rate is not None else \
        f"{s.concurrency} caller{'s' if s.concurrency != 1 else ''}"
    if s.batching:
        load += f", mean batch {s.mean_batch:.1f}"
    slo = "-" if s.slo_pass is None else ("pass" if s.slo_pass else "FAIL") + ("" if s.enough else " (few)")
    mark = " ◆ knee" if row.knee == k else ""
    return [row.label if k == 0 else "", row.target if k == 0 else "", str(s.threads or "default"),
            load + mark, f"{s.requests_per_s:,.1f}", f"{s.items_per_s:,.1f}", fmt_ns(s.p50_ns), fmt_ns(s.p90_ns),
            fmt_ns(s.p99_ns), fmt_ns(s.p999_ns), f"{s.cpu_util:.0%}", slo]


def table_rows(report: LoadReport) -> list[list[str]]:
    out = []
    for row in report.rows:
        if row.status != "ok":
            out.append([row.label, row.target, "", row.status, *([""] * 7), row.reason[:60]])
            continue
        out += [cells(report, row, k, s) for k, s in enumerate(row.steps)]
    return out


def notes(report: LoadReport) -> list[str]:
    spec = report.spec
    lines = []
    for row in report.rows:
        if row.max_rate_meeting_slo is not None:
            slo = spec.slo.text if spec.slo else "the SLO"
            lines.append(f"{row.label} on {row.target}: highest rate meeting {slo}: "
                         f"{row.max_rate_meeting_slo:,.1f} requests/s (searched within 5 %, {len(row.search)} probes)")
        elif spec.slo and spec.scenario == "server" and not spec.rates and row.status == "ok":
            lines.append(f"{row.label} on {row.target}: no rate meets {spec.slo.text}")
        if row.cost_per_million is not None:
            at = "at the highest rate meeting the SLO" if row.max_rate_meeting_slo is not None else "at peak throughput"
            lines.append(f"{row.label} on {row.target}: ${row.cost_per_million:,.4f} per million inferences {at} "
                         f"(${spec.price_per_hour:g}/h)")
        lines += [f"warning: {row.label}: {w}" for w in row.warnings]
    lines += best_batchers(report)
    lines += [f"warning: {w}" for w in report.warnings]
    if spec.scenario == "server":
        lines.append("latency runs from each request's scheduled arrival (Poisson, seed "
                     f"{spec.seed}): queueing counts, and a stall cannot hide its backlog")
    return lines


def best_batchers(report: LoadReport) -> list[str]:
    """With several batchers (--batching auto), the one that meets the SLO at the highest rate, per model file."""
    if len(report.spec.batching) < 2:
        return []
    best: dict[tuple[str, str], LoadRow] = {}
    for row in report.rows:
        if row.max_rate_meeting_slo is None or not row.steps:
            continue
        key = (row.label.split(" (")[0], row.target)
        if key not in best or row.max_rate_meeting_slo > (best[key].max_rate_meeting_slo or 0):
            best[key] = row
    return [f"best batcher for {label} on {target}: {row.steps[0].batching} "
            f"({row.max_rate_meeting_slo:,.1f} requests/s under the SLO)" for (label, target), row in best.items()]


def render_load(report: LoadReport, fmt: str, width: int = 160) -> str:
    if fmt == "json":
        return json.dumps({"schema": LOAD_SCHEMA, **asdict(report)}, indent=1, default=str) + "\n"
    if fmt == "csv":
        return _csv(report)
    rows = table_rows(report)
    title = f"perfkit load {report.run_id} — {report.spec.bench.model}, {report.spec.scenario}"
    if fmt == "markdown":
        lines = [f"**{title}**", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(rows_k) + " |" for rows_k in rows]
        return "\n".join([*lines, "", *[f"- {n}" for n in notes(report)]]) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("variant", "target", "load", "SLO") else "right")
    for r in rows:
        table.add_row(*r)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, highlight=False)
    console.print(table)
    for line in notes(report):
        console.print(line, markup=False)
    return buffer.getvalue()


def _csv(report: LoadReport) -> str:
    buffer = io.StringIO()
    fields = ["variant", "target", "threads", *LoadStep.__dataclass_fields__, "max_rate_meeting_slo",
              "cost_per_million"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in report.rows:
        for s in row.steps:
            writer.writerow({"variant": row.label, "target": row.target, "threads": row.threads, **asdict(s),
                             "max_rate_meeting_slo": row.max_rate_meeting_slo,
                             "cost_per_million": row.cost_per_million})
    return buffer.getvalue()


def comparison_lines(old: LoadReport, new: LoadReport) -> tuple[list[str], float]:
    """The highest rate under the SLO of every row the two runs share, old → new, with the interval the two
    searches' brackets allow; and the worst significant drop (0.0 when none)."""
    from perfkit.analysis.load import rate_change

    lines = [f"load runs {old.run_id} → {new.run_id}"
             + (f", {old.spec.slo.text}" if old.spec.slo else "")]
    if (old.spec.slo and old.spec.slo.text) != (new.spec.slo and new.spec.slo.text):
        lines.append("warning: the runs were searched under different SLOs: their rates do not compare")
    before = {(r.label, r.target): r for r in old.rows}
    worst = 0.0
    for row in new.rows:
        was = before.get((row.label, row.target))
        if not was or was.max_rate_meeting_slo is None or row.max_rate_meeting_slo is None:
            continue
        change = rate_change(was.max_rate_meeting_slo, was.lowest_failing_rate, row.max_rate_meeting_slo,
                             row.lowest_failing_rate)
        verdict = ("faster" if change.ratio > 1 else "slower") if change.significant else "no significant change"
        lines.append(f"{row.label} on {row.target}: {change.old:,.1f} → {change.new:,.1f} requests/s, "
                     f"{change.ratio:.2f}× ({change.low:.2f}–{change.high:.2f}): {verdict}")
        if change.significant and change.ratio < 1:
            worst = max(worst, 1 - change.ratio)
    if len(lines) == 1:
        lines.append("no row of both runs has a highest rate under an SLO: run both with --scenario server --slo")
    return lines, worst


def load_history_lines(runs: list[LoadReport]) -> list[str]:
    """Per load run, oldest first: each row's highest rate under the SLO, or its peak throughput."""
    lines = []
    for report in runs:
        for row in report.rows:
            if row.max_rate_meeting_slo is not None:
                slo = report.spec.slo.text if report.spec.slo else "the SLO"
                figure = f"{row.max_rate_meeting_slo:,.1f} requests/s under {slo}"
            elif row.steps:
                peak = max(row.steps, key=lambda s: s.requests_per_s)
                figure = f"peak {peak.requests_per_s:,.1f} requests/s (p99 {fmt_ns(peak.p99_ns)})"
            else:
                figure = row.status
            lines.append(f"{report.run_id}  load {report.spec.scenario:<7} {row.label} on {row.target}: {figure}")
    return lines
