"""Orchestration: spec -> model -> variants -> cases -> measure + compare -> Report, saved after every row."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

from perfkit.accuracy import against, parse_budget
from perfkit.backends import get_backend
from perfkit.case import Case, Outcome, run_case, run_checks
from perfkit.convert import convert, native_checks, prepare_native
from perfkit.env import conflicting_runtimes, fingerprint
from perfkit.errors import CaseFailed, PerfkitError, Unsupported
from perfkit.isolate import call_in, one_line
from perfkit.model import EXPORTED, Model, Signature, disk_size, open_onnx, read_signature
from perfkit.native import NativeModel, is_native
from perfkit.placement import Placement, fallback_message, placement
from perfkit.report import Contest, Measurement, Report, Result
from perfkit.spec import BenchSpec, Plan, Target, Workload
from perfkit.stats import stability_warnings, summarize, throughput
from perfkit.store import Store
from perfkit.transforms import BuildContext, Step, auto_chains, model_kind, op_histogram, parse_chain
from perfkit.transforms.cache import Variant, build_chain
from perfkit.verdict import contenders, judge
from perfkit.workload import Shapes, calibration_feeds, load_inputs, resolve_shapes, synthesize

BUSY_LOAD = 0.5  # warn when the 1-minute load per core is above this before we start: timings will be noisy
SYNTHETIC_CALIBRATION = ("int8-static calibrated on synthetic inputs: its ranges come from random data, so "
                         "its accuracy here misstates accuracy on real inputs — give --calibration data.npz")


@dataclass(frozen=True)
class Fed:
    shapes: Shapes
    feeds: tuple[dict[str, Any], ...]  # timed
    checks: tuple[dict[str, Any], ...]  # compared with the reference


@dataclass(frozen=True)
class Broken:
    """A variant that could not be built: skipped (Unsupported) or failed, with the reason."""

    lineage: tuple[str, ...]
    status: str
    reason: str


def run(spec: BenchSpec, on_progress: Callable[[str], None] = lambda _: None,
        command: tuple[str, ...] = ()) -> Report:
    """Everything user-facing is checked before anything is measured or written; then one row per case."""
    native, model, proto = open_model(spec, on_progress)
    if native:
        spec = batch_over_example_shapes(spec)
    signature = read_signature(proto)
    fed = [feed(signature, wl, spec, compared=bool(spec.variants or native)) for wl in spec.workloads]
    chains = resolve_chains(spec, proto)
    calibration = calibrate(spec, signature, fed[0], chains)
    skipped = check_targets(model, spec)
    env = fingerprint()
    warnings = run_warnings(env, fed) + ((SYNTHETIC_CALIBRATION,) if calibration[0] and not spec.calibration
                                          else ())
    report = Report(run_id=new_run_id(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), spec=spec, environment=env,
                    warnings=warnings, command=command)
    store = Store(spec.results_dir, spec.store) if spec.results_dir else None
    if store:
        store.begin(report)
    try:
        if spec.variants or native:
            on_progress(f"reference outputs of {native.label if native else model.path} on {len(fed[0].checks)} "
                        "feeds")
        references, notes = compute_references(fed, native, model.path, spec)
        report = replace(report, warnings=(*report.warnings, *notes))
        ctx = build_context(spec, fed[0], calibration, references[0])
        variants: list[Variant | Broken] = [Variant(model)]
        for i, chain in enumerate(chains, 1):
            on_progress(f"[build {i}/{len(chains)}] {'+'.join(s.label for s in chain)}")
            variants.append(build(model, chain, ctx, spec, env.cpu_flags))
        # Size and op counts once per file, not once per target and batch.
        footprints = {v.model.path: disk_size(v.model.path) for v in variants if isinstance(v, Variant)}
        cases: list[tuple[Fed, Reference | None, Target, Variant | Broken | NativeModel]] = [
            (f, ref, t, v) for f, ref in zip(fed, references, strict=True)
            for t, v in ([(t, native) for t in native_targets(native, spec)] if native else []) +
            [(t, v) for t in spec.targets for v in variants]]
        for i, (f, ref, target, variant) in enumerate(cases, 1):
            on_progress(f"[{i}/{len(cases)}] {case_label(variant)} on {target.label}, batch {f.shapes.batch}")
            footprint = footprints.get(variant.model.path) if isinstance(variant, Variant) else None
            if target.label in skipped:
                result = skipped_row(variant, target, f, skipped[target.label])
            else:
                result = measure_native(variant, target, f, spec) if isinstance(variant, NativeModel) else \
                    measure_case(variant, target, f, ref, spec, footprint)
            report = replace(report, results=(*report.results, result))
            if store:
                store.add(report, result)
        feeds = [f.feeds for f, _, _, _ in cases]
        for rows in contenders(report, judge(report)):
            on_progress(f"re-timing rows {', '.join(str(i + 1) for i in rows)} interleaved: inside each other's noise")
            report = replace(report, contests=(*report.contests, contest(report, rows, feeds, spec.plan)))
        report = replace(report, complete=True)
    finally:
        if store:
            store.finish(report)
    return report


def new_run_id(now: float | None = None) -> str:
    """`20261202-160144.123-97d3`: sorts in the order runs began, to the millisecond (two runs started in one
    second were listed, and taken as 'latest', in the order of their random suffix), and stays unique."""
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}-" + \
        secrets.token_hex(2)


def compute_references(fed: list[Fed], native: NativeModel | None, model_path: str, spec: BenchSpec
                       ) -> tuple[list[Reference | None], list[str]]:
    """Per workload, the outputs every row is compared with: the native model's, else the ONNX model's as
    written; and the warnings when one could not run. Without variants or a native model nothing is
    compared: no reference worker, no check feeds run per row."""
    references: list[Reference | None] = []
    notes: list[str] = []
    for f in fed:
        ref, why = reference(native or model_path, f, spec.plan) if spec.variants or native else (None, "")
        if ref is None and native and spec.variants:
            # The variants can still be compared with the conversion they were built from.
            notes.append(f"batch {f.shapes.batch}: the native model failed on the check feeds ({why}); the "
                         "variants are compared with the ONNX conversion instead")
            ref, why = reference(model_path, f, spec.plan)
        references.append(ref)
        if why:
            notes.append(f"no accuracy for batch {f.shapes.batch}: the reference run failed ({why})")
    return references, notes


def case_label(variant: Variant | Broken | NativeModel) -> str:
    if isinstance(variant, Broken):
        return "+".join(variant.lineage)
    return variant.label if isinstance(variant, NativeModel) else variant.model.label


def open_model(spec: BenchSpec, on_progress: Callable[[str], None]
               ) -> tuple[NativeModel | None, Model, onnx.ModelProto]:
    """An ONNX file as it is; a native model with its ONNX conversion (cached), which is then the base of
    the variants."""
    if not is_native(spec.model):
        model, proto = open_onnx(spec.model)
        return None, model, proto
    native = prepare_native(spec.model, spec.trust, spec.factory)
    on_progress(f"converting {spec.model} ({native.format}) to ONNX")
    shapes = tuple(s for wl in spec.workloads[:1] for s in wl.shapes)
    inputs = spec.workloads[0].inputs
    converted = convert(native, cache_dir=spec.cache_dir, opset=spec.opset, shapes=shapes, data=inputs,
                        float64=spec.float64, timeout_s=spec.plan.timeout_s, isolate=spec.plan.isolate)
    model, proto = open_onnx(converted.onnx_path)
    return converted.native, replace(model, lineage=(EXPORTED,)), proto


def batch_over_example_shapes(spec: BenchSpec) -> BenchSpec:
    """For a native model --shape gives the export its example input; with --batch the conversion's free
    batch axis takes each size, so the example shapes step aside."""
    if all(wl.batch is None for wl in spec.workloads):
        return spec
    return replace(spec, workloads=tuple(replace(wl, shapes=()) for wl in spec.workloads))


def native_target(native: NativeModel, spec: BenchSpec) -> Target:
    """The native model runs on the CPU in its own framework, with the threads asked of onnxruntime."""
    return Target(native.framework, "cpu", threads=spec.targets[0].threads)


def native_targets(native: NativeModel, spec: BenchSpec) -> list[Target]:
    """The CPU, and for a PyTorch model also torch:cuda when a GPU target was asked for."""
    targets = [native_target(native, spec)]
    if native.framework == "torch" and any(t.device in ("cuda", "tensorrt") for t in spec.targets):
        device_id = next((dict(t.provider_options).get("device_id") for t in spec.targets if t.gpu), None)
        targets.append(Target("torch", "cuda", (("device_id", device_id),) if device_id else ()))
    return targets


def skipped_row(variant: Variant | Broken | NativeModel, target: Target, f: Fed, reason: str) -> Result:
    """A case this machine cannot run: a row that says why, with no figure."""
    model = Model(variant.path, variant.format, variant.digest, (variant.label,)) if isinstance(variant, NativeModel) \
        else Model("", "onnx", "", variant.lineage) if isinstance(variant, Broken) else variant.model
    return Result(model, target, f.shapes.batch, f.shapes.shapes, status="skipped", reason=reason)


def feed(signature: Signature, wl: Workload, spec: BenchSpec, compared: bool) -> Fed:
    if wl.inputs:
        arrays, shapes = load_inputs(wl.inputs, signature)
        return Fed(shapes, (arrays,), (arrays,))
    shapes = resolve_shapes(signature, wl, spec.model)
    checks = spec.check_feeds if compared else 0  # without variants or a native model nothing is compared
    feeds = tuple(synthesize(signature, shapes, wl.seed, max(wl.distinct_feeds, checks), spec.model))
    return Fed(shapes, feeds[:wl.distinct_feeds], feeds[:checks])


def calibrate(spec: BenchSpec, signature: Signature, first: Fed, chains: list[tuple[Step, ...]]
              ) -> tuple[tuple[dict[str, Any], ...], str]:
    """Calibration feeds and their source, when a chain quantizes statically; else nothing."""
    if not any(s.name == "int8-static" for chain in chains for s in chain):
        return (), ""
    return calibration_feeds(signature, first.shapes, spec.calibration, spec.workloads[0].seed, len(first.checks))


def build_context(spec: BenchSpec, first: Fed, calibration: tuple[tuple[dict[str, Any], ...], str],
                  ref: Reference | None) -> BuildContext:
    """What the transforms get: calibration feeds, and for fp16's repair the first workload's check feeds,
    the reference outputs on them and the budget."""
    return BuildContext(calibration[0], calibration[1], first.checks, ref[1] if ref else (),
                        parse_budget(spec.accuracy_budget))


def resolve_chains(spec: BenchSpec, proto) -> list[tuple[Step, ...]]:
    """The spec's chains, `auto` expanded for this model and these targets, each once, in order."""
    texts: list[str] = []
    for text in spec.variants:
        if text == "auto":
            gpu = any(t.device != "cpu" for t in spec.targets)
            texts += auto_chains(model_kind(op_histogram(proto)), gpu)
        else:
            texts.append(text)
    return [parse_chain(t) for t in dict.fromkeys(texts)]


