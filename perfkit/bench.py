"""`perfkit bench`: spec -> prepared model and feeds -> targets checked -> reference outputs (and task metrics on
--eval labels) -> variants -> one row per case, every case in its own worker, all timed together in interleaved
rounds (or one after another with --no-interleave, each row saved as it comes) -> Report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from perfkit.core.records import Environment
from perfkit.core.report import Report, new_run_id, now_stamp
from perfkit.core.spec import BenchSpec
from perfkit.files.onnx_file import disk_size
from perfkit.files.tuned import differences
from perfkit.measure.env import conflicting_runtimes, fingerprint
from perfkit.measure.interleave import Tick
from perfkit.measure.targets import check_targets
from perfkit.measure.workload import SYNTHETIC_CALIBRATION, nan_inputs
from perfkit.native.frameworks import startup_note
from perfkit.output.store import Store
from perfkit.prepare import Prepared, Progress, ReferenceRun, build_variants, model_warnings, prepare, references
from perfkit.rows import measure_row, measure_rows, plan_cases
from perfkit.transforms.cache import Broken, Variant

BUSY_LOAD = 0.5  # warn when the 1-minute load per core is above this before we start: timings will be noisy


def run(spec: BenchSpec, on_progress: Progress = lambda _: None, command: tuple[str, ...] = (),
        on_tick: Callable[[Tick], None] = lambda _: None) -> Report:
    """Everything user-facing is checked before anything is measured or written; then one row per case.
    `on_tick` hears from the interleaving scheduler between blocks (a progress bar)."""
    prepared = prepare(spec, on_progress)
    spec = prepared.spec
    skipped = check_targets(prepared.model, spec)
    # Before the run is begun in the store: --eval labels that do not fit the reference's outputs are a user error.
    refs = references(prepared, on_progress, fall_back_to_conversion=True)
    env = fingerprint()
    report = Report(run_id=new_run_id(), created=now_stamp(), spec=spec, environment=env,
                    warnings=(*run_warnings(env, prepared), *reference_warnings(prepared, refs)), command=command,
                    accuracy_on=accuracy_on(prepared), signature=prepared.signature)
    store = Store(spec.results_dir, spec.store) if spec.results_dir else None
    if store:
        store.begin(report)
    try:
        built = build_variants(prepared, refs[0].outputs, env.cpu_flags, on_progress)
        variants: list[Variant | Broken] = [Variant(prepared.model), *built]
        # Size and op counts once per file, not once per target and batch.
        footprints = {v.model.path: disk_size(v.model.path) for v in variants if isinstance(v, Variant)}
        cases = plan_cases(prepared, refs, variants)
        if spec.plan.interleave:
            native = prepared.native.framework if prepared.native else None
            on_progress(f"timing {len(cases)} rows in interleaved rounds{startup_note(native)}")
            results, note = measure_rows(cases, spec, skipped, footprints, on_tick)
            report = replace(report, warnings=(*report.warnings, *([note] if note else [])))
        else:
            results = []
            for i, case in enumerate(cases, 1):
                on_progress(f"[{i}/{len(cases)}] {case.label} on {case.target.label}, batch {case.feeds.shapes.batch}")
                results.append(measure_row(case, spec, skipped, footprints))
                if store:
                    store.add(replace(report, results=tuple(results)), results[-1])
        report = replace(report, results=tuple(results), complete=True)
        if store and spec.plan.interleave:
            for i, result in enumerate(results, 1):
                store.add(replace(report, results=tuple(results[:i])), result)
    finally:
        if store:
            store.finish(report)
    return report


def run_warnings(env: Environment, prepared: Prepared) -> tuple[str, ...]:
    """What the whole run should be read with: the model upgraded (--upgrade-opset), an fp16 model on the CPU,
    conflicting runtimes, a busy machine, dims filled with defaults, calibration on synthetic data."""
    out = list(model_warnings(prepared))
    if conflict := conflicting_runtimes(env.packages):
        out.append(conflict)
    if env.load_average is not None and env.load_average / env.logical_cores > BUSY_LOAD:
        out.append(f"machine busy: load {env.load_average:.1f} on {env.logical_cores} cores before the run — "
                   "figures may be noisy; close other programs")
    filled = sorted({d for f in prepared.feeds for d in f.shapes.filled})
    if filled:
        out.append(f"free dims filled with defaults: {', '.join(filled)} — set them with --dim NAME=VALUE, "
                   "--shape INPUT=D1xD2…, or --batch")
    if prepared.calibration.synthetic and not prepared.spec.calibration:
        out.append(SYNTHETIC_CALIBRATION)
    for wl, f in zip(prepared.spec.workloads, prepared.feeds, strict=True):
        if wl.inputs and (found := nan_inputs(f.feeds[0])):
            out.append(f"{wl.inputs}: {'; '.join(found)} — rows whose outputs turn NaN are marked invalid; clean "
                       "the data, unless the model imputes missing values")
    if (tuned := prepared.tuned) and prepared.tuned_model:
        here = prepared.tuned_model.digest
        out += [f"{prepared.spec.config}: {d}" for d in differences(tuned, prepared.model.digest, env, here)]
        if any(f.shapes.shapes != tuned.shapes for f in prepared.feeds):
            shown = ", ".join(f"{n} {'x'.join(map(str, d))}" for n, d in tuned.shapes)
            out.append(f"{prepared.spec.config}: tuned at {shown}; measured here at other shapes, where its settings "
                       "may not be the fastest")
    return tuple(out)



def accuracy_on(prepared: Prepared) -> str:
    """What the accuracy columns are judged on, said once under the table; synthetic feeds with the fix."""
    if not prepared.compared:
        return ""
    text = "; ".join(dict.fromkeys(f.checks_from for f in prepared.feeds))
    if any(f.synthetic_checks for f in prepared.feeds):
        text += " — random values, not your data: give --calibration or --inputs to judge on real inputs"
    return text


def reference_warnings(prepared: Prepared, refs: tuple[ReferenceRun, ...]) -> list[str]:
    """Workloads whose rows are compared with something else than planned, or with nothing."""
    out = []
    for f, ref in zip(prepared.feeds, refs, strict=True):
        if ref.native_error:
            out.append(f"batch {f.shapes.batch}: the native model failed on the check feeds ({ref.native_error}); "
                       "the variants are compared with the ONNX conversion instead")
        if ref.error:
            out.append(f"no accuracy for batch {f.shapes.batch}: the reference run failed ({ref.error})")
    return out
