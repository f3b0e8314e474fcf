"""The rows of a run: which cases there are (variants × targets × workloads, the native model's own targets,
the session a variant's row runs with), and one planned case -> one Result row: the case run in an isolated
worker, then its statistics, warnings, status, accuracy against the reference, and what a GPU row's figure
includes and leaves out."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from perfkit.analysis.accuracy import against
from perfkit.analysis.placement import Placement, fallback_message, placement
from perfkit.analysis.stats import stability_warnings, summarize, throughput
from perfkit.backends import get_backend
from perfkit.core.model import Model, NativeModel
from perfkit.core.records import Outputs
from perfkit.core.report import Result
from perfkit.core.spec import BenchSpec, Target
from perfkit.measure.case import Case, Outcome, run_case
from perfkit.measure.isolate import Failure, call_guarded
from perfkit.measure.targets import SKIPPED_GPU
from perfkit.measure.workload import FeedSet
from perfkit.output.units import fmt_ns
from perfkit.prepare import Prepared, ReferenceRun
from perfkit.transforms.cache import Broken, Variant

Subject = Variant | Broken | NativeModel


@dataclass(frozen=True)
class PlannedCase:
    """A row to measure: what runs (a variant, one that could not be built, or the native model), where, on
    which feeds, compared with which reference outputs."""

    feeds: FeedSet
    reference: Outputs | None
    target: Target
    subject: Subject

    @property
    def label(self) -> str:
        s = self.subject
        return s.label if isinstance(s, NativeModel | Broken) else s.model.label


def plan_cases(prepared: Prepared, refs: tuple[ReferenceRun, ...], variants: list[Variant | Broken]
               ) -> list[PlannedCase]:
    """Per workload: the native model's rows first (it is the reference), then every variant on every target."""
    spec, native, cases = prepared.spec, prepared.native, []
    for f, ref in zip(prepared.feeds, refs, strict=True):
        if native:
            cases += [PlannedCase(f, ref.outputs, t, native) for t in native_targets(native, spec)]
        cases += [PlannedCase(f, ref.outputs, t, v) for t in spec.targets for v in variants]
    return cases


def measure_row(case: PlannedCase, spec: BenchSpec, skipped: dict[str, str],
                footprints: dict[str, tuple[int, dict[str, int]]]) -> Result:
    """The row for one case: skipped where its target cannot run here, else measured."""
    if case.target.label in skipped:
        return skipped_row(case, skipped[case.target.label])
    if isinstance(case.subject, NativeModel):
        return measure_native(case, case.subject, spec)
    if isinstance(case.subject, Broken):
        return _row(case, case.subject.as_model(), case.subject.status, reason=case.subject.reason)
    return measure_variant(case, case.subject, spec, footprints.get(case.subject.model.path))


def _row(case: PlannedCase, model: Model, status: str, *, reason: str = "", target: Target | None = None,
         size_bytes: int | None = None, ops: dict[str, int] | None = None, notes: tuple[str, ...] = ()) -> Result:
    """A row before its figures: what ran where, on which shapes, and its status so far."""
    return Result(model=model, target=target or case.target, batch=case.feeds.shapes.batch,
                  shapes=case.feeds.shapes.shapes, status=status, reason=reason, size_bytes=size_bytes,
                  ops=ops or {}, notes=notes)


def skipped_row(case: PlannedCase, reason: str) -> Result:
    """A case this machine cannot run: a row that says why, with no figure."""
    s = case.subject
    return _row(case, s.as_model() if isinstance(s, NativeModel | Broken) else s.model, "skipped", reason=reason)


def measure_variant(case: PlannedCase, variant: Variant, spec: BenchSpec,
                    footprint: tuple[int, dict[str, int]] | None) -> Result:
    model, plan = variant.model, spec.plan
    target = session_target(variant, case.target)
    size, ops = footprint or (None, {})
    row = _row(case, model, "failed", target=target, size_bytes=size, ops=ops, notes=variant.notes)
    job = Case(model.path, target, case.feeds.feeds, plan, case.feeds.checks if case.reference else (), spec.profile)
    outcome = call_guarded(run_case, job, plan.timeout_s, plan.isolate)
    if isinstance(outcome, Failure):  # any error in one case fails that row only; the run goes on
        return replace(row, reason=outcome.reason)
    return finish_row(row, outcome, case.reference, spec.fail_on_fallback)


