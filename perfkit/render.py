"""Renderers: Report -> text as a rich table, markdown, csv or json."""

from __future__ import annotations

import csv
import io

from perfkit.accuracy import summary_cells
from perfkit.report import Report, Result, to_json
from perfkit.stats import fmt_ratio, required_n
from perfkit.verdict import Verdict, is_native_row, judge, native_speedups, node_change, profile_change

FORMATS = ("table", "json", "csv", "markdown")
STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red", "invalid": "red"}
COLUMNS = ("variant", "target", "ran on", "batch", "median ± CI", "p90", "p99", "CV", "items/s", "load",
           "first call", "peak RSS", "status")
VARIANT_COLUMNS = ("speed-up", "size", "Δ nodes", "cos", "max abs", "agree")  # when the run has variants
BEST = "★ "  # marks the fastest row inside the accuracy budget


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            value = ns / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{ns:.0f} ns"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def _ran_on(r: Result) -> str:
    if not r.providers:
        return "-"
    name = r.providers[0].removesuffix("ExecutionProvider")
    return f"{name} (fallback)" if r.fallback else name


HIDDEN_WITH_VARIANTS = ("p99", "load", "first call")  # room for the variant columns; csv and json keep them


def compared(report: Report) -> bool:
    """Rows carry accuracy when there are variants, or a native model whose conversion is checked."""
    return bool(report.spec.variants) or any(is_native_row(r) for r in report.results)


def device_memory(report: Report) -> bool:
    """Some row has a GPU memory figure (NVML): the table gains a column beside peak RSS."""
    return any(r.measurement and r.measurement.device_peak_bytes is not None for r in report.results)


def columns(report: Report) -> tuple[str, ...]:
    names = COLUMNS
    if compared(report):
        names = tuple(c for c in COLUMNS[:-1] if c not in HIDDEN_WITH_VARIANTS) + VARIANT_COLUMNS + COLUMNS[-1:]
    if device_memory(report):
        k = names.index("peak RSS") + 1
        names = (*names[:k], "GPU mem", *names[k:])
    return names


def all_cells(report: Report) -> list[list[str]]:
    """Every row as text: with the variant columns and the best mark when rows carry accuracy, and the GPU
    memory column when some row has that figure."""
    rows = _cells_with_variants(report)
    if device_memory(report):
        k = columns(report).index("GPU mem")
        for r, row in zip(report.results, rows, strict=True):
            m = r.measurement
            row.insert(k, fmt_bytes(m.device_peak_bytes) if m and m.device_peak_bytes is not None else "-")
    return rows


def _cells_with_variants(report: Report) -> list[list[str]]:
    rows = [cells(r) for r in report.results]
    if not compared(report):
        return rows
    verdict = judge(report)
    keep = [k for k, c in enumerate(COLUMNS) if c not in HIDDEN_WITH_VARIANTS]
    rows = [[row[k] for k in keep] for row in rows]
    for i, (r, row) in enumerate(zip(report.results, rows, strict=True)):
        b = verdict.baseline[i]
        size = fmt_bytes(r.size_bytes)
        change = "" if b is None or b == i else node_change(report.results[b].ops, r.ops)
        budget = verdict.budget[i]
        accuracy = list(summary_cells(r.accuracy))
        if budget is not None and not budget[0]:
            accuracy[0] += " ✗"
        speed = "-" if r.summary is None else "baseline" if b == i else "reference" if is_native_row(r) else \
            fmt_ratio(verdict.speedups[i])
        row[-1:-1] = [speed, size, change or "-", *accuracy]
        if i in verdict.best:
            row[0] = BEST + row[0]
    return rows


def cells(r: Result) -> list[str]:
    """The table row for one result, as text."""
    s, m = r.summary, r.measurement
    if s is None or m is None:
        return [r.model.label, r.target.label, _ran_on(r), str(r.batch), *["-"] * 8, r.status]
    ci = max(s.median - s.ci_low, s.ci_high - s.median) / s.median if s.ci_low is not None and s.median else None
    median = fmt_ns(s.median) + (" (no CI, n<6)" if ci is None else " ±<0.1%" if ci < 0.001 else f" ±{ci:.1%}")
    return [
        r.model.label, r.target.label, _ran_on(r), str(r.batch), median,
        fmt_ns(s.p90) if s.p90 is not None else f"n/a (need ≥ {required_n(90)})",
        fmt_ns(s.p99) if s.p99 is not None else f"n/a (need ≥ {required_n(99)})",
        f"{s.cv:.1%}", fmt_rate(r.throughput), fmt_ns(m.load_ns), fmt_ns(m.first_call_ns),
        fmt_bytes(m.peak_rss_bytes), r.status,
    ]


