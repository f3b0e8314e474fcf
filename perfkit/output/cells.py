"""A report as the cells and notes people read: the columns a run needs, each row's cells, the variant
columns with the pick marked, the task columns of a run with --eval labels, and the notes under the table.
Shared by the table, markdown and HTML."""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import replace

from perfkit.analysis.noise import assess, is_row_noise, noise_line, rows_named
from perfkit.analysis.stats import required_n
from perfkit.analysis.verdict import Verdict, is_native_row, native_speedups, node_change, profile_change
from perfkit.core.records import Environment, OutputAccuracy, TaskAccuracy
from perfkit.core.report import Report, Result
from perfkit.core.search import Search
from perfkit.output.units import fmt_bytes, fmt_cos, fmt_ns, fmt_rate, fmt_ratio

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red", "invalid": "red"}
COLUMNS = ("variant", "target", "ran on", "batch", "median ± CI", "p90", "p99", "CV", "items/s", "load",
           "first call", "peak RSS", "status")
VARIANT_COLUMNS = ("speed-up", "size", "Δ nodes", "cos", "max abs", "agree")  # when the run has variants
BEST = "★ "  # marks the fastest row inside the accuracy budget
# --eval: column -> the TaskScores field it shows, beside the row's change against the reference
TASK_COLUMNS = {"top1": "top1", "top5": "top5", "MAE": "mae", "RMSE": "rmse"}


def _ran_on(r: Result) -> str:
    if not r.providers:
        return "-"
    name = r.providers[0].removesuffix("ExecutionProvider")
    return f"{name} (fallback)" if r.fallback else name


HIDDEN_WITH_VARIANTS = ("p99", "load", "first call")  # room for the variant columns; csv and json keep them


def compared(report: Report) -> bool:
    """Rows carry accuracy when there are variants, or a native model whose conversion is checked."""
    return bool(report.spec.variants or report.spec.config or report.search) or \
        any(is_native_row(r) for r in report.results)


def device_memory(report: Report) -> bool:
    """Some row has a GPU memory figure (NVML): the table gains a column beside peak RSS."""
    return any(r.measurement and r.measurement.device_peak_bytes is not None for r in report.results)


def columns(report: Report) -> tuple[str, ...]:
    names: tuple[str, ...] = COLUMNS
    if compared(report):
        names = tuple(c for c in COLUMNS[:-1] if c not in HIDDEN_WITH_VARIANTS) + VARIANT_COLUMNS + COLUMNS[-1:]
    names = (*names[:-1], *task_columns(report), names[-1])
    if device_memory(report):
        k = names.index("peak RSS") + 1
        names = (*names[:k], "GPU mem", *names[k:])
    return names


def all_cells(report: Report, verdict: Verdict) -> list[list[str]]:
    """Every row as text: with the variant columns and the best mark when rows carry accuracy, the task
    columns when rows were judged on --eval labels, and the GPU memory column when some row has that figure."""
    rows = _cells_with_variants(report, verdict)
    shown = task_columns(report)
    for r, row in zip(report.results, rows, strict=True):
        row[-1:-1] = task_cells(r.task, shown)
    if device_memory(report):
        k = columns(report).index("GPU mem")
        for r, row in zip(report.results, rows, strict=True):
            m = r.measurement
            row.insert(k, fmt_bytes(m.device_peak_bytes) if m and m.device_peak_bytes is not None else "-")
    return rows


def _cells_with_variants(report: Report, verdict: Verdict) -> list[list[str]]:
    rows = [cells(r) for r in report.results]
    if not compared(report):
        return rows
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


def task_columns(report: Report) -> tuple[str, ...]:
    """The task metrics some row has on the --eval labels: top1 (top5 with 5 classes or more) for classes,
    MAE and RMSE for float targets; none without --eval."""
    tasks = [r.task for r in report.results if r.task]
    return tuple(c for c, f in TASK_COLUMNS.items() if any(getattr(t.scores, f) is not None for t in tasks))


def task_cells(task: TaskAccuracy | None, shown: tuple[str, ...]) -> list[str]:
    """A row's task metrics with its change against the reference: `91.5% (-0.5)` in percentage points for
    top1/top5, `0.123 (+0.8%)` relative for MAE/RMSE."""
    out = []
    for column in shown:
        field = TASK_COLUMNS[column]
        value = getattr(task.scores, field) if task else None
        if task is None or value is None:
            out.append("-")
        elif column in ("top1", "top5"):
            points = -100 * getattr(task, f"{field}_drop")
            out.append(f"{_task_value(column, value)} ({'±0.0' if abs(points) < 0.05 else f'{points:+.1f}'})")
        else:
            rise = getattr(task, f"{field}_rise")
            out.append(f"{_task_value(column, value)} ({'±0%' if abs(rise) < 0.0005 else f'{rise:+.1%}'})")
    return out