def check_targets(model: Model, spec: BenchSpec) -> dict[str, str]:
    """{target label: why it is skipped} for GPU targets this machine cannot run while another target can;
    any other missing provider (or every target missing) is the user's error, unless --allow-fallback; so is
    a model that will not load."""
    skipped: dict[str, str] = {}
    for target in spec.targets:
        reason = get_backend(target.backend).unavailable(target)
        if not reason or spec.allow_fallback and "not installed" not in reason:
            continue
        if not target.gpu:
            raise PerfkitError(f"--target {target.label}", reason,
                               "pick one of those, or pass --allow-fallback to run on what is there")
        skipped[target.label] = f"{reason} — no GPU row is measured here, and none pretends"
    runnable = tuple(t for t in spec.targets if t.label not in skipped)
    if not runnable:
        target = spec.targets[0]
        raise PerfkitError(f"--target {target.label}", skipped[target.label].split(" — ")[0],
                           "install perfkit[gpu] on a machine with an NVIDIA GPU, add --target ort:cpu, or pass "
                           "--allow-fallback to run on what is there")
    try:
        ran = call_in(open_each, (model.path, runnable), spec.plan.timeout_s, spec.plan.isolate)
    except CaseFailed as exc:
        raise PerfkitError(model.path, f"onnxruntime failed while loading it: {exc}",
                           "check the model with onnx.checker.check_model, or report it to onnxruntime") from None
    for target, (requested, providers) in zip(runnable, ran, strict=True):
        if providers[0] == requested or spec.allow_fallback:
            continue
        if target.gpu and len(runnable) > 1:
            skipped[target.label] = (f"asked for {requested}, onnxruntime ran {providers[0]}: the provider is there "
                                     "but cannot run here (no device, or its libraries are missing)")
            continue
        raise PerfkitError(f"--target {target.label}", f"asked for {requested}, onnxruntime ran {providers[0]}",
                           "fix the provider's libraries, or pass --allow-fallback")
    return skipped


