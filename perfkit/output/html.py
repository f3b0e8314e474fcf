"""`perfkit report RUN -o report.html`: one self-contained file that opens offline — no script, font or style
from anywhere else. The plots are SVG drawn here from the raw samples:
- latency per row: a box (quartiles, median) with whiskers at 1.5 IQR, and p99 marked;
- speed-up against each row's baseline, with its interval as an error bar;
- accuracy against latency, with the Pareto front (no other row both faster and more accurate) joined;
then the environment and the table with its notes. A few lines of script check on load that every plot drew
and say so in `data-plots` on <body> (what the browser test reads).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from perfkit.analysis.verdict import Verdict, judge, pareto
from perfkit.core.report import Report
from perfkit.output.cells import all_cells, columns, describe, notes
from perfkit.output.search_html import search_section
from perfkit.output.svg import PLOT_W, error_scale, front_line, scale
from perfkit.output.units import fmt_ns

ROW_H = 26  # px per row in the box and bar plots
CHAR_W = 6.4  # px per character of an 11 px label: the label column is as wide as its longest label
PALETTE = ("#3366aa", "#cc6633", "#339966", "#aa3377", "#777777", "#bb9922", "#22aaaa", "#884422")


@dataclass(frozen=True)
class Box:
    label: str
    q1: float
    median: float
    q3: float
    low: float  # lowest sample within 1.5 IQR of q1
    high: float
    p99: float | None


def boxes(report: Report) -> list[Box]:
    import numpy as np

    out = []
    for i, r in enumerate(report.results, 1):
        if not r.measurement or not r.measurement.samples_ns:
            continue
        s = np.asarray(r.measurement.samples_ns, dtype=float)
        q1, med, q3 = np.percentile(s, [25, 50, 75])
        iqr = q3 - q1
        inside = s[(s >= q1 - 1.5 * iqr) & (s <= q3 + 1.5 * iqr)]
        p99 = r.summary.p99 if r.summary else None
        out.append(Box(f"{i}. {r.model.label} · {r.target.label} · b{r.batch}", q1, med, q3,
                       float(inside.min()), float(inside.max()), p99))
    return out


def _left(labels: list[str]) -> int:
    """Width of the label column: the longest label fits, up to half a wide screen."""
    return int(min(max((len(t) for t in labels), default=10) * CHAR_W + 16, 560))


def _axis(lo: float, hi: float, x, height: int, fmt, log: bool) -> str:
    ticks = []
    if log:
        e = math.floor(math.log10(lo))
        while 10 ** e <= hi * 1.0001:
            for m in (1, 2, 5):
                v = m * 10 ** e
                if lo <= v <= hi:
                    ticks.append(v)
            e += 1
    else:  # round steps (1, 2 or 5 × 10^k), so a label is the value at its line
        raw = (hi - lo) / 5 or 1
        step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda t: abs(t - raw))
        first = math.ceil(lo / step) * step
        ticks = [first + k * step for k in range(int((hi - first) / step) + 1)]
    parts = []
    for v in ticks:
        px = x(v)
        parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="10" y2="{height - 20}" class="grid"/>'
                     f'<text x="{px:.1f}" y="{height - 5}" class="tick">{html.escape(fmt(v))}</text>')
    return "".join(parts)


def latency_plot(report: Report) -> str:
    bs = boxes(report)
    if not bs:
        return '<p class="empty">no timed rows</p>'
    lo = min(b.low for b in bs) * 0.9
    hi = max(max(b.high, b.p99 or 0) for b in bs) * 1.1
    log = hi / lo > 20
    left = _left([b.label for b in bs])
    x = scale(lo, hi, log, left)
    height = 30 + ROW_H * len(bs) + 20
    parts = [f'<svg class="plot" data-plot="latency" width="{left + PLOT_W + 40}" height="{height}" role="img" '
             f'aria-label="latency per row">', _axis(lo, hi, x, height, fmt_ns, log)]
    for k, b in enumerate(bs):
        y = 20 + ROW_H * k
        mid = y + ROW_H / 2 - 4
        color = PALETTE[k % len(PALETTE)]
        tip = (f"{b.label}: median {fmt_ns(b.median)}, quartiles {fmt_ns(b.q1)}–{fmt_ns(b.q3)}, whiskers "
               f"{fmt_ns(b.low)}–{fmt_ns(b.high)}" + (f", p99 {fmt_ns(b.p99)}" if b.p99 else ""))
        parts.append(
            f'<g class="mark"><title>{html.escape(tip)}</title>'
            f'<text x="{left - 8}" y="{mid + 4}" class="label">{html.escape(b.label)}</text>'
            f'<line x1="{x(b.low):.1f}" x2="{x(b.high):.1f}" y1="{mid}" y2="{mid}" stroke="{color}"/>'
            f'<rect x="{x(b.q1):.1f}" y="{mid - 7}" width="{max(x(b.q3) - x(b.q1), 1):.1f}" height="14" '
            f'fill="{color}" fill-opacity="0.35" stroke="{color}"/>'
            f'<line x1="{x(b.median):.1f}" x2="{x(b.median):.1f}" y1="{mid - 7}" y2="{mid + 7}" stroke="{color}" '
            f'stroke-width="2.5"/>'
            + (f'<circle cx="{x(b.p99):.1f}" cy="{mid}" r="3" fill="none" stroke="{color}"/>' if b.p99 else "")
            + "</g>")
    parts.append("</svg>")
    return "".join(parts)


def speedup_plot(report: Report, verdict: Verdict) -> str:
    bars = [(i, r, s, b) for i, r in enumerate(report.results)
            if (s := verdict.speedups[i]) and (b := verdict.baseline[i]) is not None]
    if not bars:
        return '<p class="empty">no speed-ups: a run without variants has only baselines</p>'
    hi = max(max(s.high for _, _, s, _ in bars), 1.0) * 1.1
    labels = [f"{i + 1}. {r.model.label}" for i, r, _, _ in bars]
    left = _left(labels)
    x = scale(0.0, hi, False, left)
    height = 30 + ROW_H * len(bars) + 20
    parts = [f'<svg class="plot" data-plot="speedup" width="{left + PLOT_W + 60}" height="{height}" role="img" '
             f'aria-label="speed-up against the baseline">', _axis(0.0, hi, x, height, lambda v: f"{v:.1f}×", False),
             f'<line x1="{x(1):.1f}" x2="{x(1):.1f}" y1="10" y2="{height - 20}" class="one"/>']
    for k, (i, r, s, b) in enumerate(bars):
        y = 20 + ROW_H * k
        color = PALETTE[0] if s.value >= 1 else PALETTE[1]
        tip = (f"row {i + 1} {r.model.label}: {s.value:.2f}× ({s.low:.2f}–{s.high:.2f}) against row "
               f"{b + 1}" + ("" if s.significant else ", inside the noise"))
        parts.append(
            f'<g class="mark"><title>{html.escape(tip)}</title>'
            f'<text x="{left - 8}" y="{y + 14}" class="label">{html.escape(labels[k])}</text>'
            f'<rect x="{x(0):.1f}" y="{y + 4}" width="{x(s.value) - x(0):.1f}" height="14" fill="{color}" '
            f'fill-opacity="{0.8 if s.significant else 0.35}"/>'
            f'<line x1="{x(s.low):.1f}" x2="{x(s.high):.1f}" y1="{y + 11}" y2="{y + 11}" stroke="#222"/>'
            f'<line x1="{x(s.low):.1f}" x2="{x(s.low):.1f}" y1="{y + 6}" y2="{y + 16}" stroke="#222"/>'
            f'<line x1="{x(s.high):.1f}" x2="{x(s.high):.1f}" y1="{y + 6}" y2="{y + 16}" stroke="#222"/>'
            f'<text x="{x(s.high) + 6:.1f}" y="{y + 15}" class="value">{s.value:.2f}×</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def accuracy_plot(report: Report) -> str:
    points = []
    for i, r in enumerate(report.results):
        cos = [a.cosine for a in r.accuracy if a.comparable and a.cosine is not None and math.isfinite(a.cosine)]
        if r.summary and cos:
            points.append((r.summary.median, max(1 - min(cos), 1e-9), i))
    if not points:
        return '<p class="empty">no accuracy: a run without variants or a native model compares nothing</p>'
    front = set(pareto(points))
    lat_lo, lat_hi = min(p[0] for p in points) * 0.8, max(p[0] for p in points) * 1.25
    err_lo, err_hi = min(p[1] for p in points) / 3, max(p[1] for p in points) * 3
    height = 320
    left = _left(["1 − cos 1e-10 (more accurate)"])
    x = scale(lat_lo, lat_hi, lat_hi / lat_lo > 20, left)
    top, bottom = 20, height - 40
    y = error_scale(err_lo, err_hi, top, bottom)

    parts = [f'<svg class="plot" data-plot="accuracy" width="{left + PLOT_W + 40}" height="{height}" role="img" '
             f'aria-label="accuracy against latency">',
             _axis(lat_lo, lat_hi, x, height - 15, fmt_ns, lat_hi / lat_lo > 20),
             f'<text x="{left - 8}" y="{top + 4}" class="label">1 − cos {err_hi:.0e}</text>',
             f'<text x="{left - 8}" y="{bottom}" class="label">{err_lo:.0e} (more accurate)</text>']
    parts.append(front_line(points, front, x, y))
    for lat, err, i in points:
        r = report.results[i]
        on = i in front
        tip = f"row {i + 1} {r.model.label}: {fmt_ns(lat)}, 1 − cos {err:.2g}" + (" (Pareto front)" if on else "")
        parts.append(f'<g class="mark"><title>{html.escape(tip)}</title>'
                     f'<circle cx="{x(lat):.1f}" cy="{y(err):.1f}" r="{6 if on else 4}" '
                     f'fill="{PALETTE[0] if on else PALETTE[4]}"/>'
                     f'<text x="{x(lat) + 8:.1f}" y="{y(err) + 4:.1f}" class="value">{i + 1}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 12px; } td, th { padding: 3px 8px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg .label { font-size: 11px; text-anchor: end; } svg .tick { font-size: 10px; text-anchor: middle; fill: #555; }
svg .value { font-size: 10px; } svg .grid { stroke: #eee; } svg .one { stroke: #999; stroke-dasharray: 4 3; }
svg .front { fill: none; stroke: #3366aa; stroke-width: 1.5; stroke-dasharray: 5 3; }
.empty { color: #777; } ul.notes { font-size: 12px; } code { background: #f4f4f4; padding: 0 3px; }
"""

