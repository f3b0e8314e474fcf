"""A tune run's search in the HTML report: every candidate's score per stage (times the default's speed, in
the same rounds), the dropped ones marked with why, and the accuracy–speed Pareto front of the candidates."""

from __future__ import annotations

import html
import math

from perfkit.analysis.verdict import pareto
from perfkit.core.search import Search, Trial
from perfkit.output.svg import ERROR_FLOOR, PLOT_W, error_scale, front_line, scale
from perfkit.output.units import fmt_ns

HEIGHT, LEFT = 320, 150


def search_section(search: Search) -> str:
    e = html.escape
    tried = len({t.candidate for t in search.trials})
    return f"""<h2>The search</h2>
<p><strong>{e(search.answer)}</strong></p>
<p>{tried} configurations besides the default in {search.wall_s:.0f} s (time budget {search.time_budget_s:.0f} s),
objective <code>{e(search.objective)}</code>. A score is how many times the default's speed a candidate ran,
paired round by round with the default in the same stage; each stage keeps the better half and times it twice as
long.</p>
{trials_table(search)}
<h3>Accuracy against speed</h3>
<p>Right is faster (its last score), lower is more accurate (1 − worst cosine, log scale); the dashed line joins the
Pareto front: no other candidate is both faster and more accurate.</p>
{front_plot(search)}
<ul class="notes">{"".join(f"<li>{e(n)}</li>" for n in search.notes)}</ul>"""


def trials_table(search: Search) -> str:
    """One row per candidate and phase, one column per stage: score and median, or why it left."""
    e = html.escape
    stages = max((t.stage for t in search.trials), default=-1) + 1
    rows: dict[tuple[str, int], dict[int, Trial]] = {}
    for t in search.trials:
        rows.setdefault((t.phase, t.candidate), {})[t.stage] = t
    head = "".join(f"<th>stage {k + 1}</th>" for k in range(stages))
    body = []
    for (phase, k), by_stage in rows.items():
        c = search.candidates[k]
        mark = " ★" if k == search.winner else ""
        cells = "".join(_cell(by_stage.get(s)) for s in range(stages))
        body.append(f"<tr><td>{e(phase)}</td><td>{e(c.label)}{mark}</td>{cells}</tr>")
    return (f"<table><thead><tr><th>phase</th><th>candidate</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _cell(t: Trial | None) -> str:
    if t is None:
        return "<td></td>"
    figures = f"{t.score:.2f}× · {fmt_ns(t.median_ns)}" if t.score and t.median_ns else "-"
    if t.status == "dropped":
        return f'<td class="dropped" title="{html.escape(t.reason)}">dropped: {html.escape(t.reason[:60])}</td>'
    style = ' style="color:#999"' if t.status == "out" else ""
    return f'<td class="num"{style}>{figures}{" (out)" if t.status == "out" else ""}</td>'


def front_plot(search: Search) -> str:
    """The candidates' last scores against their error, the Pareto front joined."""
    last: dict[int, float] = {}
    for t in search.trials:
        if t.score and t.status != "dropped":
            last[t.candidate] = t.score
    points = [(score, error, k) for k, score in last.items()
              if (error := search.candidates[k].error) is not None and math.isfinite(error)]
    if not points:
        return '<p class="empty">no candidate both scored and compared</p>'
    errors = [max(err, ERROR_FLOOR) for _, err, _ in points]
    lo, hi = min(p[0] for p in points) * 0.9, max(p[0] for p in points) * 1.1
    e_lo, e_hi = min(errors) / 3, max(errors) * 3
    top, bottom = 20, HEIGHT - 40
    x, y = scale(lo, hi, False, LEFT), error_scale(e_lo, e_hi, top, bottom)

    front = set(pareto([(1 / s, err, k) for s, err, k in points]))  # faster is a smaller 1 / score
    parts = [f'<svg class="plot" data-plot="search" width="{LEFT + PLOT_W + 60}" height="{HEIGHT}" role="img" '
             'aria-label="candidates: accuracy against speed">',
             f'<text x="{LEFT - 8}" y="{top + 4}" class="label">1 − cos {e_hi:.0e}</text>',
             f'<text x="{LEFT - 8}" y="{bottom}" class="label">{e_lo:.0e}</text>',
             f'<text x="{LEFT}" y="{HEIGHT - 5}" class="tick">{lo:.2f}× the default</text>',
             f'<text x="{LEFT + PLOT_W}" y="{HEIGHT - 5}" class="tick">{hi:.2f}×</text>']
    if lo < 1 < hi:
        parts.append(f'<line x1="{x(1):.1f}" x2="{x(1):.1f}" y1="{top}" y2="{bottom}" class="one"/>')
    parts.append(front_line(points, front, x, y))
    for s, err, k in points:
        c = search.candidates[k]
        on = k in front
        tip = f"{c.label}: {s:.2f}× the default, 1 − cos {err:.2g}" + (" (Pareto front)" if on else "")
        parts.append(f'<g class="mark"><title>{html.escape(tip)}</title><circle cx="{x(s):.1f}" '
                     f'cy="{y(err):.1f}" r="{6 if on else 4}" fill="{"#3366aa" if on else "#777777"}"/></g>')
    parts.append("</svg>")
    return "".join(parts)
