"""`perfkit compare OLD NEW` on model files (or, with --rerun, on the model files of two stored runs): both
measured now, in the same interleaved rounds, on the same feeds, and judged on the paired per-round ratio — the
A/B-in-one-job design `asv continuous` uses for code, and the one a CI gate on a shared runner should use. NEW
is also checked against OLD's outputs, so the gate sees an accuracy change as well as a speed change.

`doctor`'s A/A check is the same flow with one file on both sides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from perfkit.analysis.comparison import Comparison, case_key, from_ratio
from perfkit.analysis.verdict import judge
from perfkit.core.errors import PerfkitError
from perfkit.core.report import Report, new_run_id, now_stamp
from perfkit.core.spec import BenchSpec
from perfkit.files.onnx_file import disk_size
from perfkit.measure.env import fingerprint
from perfkit.measure.interleave import Tick
from perfkit.measure.targets import check_targets
from perfkit.prepare import Progress, prepare, references
from perfkit.rows import PlannedCase, measure_rows
from perfkit.transforms.cache import Variant


def measure_pair(spec: BenchSpec, new_model: str, on_progress: Progress = lambda _: None,
                 on_tick: Callable[[Tick], None] = lambda _: None) -> Report:
    """OLD (`spec.model`) and NEW on every target and workload of `spec`, interleaved: rows alternate OLD, NEW."""
    old = prepare(spec, on_progress, compare=True)
    new = prepare(replace(old.spec, model=new_model, variants=()), on_progress, compare=False)
    names = ([i.name for i in old.signature.inputs], [i.name for i in new.signature.inputs])
    if names[0] != names[1]:
        raise PerfkitError(new_model, f"takes inputs {', '.join(names[1])}, not OLD's {', '.join(names[0])}",
                           "compare two versions of one model, which take the same inputs")
    spec = old.spec
    refs = references(old, on_progress)
    sides = [Variant(old.model), Variant(new.model)]
    cases = [PlannedCase(f, ref.outputs, t, v) for f, ref in zip(old.feeds, refs, strict=True)
             for t in spec.targets for v in sides]
    footprints = {v.model.path: disk_size(v.model.path) for v in sides}
    env = fingerprint()
    on_progress(f"timing {spec.model} and {new_model} in interleaved rounds")
    results, note = measure_rows(cases, spec, check_targets(old.model, spec), footprints, on_tick)
    return Report(run_id=new_run_id(), created=now_stamp(), spec=spec, environment=env,
                  results=tuple(results), warnings=(note,) if note else (), complete=True)


def pair_comparison(report: Report, new_model: str) -> Comparison:
    """The measured pair as a comparison: per target and workload, NEW's change against OLD with the paired
    interval."""
    verdict = judge(report)
    rows = report.results
    cases = tuple(from_ratio(case_key(rows[i]).replace(rows[i].model.label + " on ", "", 1), rows[i], rows[i + 1],
                             verdict.speedups[i + 1], report.spec.plan.threshold)
                  for i in range(0, len(rows), 2))
    rounds = max((len(r.measurement.blocks) for r in rows if r.measurement), default=0)
    title = (f"{report.spec.model} → {new_model}  (measured now in {rounds} interleaved rounds; a change is called "
             f"when it is at least {report.spec.plan.threshold:.0%} and its paired interval lies beyond half of that)")
    failed = [f"{r.model.path} on {r.target.label}: {r.status}: {r.reason}" for r in rows if r.reason]
    return Comparison(title, cases, (*report.warnings, *failed), report.spec.plan.threshold)