def open_each(arg: tuple[str, tuple[Target, ...]]) -> list[tuple[str, tuple[str, ...]]]:
    """Load the model on every target once: (requested provider, providers that ran) for each."""
    path, targets = arg
    out = []
    for target in targets:
        session = get_backend(target.backend).open(path, target)
        out.append((session.settings.get("requested", ""), session.providers))
        session.close()
    return out


Reference = tuple[tuple[str, ...], tuple[list[Any], ...]]  # output names, outputs per check feed


def reference(source: str | NativeModel, f: Fed, plan: Plan) -> tuple[Reference | None, str]:
    """(the reference outputs on the check feeds: the native model's, else the base ONNX model's on the CPU
    provider with graph optimization off — the model as written; or None and why it could not run, and
    then nothing is compared)."""
    try:
        if isinstance(source, NativeModel):
            return call_in(native_checks, (source, f.checks), plan.timeout_s, plan.isolate), ""
        return call_in(run_checks, (source, f.checks), plan.timeout_s, plan.isolate), ""
    except (CaseFailed, PerfkitError) as exc:
        return None, str(exc)
    except Exception as exc:  # in-process: the base row fails on its own too, and says why
        return None, one_line(exc)


def build(model: Model, chain: tuple[Step, ...], ctx: BuildContext, spec: BenchSpec,
          cpu_flags: tuple[str, ...]) -> Variant | Broken:
    lineage = tuple(s.label for s in chain)
    try:
        return build_chain(model, chain, ctx, spec.cache_dir, spec.plan.timeout_s, spec.plan.isolate, cpu_flags)
    except Unsupported as exc:
        return Broken(lineage, "skipped", str(exc))
    except CaseFailed as exc:
        return Broken(lineage, "failed", str(exc))