def _task_value(column: str, value: float) -> str:
    return f"{value:.1%}" if column in ("top1", "top5") else f"{value:.3g}"


def task_notes(report: Report) -> list[str]:
    """Per judged output and sample count, what the task columns show and the reference's own figures."""
    out = []
    for task in dict.fromkeys(replace(r.task, scores=r.task.reference) for r in report.results if r.task):
        ref = ", ".join(f"{c} {_task_value(c, v)}" for c in task_columns(report)
                        if (v := getattr(task.reference, TASK_COLUMNS[c])) is not None)
        change = "in percentage points" if task.reference.top1 is not None else "relative to the reference's"
        out.append(f"task accuracy: output '{task.output}' on {task.samples} labelled samples; the reference "
                   f"scores {ref}; in brackets each row's change against it, {change}")
    return out


def cells(r: Result) -> list[str]:
    """The table row for one result, as text."""
    s, m = r.summary, r.measurement
    target = r.target.label + (f" ({r.target.session_text})" if r.target.session_text else "")
    if s is None or m is None:
        return [r.model.label, target, _ran_on(r), str(r.batch), *["-"] * 8, r.status]
    ci = s.ci_rel
    median = fmt_ns(s.median) + (" (no CI, n<6)" if ci is None else " ±<0.1%" if ci < 0.001 else f" ±{ci:.1%}")
    return [
        r.model.label, target, _ran_on(r), str(r.batch), median,
        fmt_ns(s.p90) if s.p90 is not None else f"n/a (need ≥ {required_n(90)})",
        fmt_ns(s.p99) if s.p99 is not None else f"n/a (need ≥ {required_n(99)})",
        f"{s.cv:.1%}", fmt_rate(r.throughput), fmt_ns(m.load_ns), fmt_ns(m.first_call_ns),
        fmt_bytes(m.peak_rss_bytes), r.status,
    ]


# Measured on 2 busy cores: a TorchScript DistilBERT's "ONNX vs native" read 1.25× in one run and 6.1× in
# another; a traced BERT 3.8× with 2 threads and 1.24× with --threads 1: torch's team waits for its slowest thread.
THREAD_TEAMS = ("torch", "keras", "tfgraph")  # frameworks whose intra-op threads wait for each other at every op
NATIVE_UNDER_LOAD = ("a framework's thread team loses more to other programs than onnxruntime's pool does, so "
                     "'native vs ONNX' can read several times its quiet value — compare with --threads 1, or on a "
                     "quiet machine")


def notes(report: Report, verdict: Verdict) -> list[str]:
    """Warnings and reasons under the table, each naming the row it belongs to; with variants, the pick
    and a diagnosis of every row slower than its baseline."""
    out = [f"warning: {w}" for w in report.warnings]
    if report.search:
        out += search_notes(report.search, len(report.results))
    out += row_warnings(report)
    noise = assess(report, verdict.baseline)
    if line := noise_line(noise):
        out.append(line)
    natives = native_speedups(report)
    for n, i, ratio in natives:
        r = report.results[i]
        out.append(f"native vs ONNX, batch {r.batch}: row {i + 1} ({r.model.label} on {r.target.label}) runs "
                   f"{fmt_ratio(ratio)} the speed of row {n + 1} ({report.results[n].model.label})")
    noisy = set(noise.drifted) | {i for i, _ in (*noise.unstable, *noise.stalled)}
    teams = [report.results[n].target for n, _, _ in natives if n in noisy]
    if any(t.backend in THREAD_TEAMS and t.threads != 1 for t in teams):
        out.append(f"native rows on a busy machine: {NATIVE_UNDER_LOAD}")
    if report.accuracy_on and (compared(report) or report.spec.eval):
        out.append(f"accuracy judged on {report.accuracy_on}")
    out += task_notes(report)
    if compared(report):
        out += variant_notes(report, verdict)
    if not report.complete:
        out.append("warning: this run did not finish; the rows above are all it measured")
    return out


def search_notes(search: Search, rows: int) -> list[str]:
    """A tune run's answer first, then what the search tried (each configuration counted once, by how it
    ended) and what it left out."""
    final = {t.candidate: t.status for t in search.trials}  # in order: a configuration's last trial wins
    ended = Counter(final.values())
    out = [search.answer,
           f"searched {len(final)} configurations besides the default in {search.wall_s:.0f} s (time budget "
           f"{search.time_budget_s:.0f} s, objective {search.objective}): {ended['dropped']} dropped, {ended['out']} "
           f"halved away; the {rows} rows above were timed together at the end, the default first"]
    out += [f"search: {n}" for n in search.notes]
    if search.config:
        out.append(f"tuned configuration: {search.config}")
    return out


