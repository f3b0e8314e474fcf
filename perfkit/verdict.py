"""Which variant to ship, and why the others are slower: speed-ups against the baseline row, the accuracy
budget, the fastest row inside it, node-count changes, and plain-language diagnoses from what can be
detected (the CPU's instruction sets, the quantization format, Q/DQ and Cast nodes, the session's level).

Everything here is derived from a Report, never stored: a re-rendered old run gets today's wording.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from perfkit.accuracy import parse_budget, within
from perfkit.env import Environment
from perfkit.profile import profile_diff
from perfkit.report import Report, Result
from perfkit.stats import Ratio, speedup

CONTEST_MARGIN = 0.25  # rows timed one after another drifted up to 15 % apart on this shared machine; with room
CONTEST_MAX = 4  # the pick and its three closest rivals: 3 rounds each stay under a minute at default times
SMALL_CALL_NS = 200_000  # below 0.2 ms a call, per-op overheads (Q/DQ, Casts) weigh as much as arithmetic
GROUPS = {"QuantizeLinear": "Q/DQ", "DequantizeLinear": "Q/DQ", "DynamicQuantizeLinear": "Q/DQ",
          "com.microsoft:QuantizeLinear": "Q/DQ", "com.microsoft:DequantizeLinear": "Q/DQ"}


@dataclass(frozen=True)
class Verdict:
    """Per row (same order as report.results): its baseline row, speed-up, budget check, diagnosis."""

    baseline: tuple[int | None, ...]
    speedups: tuple[Ratio | None, ...]
    budget: tuple[tuple[bool, str] | None, ...]  # None: not compared (no accuracy, or not ok)
    best: tuple[int, ...]  # per group of rows (target, batch): the fastest inside the budget
    diagnoses: tuple[tuple[str, ...], ...]


def judge(report: Report) -> Verdict:
    """Baselines, speed-ups, budget checks and the pick. Within a group the pick is the fastest row inside
    the budget; the baseline instead when that row is not faster beyond the noise; and when other rows
    are inside the pick's noise, the winner of their interleaved re-timing (`Report.contests`)."""
    rows = report.results
    budget = parse_budget(report.spec.accuracy_budget)
    base_of: dict[tuple, int] = {}
    for i, r in enumerate(rows):
        if r.model.is_base and r.model.path:
            base_of.setdefault(_group(r), i)
    baseline = tuple(base_of.get(_group(r)) for r in rows)
    speedups = tuple(speedup(rows[b].summary, r.summary) if b is not None and b != i and r.summary and
                     rows[b].summary else None for i, (r, b) in enumerate(zip(rows, baseline, strict=True)))
    checks = tuple(within(r.accuracy, budget) if r.status == "ok" and r.accuracy else None for r in rows)
    best = []
    for group in dict.fromkeys(_group(r) for r in rows):
        inside = [i for i, r in enumerate(rows) if _group(r) == group and r.status == "ok" and r.summary and
                  (checks[i] is None and r.model.is_base or checks[i] is not None and checks[i][0])]
        if not inside:
            continue
        fastest = min(inside, key=lambda i: rows[i].summary.median)
        base = baseline[fastest]
        # A variant is worth shipping only when it is faster beyond the noise; else the model as it is.
        if base in inside and (speedups[fastest] is None or not speedups[fastest].significant):
            fastest = base
        contest = next((c for c in report.contests if fastest in c.rows), None)
        if contest and base not in contest.rows:
            fastest = contest.rows[contest.medians_ns.index(min(contest.medians_ns))]
        best.append(fastest)
    diagnoses = tuple(diagnose(r, rows[b], report.environment) if b is not None and s is not None and
                      s.significant and s.value < 1 else () for r, b, s in zip(rows, baseline, speedups, strict=True))
    return Verdict(baseline, speedups, checks, tuple(best), diagnoses)


def contenders(report: Report, verdict: Verdict) -> list[list[int]]:
    """For each pick that is a variant: it and the (at most CONTEST_MAX - 1) rows inside the budget whose
    medians are within CONTEST_MARGIN of its, or not apart from it beyond their intervals — when there are
    any."""
    rows = report.results
    out = []
    for b in verdict.best:
        pick = rows[b]
        if pick.model.is_base:
            continue
        close = []
        for i, r in enumerate(rows):
            if i == b or _group(r) != _group(pick) or r.status != "ok" or not r.summary or r.model.is_base:
                continue
            if verdict.budget[i] is None or not verdict.budget[i][0]:
                continue
            ratio = speedup(r.summary, pick.summary)
            if r.summary.median <= pick.summary.median * (1 + CONTEST_MARGIN) or (ratio and not ratio.significant):
                close.append(i)
        if close:
            close = sorted(close, key=lambda i: rows[i].summary.median)[:CONTEST_MAX - 1]
            out.append(sorted([b, *close]))
    return out


def is_native_row(r: Result) -> bool:
    return bool(r.model.lineage) and r.model.lineage[0].startswith("native:")


def native_speedups(report: Report) -> list[tuple[int, int, Ratio]]:
    """(native row, conversion row, how many times faster the conversion runs) for each ONNX conversion
    row measured beside a native row on the same inputs."""
    rows = report.results
    out = []
    for n, nat in enumerate(rows):
        if not is_native_row(nat) or not nat.summary:
            continue
        for i, r in enumerate(rows):
            if r.model.is_base and r.model.lineage and r.summary and (r.batch, r.shapes) == (nat.batch, nat.shapes):
                ratio = speedup(nat.summary, r.summary)
                if ratio:
                    out.append((n, i, ratio))
    return out


def _group(r: Result) -> tuple:
    return (r.target.label, r.batch, r.shapes)