def session_target(variant: Variant, target: Target) -> Target:
    """A file that ends in `ort-opt:LEVEL` already holds that optimization: its session runs with graph
    optimization off (as onnxruntime advises for offline-optimized models), so the row shows what LEVEL
    does, not what the session's own level would redo."""
    if variant.model.lineage and variant.model.lineage[-1].startswith("ort-opt"):
        return replace(target, opt_level="disable")
    return target


def measure_case(variant: Variant | Broken, target: Target, f: Fed, ref: Reference | None,
                 spec: BenchSpec, footprint: tuple[int, dict[str, int]] | None) -> Result:
    if isinstance(variant, Broken):
        return Result(Model("", "onnx", "", variant.lineage), target, f.shapes.batch, f.shapes.shapes,
                      status=variant.status, reason=variant.reason)
    model, plan = variant.model, spec.plan
    target = session_target(variant, target)
    size, ops = footprint or (None, {})
    row = Result(model, target, f.shapes.batch, f.shapes.shapes, status="failed", size_bytes=size, ops=ops,
                 notes=variant.notes)
    case = Case(model.path, target, f.feeds, plan, f.checks if ref else (), spec.profile)
    try:
        outcome: Outcome = call_in(run_case, case, plan.timeout_s, plan.isolate)
    except (CaseFailed, PerfkitError) as exc:
        return replace(row, reason=str(exc))
    except Exception as exc:  # in-process (--no-isolate): any error in one case fails that row only
        return replace(row, reason=one_line(exc))
    return finish_row(row, outcome, f, ref, spec.fail_on_fallback)


def gpu_notes(row: Result, outcome: Outcome, found: Placement | None) -> list[str]:
    """What a GPU row's figure includes and leaves out: where its nodes ran, host copies, TensorRT's engine
    build, int8's limits on the CUDA provider."""
    from perfkit.render import fmt_ns

    target, notes = row.target, []
    if not target.gpu or target.backend != "ort":
        return notes
    if found:
        notes.append(found.line())
    if "iobinding" not in target.modes:
        notes.append("the latency includes copying inputs to the device and outputs back; "
                     f"{target.backend}:{target.device},iobinding measures the compute alone")
    if target.device == "tensorrt":
        notes.append(f"TensorRT engine build: {fmt_ns(outcome.load_ns + outcome.first_call_ns)} (session creation "
                     f"{fmt_ns(outcome.load_ns)}, first call {fmt_ns(outcome.first_call_ns)}) — outside the "
                     "statistics; trt_engine_cache_enable=1 keeps engines between runs")
    if target.device == "cuda" and any(step.startswith("int8") for step in row.model.lineage):
        notes.append("int8 on the CUDA provider: it has no kernels for QDQ or QLinear int8 ops, so they run on the "
                     "CPU with copies both ways — use ort:tensorrt,trt_int8_enable=1 for int8 on the GPU, or fp16")
    return notes