def notes(report: Report) -> list[str]:
    """Warnings and reasons under the table, each naming the row it belongs to; with variants, the pick
    and a diagnosis of every row slower than its baseline."""
    out = [f"warning: {w}" for w in report.warnings]
    for i, r in enumerate(report.results, 1):
        if r.reason:
            out.append(f"row {i} {r.status}: {r.reason}")
        out.extend(f"row {i}: {w}" for w in r.warnings)
    for n, i, ratio in native_speedups(report):
        r = report.results[i]
        out.append(f"native vs ONNX, batch {r.batch}: row {i + 1} ({r.model.label} on {r.target.label}) runs "
                   f"{fmt_ratio(ratio)} the speed of row {n + 1} ({report.results[n].model.label})")
    if compared(report):
        out += variant_notes(report, judge(report))
    if not report.complete:
        out.append("warning: this run did not finish; the rows above are all it measured")
    return out


def variant_notes(report: Report, verdict: Verdict) -> list[str]:
    rows = report.results
    out = []
    seen_notes: set[tuple[str, ...]] = set()
    for i, r in enumerate(rows, 1):
        if r.notes and r.notes not in seen_notes:
            seen_notes.add(r.notes)
            out.extend(f"row {i} built: {n}" for n in r.notes)
    for i, r in enumerate(rows):
        ok = verdict.budget[i]
        if ok is not None and not ok[0]:
            out.append(f"row {i + 1} outside the accuracy budget: {ok[1]}")
        for text in verdict.diagnoses[i]:
            b = verdict.baseline[i]
            out.append(f"row {i + 1} is slower than row {b + 1} ({fmt_ratio(verdict.speedups[i])}): {text}")
        if r.profile:
            total = sum(o.ns_per_call for o in r.profile) or 1
            top = ", ".join(f"{o.op}{'@' + o.provider if o.provider not in ('', 'CPU') else ''} "
                            f"{fmt_ns(o.ns_per_call)} ({o.ns_per_call / total:.0%})" for o in r.profile[:5])
            b = verdict.baseline[i]
            change = profile_change(rows[b], r) if b is not None and b != i else ""
            out.append(f"row {i + 1} profile per call: {top}" + (f"; against row {b + 1}: {change}" if change else ""))
    for b in verdict.best:
        r = rows[b]
        why = "no variant is faster beyond the noise inside the budget" if r.model.is_base else \
            f"{fmt_ratio(verdict.speedups[b])} vs row {verdict.baseline[b] + 1}"
        contest = next((c for c in report.contests if b in c.rows), None)
        if contest:
            times = ", ".join(f"row {i + 1} {fmt_ns(m)}" for i, m in zip(contest.rows, contest.medians_ns,
                                                                          strict=True))
            why += f"; re-timed in {contest.rounds} interleaved rounds against the rows inside its noise: {times}"
        out.append(f"{BEST}fastest inside {report.spec.accuracy_budget} on {r.target.label}, batch {r.batch}: "
                   f"row {b + 1} {r.model.label} ({why})")
    return out


def render_table(report: Report, width: int = 160, color: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table

    names, rows, hidden = fit(list(columns(report)), all_cells(report), width)
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
        console.print(f"n = {min(n_samples)}–{max(n_samples)} timed calls per row after warm-up; "
                      "CI: 95 % interval of the median", style="dim", markup=False)
    if hidden:
        console.print(f"hidden to fit {width} columns: {', '.join(hidden)} — a wider terminal, --format csv or "
                      "--format json shows them", style="dim", markup=False)
    for line in notes(report):
        console.print(line, style="yellow" if line.startswith("warning") else None, markup=False)
    return buffer.getvalue()


# Dropped in this order when the table is wider than the terminal; the rest say what ran and how fast.
DROP_FIRST = ("p90", "peak RSS", "items/s", "load", "first call", "p99", "size", "max abs", "CV", "Δ nodes", "batch",
              "target", "agree", "ran on")


def fit(names: list[str], rows: list[list[str]], width: int) -> tuple[list[str], list[list[str]], list[str]]:
    """The columns that fit in `width` (each as wide as its widest cell, plus borders), and those left out."""
    def needed(keep: list[int]) -> int:
        return sum(max(len(names[k]), *(len(r[k]) for r in rows)) + 3 for k in keep) + 1

    keep = list(range(len(names)))
    hidden = []
    for name in DROP_FIRST:
        if needed(keep) <= width:
            break
        if name in names and names.index(name) in keep:
            keep.remove(names.index(name))
            hidden.append(name)
    return [names[k] for k in keep], [[r[k] for k in keep] for r in rows], hidden


def render_markdown(report: Report) -> str:
    names = columns(report)
    lines = [f"**perfkit run {report.run_id}** — `{report.spec.model}`", "",
             "| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in all_cells(report)]
    lines += [""] + [f"- {n}" for n in notes(report)]
    return "\n".join(lines) + "\n"


def flat_rows(report: Report) -> list[dict[str, object]]:
    """One flat dict per result, times in ns: for csv and DataFrames."""
    verdict = judge(report)
    vs_native = {i: ratio.value for _, i, ratio in native_speedups(report)}
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
        })
    return rows


def render_csv(report: Report) -> str:
    rows = flat_rows(report)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def render(report: Report, fmt: str, width: int = 160, color: bool = False) -> str:
    if fmt == "table":
        return render_table(report, width, color)
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "json":
        return to_json(report) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
