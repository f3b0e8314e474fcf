"""Orchestration: spec -> model -> workloads -> targets -> cases -> Report, saved after every row."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from perfkit.backends import get_backend
from perfkit.case import Case, Outcome, run_case
from perfkit.env import conflicting_runtimes, fingerprint
from perfkit.errors import CaseFailed, PerfkitError
from perfkit.isolate import call_isolated, one_line
from perfkit.model import Model, Signature, open_onnx, read_signature
from perfkit.report import Measurement, Report, Result
from perfkit.spec import BenchSpec, Plan, Target, Workload
from perfkit.stats import stability_warnings, summarize, throughput
from perfkit.store import Store
from perfkit.workload import Shapes, load_inputs, resolve_shapes, synthesize

BUSY_LOAD = 0.5  # warn when the 1-minute load per core is above this before we start: timings will be noisy


@dataclass(frozen=True)
class Fed:
    shapes: Shapes
    feeds: tuple[dict[str, Any], ...]


def run(spec: BenchSpec, on_progress: Callable[[str], None] = lambda _: None,
        command: tuple[str, ...] = ()) -> Report:
    """Everything user-facing is checked before anything is measured or written; then one row per case."""
    model, proto = open_onnx(spec.model)
    signature = read_signature(proto)
    fed = [feed(signature, wl, spec.model) for wl in spec.workloads]
    check_targets(model, spec)
    env = fingerprint()
    report = Report(run_id=time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), spec=spec, environment=env,
                    warnings=run_warnings(env, fed), command=command)
    store = Store(spec.results_dir) if spec.results_dir else None
    if store:
        store.begin(report)
    cases = [(t, f) for t in spec.targets for f in fed]
    try:
        for i, (target, f) in enumerate(cases, 1):
            on_progress(f"[{i}/{len(cases)}] {model.label} on {target.label}, batch {f.shapes.batch}")
            result = measure_case(model, target, f, spec.plan)
            report = replace(report, results=(*report.results, result))
            if store:
                store.add(report, result)
        report = replace(report, complete=True)
    finally:
        if store:
            store.finish(report)
    return report


def feed(signature: Signature, wl: Workload, subject: str) -> Fed:
    if wl.inputs:
        arrays, shapes = load_inputs(wl.inputs, signature)
        return Fed(shapes, (arrays,))
    shapes = resolve_shapes(signature, wl, subject)
    return Fed(shapes, tuple(synthesize(signature, shapes, wl.seed, wl.distinct_feeds, subject)))


def check_targets(model: Model, spec: BenchSpec) -> None:
    """A missing provider is the user's error (unless --allow-fallback); so is a model that will not load."""
    for target in spec.targets:
        reason = get_backend(target.backend).unavailable(target)
        if reason and (not spec.allow_fallback or "not installed" in reason):
            raise PerfkitError(f"--target {target.label}", reason,
                               "pick one of those, or pass --allow-fallback to run on what is there")
    probe = call_isolated if spec.plan.isolate else (lambda fn, arg, _: fn(arg))
    try:
        ran = probe(open_each, (model.path, spec.targets), spec.plan.timeout_s)
    except CaseFailed as exc:
        raise PerfkitError(model.path, f"onnxruntime failed while loading it: {exc}",
                           "check the model with onnx.checker.check_model, or report it to onnxruntime") from None
    for target, (requested, providers) in zip(spec.targets, ran, strict=True):
        if providers[0] != requested and not spec.allow_fallback:
            raise PerfkitError(f"--target {target.label}", f"asked for {requested}, onnxruntime ran {providers[0]}",
                               "fix the provider's libraries, or pass --allow-fallback")


def open_each(arg: tuple[str, tuple[Target, ...]]) -> list[tuple[str, tuple[str, ...]]]:
    """Load the model on every target once: (requested provider, providers that ran) for each."""
    path, targets = arg
    out = []
    for target in targets:
        session = get_backend(target.backend).open(path, target)
        out.append((session.settings.get("requested", ""), session.providers))
        session.close()
    return out


def measure_case(model: Model, target: Target, f: Fed, plan: Plan) -> Result:
    row = Result(model, target, f.shapes.batch, f.shapes.shapes, status="failed")
    case = Case(model.path, target, f.feeds, plan)
    try:
        outcome: Outcome = call_isolated(run_case, case, plan.timeout_s) if plan.isolate else run_case(case)
    except (CaseFailed, PerfkitError) as exc:
        return replace(row, reason=str(exc))
    except Exception as exc:  # in-process (--no-isolate): any error in one case fails that row only
        return replace(row, reason=one_line(exc))
    t = outcome.timing
    summary = summarize(t.samples_ns)
    warnings = stability_warnings(summary, t.harness_ns, t.resolution_ns)
    requested = outcome.settings.get("requested", "")
    fallback = bool(requested) and outcome.providers[0] != requested
    if fallback:
        warnings.insert(0, f"fallback: asked for {requested}, onnxruntime ran {outcome.providers[0]}")
    status, reason = ("invalid", "non-finite outputs: " + "; ".join(outcome.nonfinite)) if outcome.nonfinite \
        else ("ok", "")
    measurement = Measurement(t.samples_ns, t.warmup_calls, t.warmup_ns, outcome.load_ns, outcome.first_call_ns,
                              t.harness_ns, t.resolution_ns, outcome.base_rss_bytes, outcome.peak_rss_bytes)
    return replace(row, status=status, reason=reason, providers=outcome.providers, fallback=fallback,
                   settings=outcome.settings, measurement=measurement, summary=summary,
                   throughput=throughput(f.shapes.batch, summary.median), warnings=tuple(warnings))


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