def node_change(base: dict[str, int], ops: dict[str, int]) -> str:
    """"+402 Q/DQ" when one op group changed, else the total and the group that changed most ("-44: -20 Conv");
    "same" when nothing did."""
    if not base or not ops:
        return "-"
    delta: Counter[str] = Counter()
    for op in base.keys() | ops.keys():
        delta[GROUPS.get(op, op.removeprefix("com.microsoft:"))] += ops.get(op, 0) - base.get(op, 0)
    changed = sorted(((d, g) for g, d in delta.items() if d), key=lambda x: (-abs(x[0]), x[1]))
    if not changed:
        return "same"
    total = sum(ops.values()) - sum(base.values())
    d, group = changed[0]
    return f"{d:+d} {group}" if len(changed) == 1 else f"{total:+d}: {d:+d} {group}"


def profile_change(base: Result, row: Result) -> str:
    """Where the time went between two profiled rows, per call: "QLinearConv +340 µs, Conv -310 µs"."""
    if not base.profile or not row.profile:
        return ""
    return ", ".join(f"{op} {ns / 1e3:+.0f} µs" for op, ns in profile_diff(base.profile, row.profile) if ns)


def cpu_isa(flags: tuple[str, ...]) -> str:
    """The widest int8 dot-product path this CPU offers, as onnxruntime's MLAS kernels see it."""
    if "amx_int8" in flags:
        return "AMX"
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI"
    if "avx_vnni" in flags:
        return "AVX-VNNI"
    if "avx512bw" in flags:
        return "AVX-512 (no VNNI)"
    if "avx2" in flags:
        return "AVX2 (no VNNI)"
    return "no AVX2"


def diagnose(row: Result, base: Result, env: Environment) -> tuple[str, ...]:
    """Why `row` is slower than `base`, from what the files, the CPU and the profile show."""
    steps = [label.split(":")[0] for label in row.model.lineage]
    options = ",".join(row.model.lineage)
    on_cpu = bool(row.providers) and row.providers[0] == "CPUExecutionProvider"
    delta = {k: row.ops.get(k, 0) - base.ops.get(k, 0) for k in row.ops.keys() | base.ops.keys()}
    qdq = sum(d for k, d in delta.items() if GROUPS.get(k) == "Q/DQ")
    isa = cpu_isa(env.cpu_flags)
    level = row.settings.get("opt_level", "")
    out = []
    if "fp16" in steps and on_cpu:
        casts = delta.get("Cast", 0)
        native = "avx512_fp16" in env.cpu_flags
        out.append(f"fp16 on the CPU provider is emulated: onnxruntime's x86 kernels are fp32 for almost every op, "
                   f"so it converts around each fp16 node{f' ({casts:+d} Cast in the file too)' if casts else ''}"
                   f"{'' if not native else ' even though this CPU has AVX512-FP16'} — fp16 pays off on a GPU "
                   "provider (ort:cuda)")
    if "int8-dynamic" in steps and base.ops.get("Conv"):
        out.append("dynamic quantization of a conv net: each Conv becomes ConvInteger with its input quantized on "
                   "every call (DynamicQuantizeLinear), which misses onnxruntime's fused int8 conv kernels — use "
                   "int8-static")
    int8_dot = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & set(env.cpu_flags)
    if any(s.startswith("int8") for s in steps) and not int8_dot:
        out.append(f"this CPU has {isa}: int8 dot products take several instructions each and U8S8 can saturate, "
                   "so int8 gains little here; a CPU with VNNI or AMX does far better")
    if "int8-static" in steps and "qoperator" not in options and level in ("disable", "basic"):
        out.append(f"QDQ format, but this row's session ran at level {level}: Q/DQ pairs become int8 kernels only "
                   "when onnxruntime's optimizer runs at extended or all")
    elif qdq > 0 and base.summary and base.summary.median < SMALL_CALL_NS:
        out.append(f"{qdq:+d} Q/DQ nodes on a model that runs in {base.summary.median / 1e3:.0f} µs: quantizing and "
                   "dequantizing activations costs about as much as the int8 arithmetic saves at this size")
    x86 = "avx2" in env.cpu_flags
    if "int8-static" in steps and "u8s8" not in options and x86:
        out.append("S8S8 on x86: onnxruntime's int8 kernels multiply unsigned activations by signed weights (VNNI "
                   "VPDPBUSD), signed activations take a slower path — try int8-static:u8s8")
    if "qoperator" in options:
        out.append("QOperator format: every QLinear op requantizes its own output and the optimizer cannot fuse "
                   "across them; int8-static:qdq lets onnxruntime choose fused kernels")
    if steps and steps[-1] == "ort-opt" and level == "disable":
        chosen = row.model.lineage[-1].partition(":")[2] or "all"
        base_level = base.settings.get("opt_level", "all")
        if chosen != "all" and base_level in ("extended", "all"):
            out.append(f"graph optimization level {chosen} leaves out fusions and layouts that the baseline's session "
                       f"applies at level {base_level}")
    if "fusion" in steps and any("nothing was fused" in n for n in row.notes):
        out.append("fusion found no pattern it knows: the extra contrib-op rewrites only add load time")
    inserted = sum(o.nodes for o in row.profile if o.op == "Cast") - row.ops.get("Cast", 0)
    if row.profile and inserted > 0:
        provider = row.providers[0].removesuffix("ExecutionProvider") if row.providers else "this provider"
        out.append(f"onnxruntime inserted {inserted} Cast node(s) at load: some ops here have no {provider} kernel "
                   "for their types and run in fp32 between casts")
    if not out:
        out.append("no cause detected from the graph and this CPU's features"
                   + ("" if row.profile else "; --profile shows where the time goes per op"))
    return tuple(out)
