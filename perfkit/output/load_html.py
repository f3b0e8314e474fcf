"""A load run as one self-contained HTML page: the latency-throughput curve of every row with the SLO's line
and the knee, a latency-percentile plot per row (one line per step), and the table."""

from __future__ import annotations

import html
import math

from perfkit.core.load import LoadReport, LoadRow
from perfkit.output.load_render import COLUMNS, notes, table_rows
from perfkit.output.svg import PLOT_W, scale

LEFT, TOP, HEIGHT = 70, 20, 240
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(-n+4),th{text-align:left}
svg{background:#fafafa;margin:1em 0}.axis{stroke:#888}.slo{stroke:#d62728;stroke-dasharray:6 4}
text{font-size:11px;fill:#444}polyline{fill:none;stroke-width:2}"""


def render_load_html(report: LoadReport) -> str:
    rows = [r for r in report.rows if r.status == "ok" and r.steps]
    head = f"perfkit load {report.run_id} — {report.spec.bench.model}, {report.spec.scenario}"
    body = [f"<h1>{html.escape(head)}</h1>", curve(rows, report), *[percentile_plot(r, k) for k, r in enumerate(rows)],
            table(report), "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes(report)) + "</ul>",
            f"<p>{html.escape(report.environment.cpu_model or '')}, {report.environment.logical_cores} cores</p>"]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(head)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def curve(rows: list[LoadRow], report: LoadReport) -> str:
    """p99 against achieved requests per second, a line per row, the SLO dashed, the knee ringed."""
    steps = [s for r in rows for s in r.steps]
    if not steps:
        return ""
    objective = report.spec.slo
    slo = objective.limit_ns if objective else 0
    x = scale(0, max(s.requests_per_s for s in steps) * 1.05, False, LEFT)
    top_ns = max(max(s.p99_ns for s in steps), slo) * 1.1
    low_ns = min(min(s.p99_ns for s in steps), slo or math.inf) / 1.5
    y = _y(top_ns, low_ns)
    parts = [_axes("requests per second (achieved)", "p99 latency (ms, log)", top_ns, low_ns)]
    peak = max(s.requests_per_s for s in steps) * 1.05
    parts += [f'<text x="{x(v):.1f}" y="{TOP + HEIGHT + 14}" text-anchor="middle">{v:,.0f}</text>'
              for v in (0, peak / 4, peak / 2, peak * 3 / 4)]
    if objective:
        parts.append(f'<line class="slo" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y(slo):.1f}" y2="{y(slo):.1f}"/>'
                     f'<text x="{LEFT + PLOT_W - 90}" y="{y(slo) - 4:.1f}">SLO {html.escape(objective.text)}'
                     "</text>")
    for k, row in enumerate(rows):
        color = COLORS[k % len(COLORS)]
        ordered = sorted(row.steps, key=lambda s: s.requests_per_s)
        points = " ".join(f"{x(s.requests_per_s):.1f},{y(s.p99_ns):.1f}" for s in ordered)
        parts.append(f'<polyline points="{points}" style="stroke:{color}"/>')
        parts += [f'<circle cx="{x(s.requests_per_s):.1f}" cy="{y(s.p99_ns):.1f}" r="3" fill="{color}"/>'
                  for s in ordered]
        if row.knee is not None:
            s = row.steps[row.knee]
            parts.append(f'<circle cx="{x(s.requests_per_s):.1f}" cy="{y(s.p99_ns):.1f}" r="8" fill="none" '
                         f'stroke="{color}"/>')
        parts.append(f'<text x="{LEFT + 10}" y="{TOP + 14 + 14 * k}" style="fill:{color}">'
                     f'{html.escape(row.label)} on {html.escape(row.target)}</text>')
    return _svg(parts, "the latency-throughput curve")


def percentile_plot(row: LoadRow, k: int) -> str:
    """Latency at p50, p90, p99 and p99.9, one line per step of the row."""
    top_ns = max(s.p999_ns for s in row.steps) * 1.1 or 1
    low_ns = max(min(s.p50_ns for s in row.steps) / 1.5, 1)
    x = scale(0, len(PERCENTILES) - 1, False, LEFT)
    y = _y(top_ns, low_ns)
    parts = [_axes(f"percentile — {row.label} on {row.target}", "latency (ms, log)", top_ns, low_ns)]
    for i, (name, _) in enumerate(PERCENTILES):
        parts.append(f'<text x="{x(i) - 10:.1f}" y="{TOP + HEIGHT + 14}">{name}</text>')
    for j, s in enumerate(row.steps):
        values = (s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns)
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        color = COLORS[j % len(COLORS)]
        level = f"{s.rate:,.0f}/s" if s.rate is not None else f"{s.concurrency} callers"
        parts.append(f'<polyline points="{points}" style="stroke:{color}"/>'
                     f'<text x="{LEFT + PLOT_W + 6}" y="{y(values[-1]) + 4:.1f}" style="fill:{color}">{level}</text>')
    return _svg(parts, f"latency percentiles of row {k + 1}")


def table(report: LoadReport) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(report))
    return f"<table><tr>{head}</tr>{body}</table>"


def _y(top_ns: float, low_ns: float):
    """Latency -> y pixel on a log scale: a queue's growth spans microseconds to seconds."""
    a, b = math.log10(max(low_ns, 1)), math.log10(max(top_ns, low_ns * 10, 10))
    return lambda ns: TOP + HEIGHT - (math.log10(max(ns, low_ns, 1)) - a) / ((b - a) or 1) * HEIGHT


def _axes(x_label: str, y_label: str, top_ns: float, low_ns: float) -> str:
    y = _y(top_ns, low_ns)
    decades = range(math.floor(math.log10(max(low_ns, 1))), math.ceil(math.log10(max(top_ns, 10))) + 1)
    ticks = "".join(f'<text x="{LEFT - 8}" y="{y(10.0 ** d) + 4:.1f}" text-anchor="end">{10.0 ** d / 1e6:g}</text>'
                    for d in decades if TOP <= y(10.0 ** d) <= TOP + HEIGHT)
    return (f'<line class="axis" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{TOP + HEIGHT}" y2="{TOP + HEIGHT}"/>'
            f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + HEIGHT}"/>{ticks}'
            f'<text x="{LEFT + PLOT_W / 2 - 80}" y="{TOP + HEIGHT + 32}">{html.escape(x_label)}</text>'
            f'<text x="6" y="{TOP - 6}">{html.escape(y_label)}</text>')


def _svg(parts: list[str], title: str) -> str:
    return (f'<svg width="{LEFT + PLOT_W + 110}" height="{TOP + HEIGHT + 44}" role="img">'
            f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>")
