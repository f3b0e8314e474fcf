"""Which variant to ship, and why the others are slower: speed-ups against the baseline row, the accuracy
budget, the fastest row inside it, node-count changes, and plain-language diagnoses from what can be
detected (the CPU's instruction sets, the quantization format, Q/DQ and Cast nodes, the session's level).

Everything here is derived from a Report, never stored: a re-rendered old run gets today's wording.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from perfkit.analysis.accuracy import parse_budget, within
from perfkit.analysis.stats import paired_ratio, speedup
from perfkit.core.records import Environment, OpTime, Ratio
from perfkit.core.report import Report, Result

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
    the budget; the baseline instead when that row is not faster beyond the noise and the threshold."""
    rows = report.results
    budget = parse_budget(report.spec.accuracy_budget)
    base_of: dict[tuple, int] = {}
    for i, r in enumerate(rows):
        if r.model.is_base and r.model.path:
            base_of.setdefault(_group(r), i)
    baseline = tuple(base_of.get(_group(r)) for r in rows)
    threshold = report.spec.plan.threshold
    speedups = tuple(None if b is None or b == i else ratio_between(rows[b], rows[i], threshold)
                     for i, b in enumerate(baseline))
    # The native model is the reference: it carries the reference's task metrics but no accuracy, and is not judged.
    checks = tuple(within(r.accuracy, budget, r.task) if r.status == "ok" and r.accuracy else None for r in rows)
    picks = (_pick(report, group, baseline, speedups, checks) for group in dict.fromkeys(_group(r) for r in rows))
    best = tuple(p for p in picks if p is not None)
    if report.search is not None:  # a tune run's answer came from its own A/B rule, said in its notes
        best = (report.search.chosen_row,)
    diagnoses = tuple(diagnose(r, rows[b], report.environment) if b is not None and s is not None and
                      s.significant and s.value < 1 else () for r, b, s in zip(rows, baseline, speedups, strict=True))
    return Verdict(baseline, speedups, checks, best, diagnoses)


def ratio_between(base: Result, row: Result, threshold: float) -> Ratio | None:
    """How many times faster `row` ran than `base`: paired over the rounds they shared when interleaved,
    else from their two medians (an old run, --no-interleave); None for a row without figures."""
    if not (base.summary and row.summary and base.measurement and row.measurement):
        return None
    paired = paired_ratio(base.measurement.blocks, row.measurement.blocks, threshold)
    return paired or speedup(base.summary, row.summary, threshold)


def _pick(report: Report, group: tuple, baseline: tuple[int | None, ...], speedups: tuple[Ratio | None, ...],
          checks: tuple[tuple[bool, str] | None, ...]) -> int | None:
    """The row to ship in one group (target, batch, shapes), or None when no row there is inside the budget."""
    medians = {i: r.summary.median for i, r in enumerate(report.results)
               if _group(r) == group and r.status == "ok" and r.summary and _inside(r, checks[i])}
    if not medians:
        return None
    fastest = min(medians, key=medians.__getitem__)
    base, ratio = baseline[fastest], speedups[fastest]
    # A variant is worth shipping only when it is faster beyond the noise; else the model as it is.
    if base is not None and base in medians and (ratio is None or not ratio.significant):
        fastest = base
    return fastest


def _inside(row: Result, check: tuple[bool, str] | None) -> bool:
    """Inside the budget: a variant that passed it, or the model as given, which has nothing to compare with."""
    return check[0] if check is not None else row.model.is_base


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
                ratio = ratio_between(nat, r, report.spec.plan.threshold)
                if ratio:
                    out.append((n, i, ratio))
    return out


def _group(r: Result) -> tuple:
    return (r.target.group, r.batch, r.shapes)


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


def profile_diff(base: tuple[OpTime, ...], other: tuple[OpTime, ...], top: int = 4) -> list[tuple[str, float]]:
    """(op, change in ns per call) for the op types whose time changed most between two profiles."""
    before: dict[str, float] = defaultdict(float)
    after: dict[str, float] = defaultdict(float)
    for o in base:
        before[o.op] += o.ns_per_call
    for o in other:
        after[o.op] += o.ns_per_call
    changes = [(op, after[op] - before[op]) for op in before.keys() | after.keys()]
    return sorted(changes, key=lambda c: -abs(c[1]))[:top]


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


@dataclass(frozen=True)
class _Slower:
    """What the diagnoses read off a row slower than its baseline."""

    row: Result
    base: Result
    env: Environment
    steps: tuple[str, ...]  # transform names of the row's lineage
    options: str  # the lineage as written, for its options
    on_cpu: bool
    delta: dict[str, int]  # op type -> node count change against the baseline
    level: str  # the row's session graph optimization level

    @classmethod
    def of(cls, row: Result, base: Result, env: Environment) -> _Slower:
        on_cpu = bool(row.providers) and row.providers[0] == "CPUExecutionProvider"
        delta = {k: row.ops.get(k, 0) - base.ops.get(k, 0) for k in row.ops.keys() | base.ops.keys()}
        return cls(row, base, env, tuple(label.split(":")[0] for label in row.model.lineage),
                   ",".join(row.model.lineage), on_cpu, delta, row.settings.get("opt_level", ""))