CHECK = """
window.addEventListener('load', function () {
  var plots = document.querySelectorAll('svg.plot');
  var drawn = 0;
  plots.forEach(function (svg) { if (svg.querySelectorAll('g.mark').length > 0 && svg.getBBox().width > 0) drawn++; });
  document.body.dataset.plots = drawn + '/' + plots.length;
});
"""


def render_html(report: Report) -> str:
    e = html.escape
    verdict = judge(report)
    head = "".join(f"<th>{e(c)}</th>" for c in columns(report))
    rows = "".join("<tr>" + "".join(f'<td class="{"num" if k >= 3 else ""}">{e(c)}</td>' for k, c in enumerate(row))
                   + "</tr>" for row in all_cells(report, verdict))
    env_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in describe(report.environment))
    note_items = "".join(f"<li>{e(n)}</li>" for n in notes(report, verdict))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>perfkit run {e(report.run_id)}</title>
<style>{STYLE}</style></head>
<body data-plots="not checked">
<h1>perfkit run {e(report.run_id)} — <code>{e(report.spec.model)}</code></h1>
<p>{e(report.created)} · {len(report.results)} rows · accuracy budget <code>{e(report.spec.accuracy_budget)}</code>
{'' if report.complete else ' · <strong>incomplete run</strong>'}</p>
{search_section(report.search) if report.search else ""}
<h2>Latency per row</h2>
<p>Box: quartiles and median of the timed calls (warm-up excluded); whiskers: 1.5 IQR; circle: p99.</p>
{latency_plot(report)}
<h2>Speed-up against the baseline</h2>
<p>Bar: baseline median / row median; line: its interval. Pale bars are inside the noise.</p>
{speedup_plot(report, verdict)}
<h2>Accuracy against latency</h2>
<p>Lower is better on both axes (1 − worst cosine over the outputs, log scale); the dashed line joins the
Pareto front: no other row is both faster and more accurate.</p>
{accuracy_plot(report)}
<h2>Table</h2>
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<ul class="notes">{note_items}</ul>
<h2>Environment</h2>
<table>{env_rows}</table>
<script>{CHECK}</script>
</body></html>
"""