def measure_native(case: PlannedCase, native: NativeModel, spec: BenchSpec) -> Result:
    """The native model in its own framework: the reference itself, so it has no accuracy of its own."""
    missing = get_backend(case.target.backend).unavailable(case.target)
    if missing:
        return skipped_row(case, f"{missing} — {SKIPPED_GPU}" if case.target.device != "cpu" else missing)
    size = sum(p.stat().st_size for p in Path(native.path).rglob("*") if p.is_file()) \
        if os.path.isdir(native.path) else os.path.getsize(native.path)
    row = _row(case, native.as_model(), "failed", size_bytes=size)
    job = Case(native.path, case.target, case.feeds.feeds, spec.plan, native=native)
    outcome = call_guarded(run_case, job, spec.plan.timeout_s, spec.plan.isolate)
    if isinstance(outcome, Failure):
        return replace(row, status=outcome.status, reason=outcome.reason)
    return finish_row(row, outcome, None)


def finish_row(row: Result, outcome: Outcome, ref: Outputs | None, fail_on_fallback: bool = False) -> Result:
    """A measured row: statistics, stability and fallback warnings, status, accuracy against the reference."""
    m = outcome.measurement
    summary = summarize(m.samples_ns)
    warnings = stability_warnings(summary, m.harness_ns, m.resolution_ns)
    requested = outcome.settings.get("requested", "")
    fallback = bool(requested) and outcome.providers[0] != requested
    if fallback:
        warnings.insert(0, f"fallback: asked for {requested}, onnxruntime ran {outcome.providers[0]}")
    status, reason = ("invalid", "non-finite outputs: " + "; ".join(outcome.nonfinite)) if outcome.nonfinite \
        else ("ok", "")
    accuracy = against(ref, outcome.checked) if ref and outcome.checked else ()
    found = placement(outcome.profile, requested) if row.target.gpu else None
    warnings += gpu_notes(row, outcome, found)
    if fail_on_fallback and found and found.fallback:
        status, reason = "failed", fallback_message(found)
    return replace(row, status=status, reason=reason, providers=outcome.providers, fallback=fallback,
                   settings=outcome.settings, measurement=m, summary=summary,
                   throughput=throughput(row.batch, summary.median), warnings=tuple(warnings),
                   accuracy=accuracy, profile=outcome.profile)


def gpu_notes(row: Result, outcome: Outcome, found: Placement | None) -> list[str]:
    """What a GPU row's figure includes and leaves out: where its nodes ran, host copies, TensorRT's engine
    build, int8's limits on the CUDA provider."""
    target, notes = row.target, list[str]()
    if not target.gpu or target.backend != "ort":
        return notes
    if found:
        notes.append(found.line())
    if "iobinding" not in target.modes:
        notes.append("the latency includes copying inputs to the device and outputs back; "
                      f"{target.backend}:{target.device},iobinding measures the compute alone")
    load_ns, first_ns = outcome.measurement.load_ns, outcome.measurement.first_call_ns
    if target.device == "tensorrt":
        notes.append(f"TensorRT engine build: {fmt_ns(load_ns + first_ns)} (session creation {fmt_ns(load_ns)}, "
                     f"first call {fmt_ns(first_ns)}) — outside the statistics; trt_engine_cache_enable=1 keeps "
                     "engines between runs")
    if target.device == "cuda" and any(step.startswith("int8") for step in row.model.lineage):
        notes.append("int8 on the CUDA provider: it has no kernels for QDQ or QLinear int8 ops, so they run on the "
                     "CPU with copies both ways — use ort:tensorrt,trt_int8_enable=1 for int8 on the GPU, or fp16")
    return notes


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


def session_target(variant: Variant, target: Target) -> Target:
    """A file that ends in `ort-opt:LEVEL` already holds that optimization: its session runs with graph
    optimization off (as onnxruntime advises for offline-optimized models), so the row shows what LEVEL
    does, not what the session's own level would redo."""
    if variant.model.lineage and variant.model.lineage[-1].startswith("ort-opt"):
        return replace(target, opt_level="disable")
    return target
