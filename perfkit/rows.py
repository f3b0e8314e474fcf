"""The rows of a run: which cases there are (variants × targets × workloads, the native model's own targets,
the session a variant's row runs with) and which are compared with which; the cases measured together in
interleaved rounds (or one by one with --no-interleave), each in its own worker; then each row's statistics,
warnings, status, accuracy against the reference (and on the --eval labels beside the reference's), and what a
GPU row's figure includes and leaves out."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perfkit.analysis.accuracy import against
from perfkit.analysis.placement import Placement, fallback_message, placement
from perfkit.analysis.stats import stability_warnings, summarize, throughput
from perfkit.analysis.task import task_accuracy
from perfkit.analysis.verdict import is_native_row
from perfkit.backends import get_backend
from perfkit.core.model import Model, NativeModel
from perfkit.core.records import Outputs, TaskAccuracy
from perfkit.core.report import Result
from perfkit.core.spec import BenchSpec, Target
from perfkit.measure.case import Case, Outcome, run_case
from perfkit.measure.env import available_memory
from perfkit.measure.interleave import Tick, interleave, memory_groups
from perfkit.measure.isolate import Failure, call_guarded
from perfkit.measure.targets import SKIPPED_GPU
from perfkit.measure.workload import FeedSet
from perfkit.output.units import fmt_bytes, fmt_ns
from perfkit.prepare import Prepared, ReferenceRun
from perfkit.transforms.cache import Broken, Variant

Subject = Variant | Broken | NativeModel


@dataclass(frozen=True)
class PlannedCase:
    """A row to measure: what runs (a variant, one that could not be built, or the native model), where, on
    which feeds, compared with which reference outputs (and with --eval, the reference's task metrics)."""

    feeds: FeedSet
    reference: Outputs | None
    target: Target
    subject: Subject
    task: TaskAccuracy | None = None

    @property
    def label(self) -> str:
        s = self.subject
        return s.label if isinstance(s, NativeModel | Broken) else s.model.label


def plan_cases(prepared: Prepared, refs: tuple[ReferenceRun, ...], variants: list[Variant | Broken]
               ) -> list[PlannedCase]:
    """Per workload: the native model's rows first (it is the reference), then every variant on every target.
    The native model's CPU row made the reference outputs, so the reference's task metrics are its own."""
    spec, native, cases = prepared.spec, prepared.native, []
    for f, ref in zip(prepared.feeds, refs, strict=True):
        if native:
            own = ref.task if not ref.native_error else None
            cases += [PlannedCase(f, ref.outputs, t, native, own if k == 0 else None)
                      for k, t in enumerate(native_targets(native, spec))]
        cases += [PlannedCase(f, ref.outputs, t, v, ref.task) for t in spec.targets for v in variants]
        if prepared.tuned:
            target = replace(prepared.tuned.target, compare_as=spec.targets[0].label)
            cases.append(PlannedCase(f, ref.outputs, target, tuned_variant(prepared), ref.task))
    return cases


TUNED = "tuned"  # the last step of a --config row's lineage: its file as tune chose it, on the session it chose


def tuned_variant(prepared: Prepared) -> Variant:
    """The --config's model file as a row's variant, its lineage as tune built it."""
    assert prepared.tuned and prepared.tuned_model
    return Variant(replace(prepared.tuned_model, lineage=(*prepared.tuned.lineage, TUNED)),
                   notes=("opened as perfkit-tuned.json says",))


WORKER_BYTES = 100 << 20  # a spawned worker with Python, numpy and onnxruntime loaded, before any model
NATIVE_WORKER_BYTES = 400 << 20  # and with a framework (torch, TensorFlow) instead
MEMORY_SHARE = 0.6  # of the memory available at the start, what the open workers of one group may take


def measure_rows(cases: list[PlannedCase], spec: BenchSpec, skipped: dict[str, str],
                 footprints: dict[str, tuple[int, dict[str, int]]], on_tick: Callable[[Tick], None],
                 also: Sequence[tuple[int, int]] = ()) -> tuple[list[Result], str | None]:
    """Every case's row: the cases that run measured together in interleaved rounds (each in its own worker),
    the others (skipped, not built) as they are; and a note when memory split the sweep into groups. `also`:
    (case, case) comparisons to time until decided beside those the verdict makes."""
    rows: dict[int, Result] = {}
    jobs: dict[int, tuple[Result, Case]] = {}
    for k, case in enumerate(cases):
        job = row_job(case, spec, skipped, footprints)
        if isinstance(job, Result):
            rows[k] = job
        else:
            jobs[k] = job
    order = list(jobs)
    pairs = [(order.index(b), order.index(k)) for b, k in (*compared_pairs(cases), *also) if b in jobs and k in jobs]
    sizes = [memory_estimate(jobs[k][0]) for k in order]
    available = available_memory()
    groups = memory_groups(sizes, pairs, int(available * MEMORY_SHARE)) if available else [list(range(len(order)))]
    outcomes = interleave([jobs[k][1] for k in order], spec.plan, pairs, groups=groups, on_tick=on_tick)
    for k, outcome in zip(order, outcomes, strict=True):
        rows[k] = finish_job(jobs[k][0], cases[k], outcome, spec)
    note = None
    if len(groups) > 1:
        note = (f"memory: the workers of all {len(order)} rows would need about {fmt_bytes(sum(sizes))}, more than "
                f"{MEMORY_SHARE:.0%} of the {fmt_bytes(available)} available; measured in {len(groups)} groups of "
                f"rows ({'; '.join(', '.join(str(order[i] + 1) for i in g) for g in groups)}), each compared row "
                "with its baseline in the same group — close other programs to measure them all together")
    return [rows[k] for k in range(len(cases))], note


def compared_pairs(cases: list[PlannedCase]) -> list[tuple[int, int]]:
    """(baseline, row) for every comparison the verdict makes: each variant against the model as given on
    the same target and feeds; the model as given against its native model on the same feeds."""
    base_of: dict[tuple[int, str], int] = {}
    for k, c in enumerate(cases):
        if isinstance(c.subject, Variant) and c.subject.model.is_base:
            base_of.setdefault((id(c.feeds), c.target.group), k)
    pairs = []
    for k, c in enumerate(cases):
        if isinstance(c.subject, NativeModel):
            pairs += [(k, b) for (feeds, _), b in base_of.items() if feeds == id(c.feeds)]
        elif (b := base_of.get((id(c.feeds), c.target.group))) is not None and b != k:
            pairs.append((b, k))
    return pairs


def memory_estimate(row: Result) -> int:
    """What the two workers of this row will hold: each its model about twice (file and session) and the
    runtime."""
    runtime = NATIVE_WORKER_BYTES if is_native_row(row) else WORKER_BYTES
    return 2 * ((row.size_bytes or 0) * 2 + runtime)


def measure_row(case: PlannedCase, spec: BenchSpec, skipped: dict[str, str],
                footprints: dict[str, tuple[int, dict[str, int]]]) -> Result:
    """The row for one case timed on its own (`--no-interleave`): skipped where its target cannot run here."""
    job = row_job(case, spec, skipped, footprints)
    if isinstance(job, Result):
        return job
    row, work = job
    return finish_job(row, case, call_guarded(run_case, work, spec.plan.timeout_s, spec.plan.isolate), spec)


def row_job(case: PlannedCase, spec: BenchSpec, skipped: dict[str, str],
            footprints: dict[str, tuple[int, dict[str, int]]]) -> Result | tuple[Result, Case]:
    """A finished row for a case that does not run (skipped, not built), else its row so far and the job."""
    if case.target.label in skipped:
        return skipped_row(case, skipped[case.target.label])
    s = case.subject
    if isinstance(s, Broken):
        return _row(case, s.as_model(), s.status, reason=s.reason)
    if isinstance(s, NativeModel):
        missing = get_backend(case.target.backend).unavailable(case.target)
        if missing:
            return skipped_row(case, f"{missing} — {SKIPPED_GPU}" if case.target.device != "cpu" else missing)
        native_size = sum(p.stat().st_size for p in Path(s.path).rglob("*") if p.is_file()) \
            if os.path.isdir(s.path) else os.path.getsize(s.path)
        return _row(case, s.as_model(), "failed", size_bytes=native_size), \
            Case(s.path, case.target, case.feeds.feeds, spec.plan, native=s)
    if case.target.compare_as and (missing := get_backend(case.target.backend).unavailable(case.target)):
        return skipped_row(case, f"{missing} — {SKIPPED_GPU}" if case.target.gpu else missing)  # a config's target
    target = session_target(s, case.target)
    size, ops = footprints.get(s.model.path) or (None, {})
    row = _row(case, s.model, "failed", target=target, size_bytes=size, ops=ops, notes=s.notes)
    checks = case.feeds.checks if case.reference else ()
    return row, Case(s.model.path, target, case.feeds.feeds, spec.plan, checks, spec.profile)


def finish_job(row: Result, case: PlannedCase, outcome: Outcome | Failure, spec: BenchSpec) -> Result:
    """Any error in one case fails that row only (a native model's Unsupported skips it); the run goes on.
    The native model is the reference itself, so it has no accuracy of its own."""
    if isinstance(outcome, Failure):
        native = isinstance(case.subject, NativeModel)
        return replace(row, status=outcome.status if native else "failed", reason=outcome.reason)
    if isinstance(case.subject, NativeModel):
        return replace(finish_row(row, outcome, None), task=case.task)
    return finish_row(row, outcome, case.reference, spec.fail_on_fallback, ref_task=case.task,
                      labels=case.feeds.labels)


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


def finish_row(row: Result, outcome: Outcome, ref: Outputs | None, fail_on_fallback: bool = False, *,
               ref_task: TaskAccuracy | None = None, labels: Any = None) -> Result:
    """A measured row: statistics, stability and fallback warnings, status, accuracy against the reference;
    with the reference's task metrics (`ref_task`) and the labels of the check feeds, the row's beside them."""
    m = outcome.measurement
    summary = summarize(m.samples_ns, m.blocks)
    warnings = stability_warnings(summary, m.harness_ns, m.resolution_ns)
    requested = outcome.settings.get("requested", "")
    fallback = bool(requested) and outcome.providers[0] != requested
    if fallback:
        warnings.insert(0, f"fallback: asked for {requested}, onnxruntime ran {outcome.providers[0]}")
    status, reason = ("invalid", "non-finite outputs: " + "; ".join(outcome.nonfinite)) if outcome.nonfinite \
        else ("ok", "")
    accuracy = against(ref, outcome.checked) if ref and outcome.checked else ()
    judged = task_accuracy(ref_task, outcome.checked, labels) \
        if ref_task and outcome.checked and labels is not None else None
    found = placement(outcome.profile, requested) if row.target.gpu else None
    warnings += gpu_notes(row, outcome, found)
    if fail_on_fallback and found and found.fallback:
        status, reason = "failed", fallback_message(found)
    return replace(row, status=status, reason=reason, providers=outcome.providers, fallback=fallback,
                   settings=outcome.settings, measurement=m, summary=summary,
                   throughput=throughput(row.batch, summary.median), warnings=tuple(warnings),
                   accuracy=accuracy, profile=outcome.profile, task=judged)


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
    """The CPU, and for a PyTorch or transformers model also cuda when a GPU target was asked for."""
    targets = [native_target(native, spec)]
    if native.framework in ("torch", "hf") and any(t.device in ("cuda", "tensorrt") for t in spec.targets):
        device_id = next((dict(t.provider_options).get("device_id") for t in spec.targets if t.gpu), None)
        targets.append(Target(native.framework, "cuda", (("device_id", device_id),) if device_id else ()))
    return targets


def session_target(variant: Variant, target: Target) -> Target:
    """A file that ends in `ort-opt:LEVEL` already holds that optimization: its session runs with graph
    optimization off (as onnxruntime advises for offline-optimized models), so the row shows what LEVEL
    does, not what the session's own level would redo."""
    if variant.model.lineage and variant.model.lineage[-1].startswith("ort-opt"):
        return replace(target, opt_level="disable")
    return target