def finish_row(row: Result, outcome: Outcome, f: Fed, ref: Reference | None,
               fail_on_fallback: bool = False) -> Result:
    """A measured row: statistics, stability and fallback warnings, status, accuracy against the reference."""
    t = outcome.timing
    summary = summarize(t.samples_ns)
    warnings = stability_warnings(summary, t.harness_ns, t.resolution_ns)
    requested = outcome.settings.get("requested", "")
    fallback = bool(requested) and outcome.providers[0] != requested
    if fallback:
        warnings.insert(0, f"fallback: asked for {requested}, onnxruntime ran {outcome.providers[0]}")
    status, reason = ("invalid", "non-finite outputs: " + "; ".join(outcome.nonfinite)) if outcome.nonfinite \
        else ("ok", "")
    accuracy = against(ref, outcome.output_names, outcome.check_outputs) if ref and outcome.check_outputs else ()
    measurement = Measurement(t.samples_ns, t.warmup_calls, t.warmup_ns, outcome.load_ns, outcome.first_call_ns,
                              t.harness_ns, t.resolution_ns, outcome.base_rss_bytes, outcome.peak_rss_bytes,
                              outcome.device_base_bytes, outcome.device_peak_bytes)
    found = placement(outcome.profile, requested) if row.target.gpu else None
    warnings += gpu_notes(row, outcome, found)
    if fail_on_fallback and found and found.fallback:
        status, reason = "failed", fallback_message(found)
    return replace(row, status=status, reason=reason, providers=outcome.providers, fallback=fallback,
                   settings=outcome.settings, measurement=measurement, summary=summary,
                   throughput=throughput(f.shapes.batch, summary.median), warnings=tuple(warnings),
                   accuracy=accuracy, profile=outcome.profile)


def measure_native(native: NativeModel, target: Target, f: Fed, spec: BenchSpec) -> Result:
    """The native model in its own framework: the reference itself, so it has no accuracy of its own."""
    import os

    model = Model(native.path, native.format, native.digest, (native.label,))
    missing = get_backend(target.backend).unavailable(target)
    if missing:
        return skipped_row(native, target, f, f"{missing} — no GPU row is measured here, and none pretends"
                           if target.device != "cpu" else missing)
    size = sum(p.stat().st_size for p in Path(native.path).rglob("*") if p.is_file()) \
        if os.path.isdir(native.path) else os.path.getsize(native.path)
    row = Result(model, target, f.shapes.batch, f.shapes.shapes, status="failed", size_bytes=size)
    case = Case(native.path, target, f.feeds, spec.plan, native=native)
    try:
        outcome: Outcome = call_in(run_case, case, spec.plan.timeout_s, spec.plan.isolate)
    except (CaseFailed, PerfkitError, Unsupported) as exc:
        return replace(row, status="skipped" if isinstance(exc, Unsupported) else "failed", reason=str(exc))
    except Exception as exc:
        return replace(row, reason=one_line(exc))
    return finish_row(row, outcome, f, None)


CONTEST_ROUNDS = 4  # interleaved passes over the contenders; the median of the round medians resists a bad pass


def contest(report: Report, rows: list[int], feeds: list[tuple[dict[str, Any], ...]], plan: Plan) -> Contest:
    """Re-time rows that the sweep could not tell apart, in interleaved rounds (A B C, C A B, …: each round
    in its own seeded order), so drift on the machine lands on all of them alike; each turn is a fresh
    isolated case with a shorter plan."""
    import random

    short = replace(plan, min_time_s=plan.min_time_s / 2, max_time_s=max(plan.max_time_s / 4, plan.min_time_s / 2))
    medians: dict[int, list[float]] = {i: [] for i in rows}
    for turn in range(CONTEST_ROUNDS):
        order = list(rows)
        random.Random(turn).shuffle(order)  # a row that always follows the same neighbour was seen to read slower
        for i in order:
            r = report.results[i]
            case = Case(r.model.path, r.target, feeds[i], short)
            try:
                outcome = call_in(run_case, case, plan.timeout_s, plan.isolate)
            except Exception:  # the row measured once already; a failure here only drops it from the contest
                medians[i].append(float("inf"))
                continue
            medians[i].append(summarize(outcome.timing.samples_ns).median)
    return Contest(tuple(rows), tuple(statistics.median(medians[i]) for i in rows), CONTEST_ROUNDS)


def run_warnings(env, fed: list[Fed]) -> tuple[str, ...]:
    out = []
    if conflict := conflicting_runtimes(env.packages):
        out.append(conflict)
    if env.load_average is not None and env.load_average / env.logical_cores > BUSY_LOAD:
        out.append(f"machine busy: load {env.load_average:.1f} on {env.logical_cores} cores before the run — "
                   "figures may be noisy; close other programs")
    filled = sorted({d for f in fed for d in f.shapes.filled})
    if filled:
        out.append(f"free dims filled with defaults: {', '.join(filled)} — set them with --dim NAME=VALUE, "
                   "--shape INPUT=D1xD2…, or --batch")
    return tuple(out)