def _fp16_emulated(s: _Slower) -> str | None:
    if "fp16" not in s.steps or not s.on_cpu:
        return None
    casts = s.delta.get("Cast", 0)
    native = "avx512_fp16" in s.env.cpu_flags
    return (f"fp16 on the CPU provider is emulated: onnxruntime's x86 kernels are fp32 for almost every op, "
            f"so it converts around each fp16 node{f' ({casts:+d} Cast in the file too)' if casts else ''}"
            f"{'' if not native else ' even though this CPU has AVX512-FP16'} — fp16 pays off on a GPU "
            "provider (ort:cuda)")


def _dynamic_conv(s: _Slower) -> str | None:
    if "int8-dynamic" not in s.steps or not s.base.ops.get("Conv"):
        return None
    return ("dynamic quantization of a conv net: each Conv becomes ConvInteger with its input quantized on "
            "every call (DynamicQuantizeLinear), which misses onnxruntime's fused int8 conv kernels — use "
            "int8-static")


def _no_int8_dot(s: _Slower) -> str | None:
    int8_dot = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & set(s.env.cpu_flags)
    if not any(step.startswith("int8") for step in s.steps) or int8_dot:
        return None
    return (f"this CPU has {cpu_isa(s.env.cpu_flags)}: int8 dot products take several instructions each and U8S8 "
            "can saturate, so int8 gains little here; a CPU with VNNI or AMX does far better")


def _qdq_cost(s: _Slower) -> str | None:
    qdq = sum(d for k, d in s.delta.items() if GROUPS.get(k) == "Q/DQ")
    if "int8-static" in s.steps and "qoperator" not in s.options and s.level in ("disable", "basic"):
        return (f"QDQ format, but this row's session ran at level {s.level}: Q/DQ pairs become int8 kernels only "
                "when onnxruntime's optimizer runs at extended or all")
    if qdq > 0 and s.base.summary and s.base.summary.median < SMALL_CALL_NS:
        return (f"{qdq:+d} Q/DQ nodes on a model that runs in {s.base.summary.median / 1e3:.0f} µs: quantizing and "
                "dequantizing activations costs about as much as the int8 arithmetic saves at this size")
    return None


def _signed_activations(s: _Slower) -> str | None:
    if "int8-static" not in s.steps or "u8s8" in s.options or "avx2" not in s.env.cpu_flags:
        return None
    return ("S8S8 on x86: onnxruntime's int8 kernels multiply unsigned activations by signed weights (VNNI "
            "VPDPBUSD), signed activations take a slower path — try int8-static:u8s8")


def _qoperator(s: _Slower) -> str | None:
    if "qoperator" not in s.options:
        return None
    return ("QOperator format: every QLinear op requantizes its own output and the optimizer cannot fuse "
            "across them; int8-static:qdq lets onnxruntime choose fused kernels")


def _lower_level(s: _Slower) -> str | None:
    if not s.steps or s.steps[-1] != "ort-opt" or s.level != "disable":
        return None
    chosen = s.row.model.lineage[-1].partition(":")[2] or "all"
    base_level = s.base.settings.get("opt_level", "all")
    if chosen == "all" or base_level not in ("extended", "all"):
        return None
    return (f"graph optimization level {chosen} leaves out fusions and layouts that the baseline's session "
            f"applies at level {base_level}")


def _nothing_fused(s: _Slower) -> str | None:
    if "fusion" not in s.steps or not any("nothing was fused" in n for n in s.row.notes):
        return None
    return "fusion found no pattern it knows: the extra contrib-op rewrites only add load time"


def _inserted_casts(s: _Slower) -> str | None:
    row = s.row
    inserted = sum(o.nodes for o in row.profile if o.op == "Cast") - row.ops.get("Cast", 0)
    if not row.profile or inserted <= 0:
        return None
    provider = row.providers[0].removesuffix("ExecutionProvider") if row.providers else "this provider"
    return (f"onnxruntime inserted {inserted} Cast node(s) at load: some ops here have no {provider} kernel "
            "for their types and run in fp32 between casts")


# Each cause a row can be slower for, in the order the notes name them.
CAUSES: tuple[Callable[[_Slower], str | None], ...] = (
    _fp16_emulated, _dynamic_conv, _no_int8_dot, _qdq_cost, _signed_activations, _qoperator, _lower_level,
    _nothing_fused, _inserted_casts)


def diagnose(row: Result, base: Result, env: Environment) -> tuple[str, ...]:
    """Why `row` is slower than `base`, from what the files, the CPU and the profile show."""
    facts = _Slower.of(row, base, env)
    found = tuple(text for cause in CAUSES if (text := cause(facts)))
    return found or ("no cause detected from the graph and this CPU's features"
                     + ("" if row.profile else "; --profile shows where the time goes per op"),)


def pareto(points: list[tuple[float, float, int]]) -> list[int]:
    """Rows no other row beats on both latency (lower) and error (lower): (latency, error, row) points."""
    front = []
    for lat, err, i in points:
        if not any((l2 <= lat and e2 <= err) and (l2 < lat or e2 < err) for l2, e2, _ in points):
            front.append(i)
    return front
