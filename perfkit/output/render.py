"""Renderers: Report -> text as a rich table, markdown, csv or json, and a pandas DataFrame. Each renderer
takes the verdict, judged once per rendering."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from perfkit.analysis.verdict import Verdict, judge, native_speedups
from perfkit.core.report import Report, Result, to_json
from perfkit.output.cells import STATUS_STYLE, all_cells, columns, notes, task_columns

if TYPE_CHECKING:
    import pandas as pd


def render_table(report: Report, verdict: Verdict, width: int = 160, color: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table

    names, rows, hidden = fit(list(columns(report)), all_cells(report, verdict), width)
    table = Table(title=f"perfkit run {report.run_id} — {report.spec.model}", title_justify="left")
    for name in names:
        table.add_column(name, justify="right" if name not in ("variant", "target", "ran on", "status") else "left",
                         no_wrap=name in ("variant", "median ± CI", "status", "speed-up", "cos", "Δ nodes"))
    for r, row in zip(report.results, rows, strict=True):
        row[-1] = f"[{STATUS_STYLE.get(r.status, '')}]{r.status}[/]"
        table.add_row(*row)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color, highlight=False)
    console.print(table)
    n_samples = [r.summary.n for r in report.results if r.summary]
    if n_samples:
        rounds = max((len(r.measurement.blocks) for r in report.results if r.measurement), default=0)
        over = f" over {rounds} interleaved rounds (speed-ups paired round by round)" if rounds else ""
        console.print(f"n = {min(n_samples)}–{max(n_samples)} timed calls per row after warm-up; "
                      f"CI: 95 % interval of the median{over}", style="dim", markup=False)
    if hidden:
        console.print(f"hidden to fit {width} columns: {', '.join(hidden)} — a wider terminal, --format csv or "
                      "--format json shows them", style="dim", markup=False)
    for line in notes(report, verdict):
        console.print(line, style="yellow" if line.startswith("warning") else None, markup=False)
    return buffer.getvalue()


# Dropped in this order when the table is wider than the terminal; the rest say what ran and how fast.
DROP_FIRST = ("p90", "top5", "RMSE", "peak RSS", "items/s", "load", "first call", "p99", "size", "max abs", "CV",
              "Δ nodes", "batch", "target", "agree", "ran on")


def fit(names: list[str], rows: list[list[str]], width: int) -> tuple[list[str], list[list[str]], list[str]]:
    """The columns that fit in `width` (each as wide as its widest cell, plus borders), and those left out."""
    def needed(keep: list[int]) -> int:
        return sum(max([len(names[k]), *(len(r[k]) for r in rows)]) + 3 for k in keep) + 1

    keep = list(range(len(names)))
    hidden = []
    for name in DROP_FIRST:
        if needed(keep) <= width:
            break
        if name in names and names.index(name) in keep:
            keep.remove(names.index(name))
            hidden.append(name)
    return [names[k] for k in keep], [[r[k] for k in keep] for r in rows], hidden


def render_markdown(report: Report, verdict: Verdict) -> str:
    names = columns(report)
    lines = [f"**perfkit run {report.run_id}** — `{report.spec.model}`", "",
             "| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in all_cells(report, verdict)]
    lines += [""] + [f"- {n}" for n in notes(report, verdict)]
    return "\n".join(lines) + "\n"


def flat_rows(report: Report, verdict: Verdict) -> list[dict[str, object]]:
    """One flat dict per result, times in ns: for csv and DataFrames."""
    vs_native = {i: ratio.value for _, i, ratio in native_speedups(report)}
    judged = bool(task_columns(report))
    rows = []
    for i, r in enumerate(report.results):
        s, m = r.summary, r.measurement
        ratio, budget = verdict.speedups[i], verdict.budget[i]
        comparable = [a for a in r.accuracy if a.comparable]
        rows.append({
            "run_id": report.run_id, "variant": r.model.label, "model": r.model.path, "digest": r.model.digest,
            "target": r.target.label, "providers": ";".join(r.providers), "fallback": r.fallback,
            "batch": r.batch, "status": r.status, "reason": r.reason,
            "n": s and s.n, "median_ns": s and s.median, "ci_low_ns": s and s.ci_low, "ci_high_ns": s and s.ci_high,
            "mean_ns": s and s.mean, "stdev_ns": s and s.stdev, "cv": s and s.cv, "p90_ns": s and s.p90,
            "p99_ns": s and s.p99, "min_ns": s and s.min, "max_ns": s and s.max, "items_per_s": r.throughput,
            "load_ns": m and m.load_ns, "first_call_ns": m and m.first_call_ns,
            "peak_rss_bytes": m and m.peak_rss_bytes, "device_peak_bytes": m and m.device_peak_bytes,
            "size_bytes": r.size_bytes,
            "speedup": ratio and ratio.value, "speedup_low": ratio and ratio.low, "speedup_high": ratio and ratio.high,
            "speedup_significant": ratio and ratio.significant, "vs_native": vs_native.get(i),
            "cosine": min((a.cosine for a in comparable if a.cosine is not None), default=None),
            "max_abs": max((a.max_abs for a in comparable if a.max_abs is not None), default=None),
            "agree": min((a.agree for a in comparable if a.agree is not None), default=None),
            "within_budget": budget and budget[0], "best": i in verdict.best,
            "warnings": " | ".join(r.warnings),
            **(task_fields(r) if judged else {}),
        })
    return rows


def task_fields(r: Result) -> dict[str, object]:
    """A row's task metrics on the --eval labels and their changes against the reference (shares of 1)."""
    t = r.task
    return {"task_output": t and t.output, "task_samples": t and t.samples,
            "top1": t and t.scores.top1, "top1_drop": t and t.top1_drop,
            "top5": t and t.scores.top5, "top5_drop": t and t.top5_drop,
            "mae": t and t.scores.mae, "mae_rise": t and t.mae_rise,
            "rmse": t and t.scores.rmse, "rmse_rise": t and t.rmse_rise}


def render_csv(report: Report, verdict: Verdict) -> str:
    rows = flat_rows(report, verdict)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def render(report: Report, fmt: str, width: int = 160, color: bool = False) -> str:
    """The report in one of FORMATS; the verdict is judged once and handed to whichever renderer needs it."""
    if fmt == "json":
        return to_json(report) + "\n"
    verdict = judge(report)
    if fmt == "table":
        return render_table(report, verdict, width, color)
    if fmt == "markdown":
        return render_markdown(report, verdict)
    if fmt == "csv":
        return render_csv(report, verdict)
    raise ValueError(f"unknown format {fmt!r}")


def to_frame(report: Report) -> pd.DataFrame:
    """One row per result as a pandas DataFrame (times in ns): the csv's columns."""
    import pandas as pd

    return pd.DataFrame(flat_rows(report, judge(report)))