def row_warnings(report: Report) -> list[str]:
    """Why rows failed or were skipped, then their warnings; what several rows share printed once, naming them."""
    reasons: dict[tuple[str, str], list[int]] = {}
    rows_of: dict[str, list[int]] = {}
    for i, r in enumerate(report.results):
        if r.reason:
            reasons.setdefault((r.status, r.reason), []).append(i)
        for w in r.warnings:
            if not is_row_noise(w):
                rows_of.setdefault(w, []).append(i)
    return [f"{rows_named(rows)} {status}: {reason}" for (status, reason), rows in reasons.items()] + \
        [f"{rows_named(rows)}: {w}" for w, rows in rows_of.items()]


def variant_notes(report: Report, verdict: Verdict) -> list[str]:
    rows = report.results
    out: list[str] = []
    seen_notes: set[tuple[str, ...]] = set()
    for i, r in enumerate(rows, 1):
        if r.notes and r.notes not in seen_notes:
            seen_notes.add(r.notes)
            out.extend(f"row {i} built: {n}" for n in r.notes)
    for i, r in enumerate(rows):
        ok = verdict.budget[i]
        if ok is not None and not ok[0]:
            out.append(f"row {i + 1} outside the accuracy budget: {ok[1]}")
        b = verdict.baseline[i]
        if b is not None:
            out.extend(f"row {i + 1} is slower than row {b + 1} ({fmt_ratio(verdict.speedups[i])}): {text}"
                       for text in verdict.diagnoses[i])
        if r.profile:
            total = sum(o.ns_per_call for o in r.profile) or 1
            top = ", ".join(f"{o.op}{'@' + o.provider if o.provider not in ('', 'CPU') else ''} "
                            f"{fmt_ns(o.ns_per_call)} ({o.ns_per_call / total:.0%})" for o in r.profile[:5])
            against = ""
            if b is not None and b != i and (change := profile_change(rows[b], r)):
                against = f"; against row {b + 1}: {change}"
            out.append(f"row {i + 1} profile per call: {top}{against}")
    for b in verdict.best:
        r = rows[b]
        base = verdict.baseline[b]
        why = "no variant is faster beyond the noise inside the budget" if r.model.is_base else \
            fmt_ratio(verdict.speedups[b]) + (f" vs row {base + 1}" if base is not None else "")
        if report.search is not None:
            out.append(f"{BEST}tune's answer: row {b + 1} {r.model.label}"
                       + (f" ({r.target.session_text})" if r.target.session_text else "") + f" ({why})")
            continue
        out.append(f"{BEST}fastest inside {report.spec.accuracy_budget} on {r.target.label}, batch {r.batch}: "
                   f"row {b + 1} {r.model.label} ({why})")
    return out


def summary_cells(accuracy: tuple[OutputAccuracy, ...]) -> tuple[str, str, str]:
    """(cos, max abs, agree) for the table: the worst over the outputs."""
    comparable = [a for a in accuracy if a.comparable]
    if not comparable:
        return ("n/c", "n/c", "n/c") if accuracy else ("-", "-", "-")
    cosines = [a.cosine for a in comparable if a.cosine is not None]
    max_abs = [a.max_abs for a in comparable if a.max_abs is not None]
    agree = [a.agree for a in comparable if a.agree is not None]
    cos_text = "-" if not cosines else "NaN" if any(math.isnan(c) for c in cosines) else fmt_cos(min(cosines))
    return (cos_text, f"{max(max_abs):.2g}" if max_abs else "-", f"{min(agree):.1%}" if agree else "-")


def describe(env: Environment) -> list[tuple[str, str]]:
    """The environment fingerprint as label/value pairs: `perfkit env` and the HTML report."""
    cores = f"{env.logical_cores} logical" + (f", {env.physical_cores} physical" if env.physical_cores else "")
    return [
        ("CPU", env.cpu_model), ("cores", cores), ("CPU flags", " ".join(env.cpu_flags) or "-"),
        ("OS", env.os), ("Python", f"{env.python} ({sys.implementation.name})"),
        *[(name, version) for name, version in env.packages.items()],
        ("providers", ", ".join(env.providers) or "onnxruntime not installed"),
        ("git commit", env.git_commit or "-"),
        ("load average", f"{env.load_average:.2f}" if env.load_average is not None else "-"),
    ]
