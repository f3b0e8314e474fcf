"""The steps `perfkit tune` is made of: the model files worth timing (the variants built, each judged against
the accuracy budget before any timing, an int8 one that misses it repaired toward float until it fits), the
candidates of each phase as cases, the judge that drops a candidate during the halving, and the tuned folder."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perfkit.analysis.accuracy import Budget, against, within
from perfkit.analysis.task import task_accuracy
from perfkit.core.records import OutputAccuracy, Outputs, TaskAccuracy
from perfkit.core.spec import Plan, Target
from perfkit.measure.case import Case, Outcome, session_outputs
from perfkit.measure.halving import Entrant
from perfkit.measure.isolate import Failure, call_guarded
from perfkit.measure.workload import FeedSet
from perfkit.output.units import fmt_bytes
from perfkit.prepare import Prepared, Progress, build_context
from perfkit.rows import session_target
from perfkit.space import int8_repairs, int8_trades, with_excluded
from perfkit.transforms import Step
from perfkit.transforms.cache import Broken, Variant, build_variant

EXCLUDE_COUNTS = (1, 2, 4, 8, 16)  # most sensitive nodes kept in float, doubling until the budget is met (at most
# half the quantized nodes: beyond that the file is a float model with Q/DQ around it, slower than either)


@dataclass(frozen=True, eq=False)  # feeds hold arrays: options are told apart by `key`
class Option:
    """A candidate of the search: a model file, the session around it, the feeds of its batch."""

    variant: Variant
    target: Target
    feeds: FeedSet

    @property
    def key(self) -> tuple[str, Target, int]:
        return self.variant.model.path, self.target, self.feeds.shapes.batch

    def case(self, plan: Plan, checks: bool = True) -> Case:
        return Case(self.variant.model.path, self.target, self.feeds.feeds, plan,
                    self.feeds.checks if checks else ())

    def entrant(self, plan: Plan) -> Entrant:
        return Entrant(self.case(plan), max(self.feeds.shapes.batch, 1))


@dataclass(frozen=True)
class Judged:
    """A variant's outputs against the reference: inside the budget or not, and its worst cosine."""

    ok: bool
    reason: str
    accuracy: tuple[OutputAccuracy, ...]

    @property
    def error(self) -> float | None:
        cosines = [a.cosine for a in self.accuracy if a.comparable and a.cosine is not None]
        return 1 - min(cosines) if cosines and all(math.isfinite(c) for c in cosines) else None


@dataclass(frozen=True)
class Reference:
    """What every candidate is judged against: the reference outputs on the check feeds, and with --eval the
    reference's task metrics and the labels of those feeds."""

    outputs: Outputs | None
    budget: Budget
    task: TaskAccuracy | None = None
    labels: Any = None


def judge_outputs(ref: Reference, checked: Outputs | None) -> Judged:
    """Outputs judged against the reference and the budget, task terms included; nothing to compare passes
    (no reference)."""
    if ref.outputs is None or checked is None:
        return Judged(True, "", ())
    accuracy = against(ref.outputs, checked)
    task = task_accuracy(ref.task, checked, ref.labels) if ref.task and ref.labels is not None else None
    ok, reason = within(accuracy, ref.budget, task)
    return Judged(ok, reason, accuracy)


@dataclass(frozen=True)
class JudgedFile:
    """A model file built, and how its outputs fared against the budget."""

    variant: Variant
    judged: Judged

    @property
    def label(self) -> str:
        return self.variant.model.label


@dataclass
class Built:
    """The model files the search may time, each judged, and what building them said."""

    files: list[JudgedFile]
    notes: list[str]


@dataclass
class _Builder:
    """One chain built (cached) and judged on the check feeds in the session its rows will use; what went
    wrong goes to `notes`."""

    prepared: Prepared
    ref: Reference
    cpu_flags: tuple[str, ...]
    on_progress: Progress
    notes: list[str]

    def __call__(self, chain: tuple[Step, ...]) -> JudgedFile | None:
        spec, label = self.prepared.spec, "+".join(s.label for s in chain)
        self.on_progress(f"[build] {label}")
        made = build_variant(self.prepared.model, chain, build_context(self.prepared, self.ref.outputs),
                             spec.cache_dir, spec.plan.timeout_s, spec.plan.isolate, self.cpu_flags)
        if isinstance(made, Broken):
            self.notes.append(f"{label} not built ({made.status}): {made.reason}")
            return None
        job = (made.model.path, session_target(made, spec.targets[0]), self.prepared.feeds[0].checks)
        got = call_guarded(session_outputs, job, spec.plan.timeout_s, spec.plan.isolate) if self.ref.outputs else None
        if isinstance(got, Failure):
            self.notes.append(f"{label} did not run ({got.reason})")
            return None
        return JudgedFile(made, judge_outputs(self.ref, got))


def build_files(prepared: Prepared, ref: Reference, cpu_flags: tuple[str, ...], deadline: float,
                on_progress: Progress) -> Built:
    """Each chain built and judged; then each int8 chain outside the budget repaired (per-channel, other
    calibrations, 7-bit weights, then its most sensitive nodes kept in float) until one fits. Every chain is
    built once before any is repaired; what is left when the deadline passes is not built, and said so."""
    out = Built([], [])
    build = _Builder(prepared, ref, cpu_flags, on_progress, out.notes)
    to_repair = []
    for chain in prepared.chains:
        if time.monotonic() > deadline:
            out.notes.append(f"time budget: {'+'.join(s.label for s in chain)} and later chains not built")
            break
        first = build(chain)
        if first is None:
            continue
        if first.judged.ok or not any(s.name.startswith("int8") for s in chain):
            out.files.append(first)
            if not first.judged.ok:
                out.notes.append(f"{first.label} outside the budget: {first.judged.reason}")
            continue
        out.notes.append(f"{first.label} outside the budget ({first.judged.reason}): repairing toward float")
        to_repair.append((chain, first))
    for chain, first in to_repair:
        if fixed := repair(chain, first, build, prepared, deadline, out.notes):
            out.files.append(fixed)
    trade(prepared, build, deadline, out)
    return out


def trade(prepared: Prepared, build: Build, deadline: float, out: Built) -> None:
    """With build time left, each int8 file inside the budget once more with less precision (per-tensor
    scales): faster where the budget allows it, and judged like the others."""
    built = {f.label for f in out.files}
    for chain in [c for c in prepared.chains if "+".join(s.label for s in c) in built]:
        for cheaper in int8_trades(chain):
            if time.monotonic() > deadline:
                return
            got = build(cheaper)
            if got and got.judged.ok and got.label not in built:
                out.files.append(got)
                out.notes.append(f"{got.label}: per-tensor scales are inside the budget too")


Build = Callable[[tuple[Step, ...]], "JudgedFile | None"]


def repair(chain: tuple[Step, ...], first: JudgedFile, build: Build, prepared: Prepared,
           deadline: float, notes: list[str]) -> JudgedFile | None:
    """The int8 chain's repairs in turn, the first inside the budget; then its most sensitive nodes (ranked
    layer by layer against the float model) kept in float, 1, 2, 4, … of them."""
    for fixed in int8_repairs(chain):
        if time.monotonic() > deadline:
            notes.append(f"time budget: the repair of {first.label} stopped before {fixed[-1].label}")
            return None
        got = build(fixed)
        if got and got.judged.ok:
            notes.append(f"{got.label} is inside the budget")
            return got
    if time.monotonic() > deadline:
        notes.append(f"time budget: {first.label}'s nodes were not ranked by sensitivity")
        return None
    ranked = sensitive(first.variant, prepared)
    if isinstance(ranked, str):
        notes.append(f"could not rank {first.label}'s nodes by sensitivity: {ranked}")
        return None
    for count in EXCLUDE_COUNTS:
        if count > len(ranked) // 2 or time.monotonic() > deadline:  # more than half in float: float with casts
            break
        excluded = with_excluded(chain, tuple(ranked[:count]))
        got = build(excluded) if excluded else None
        if got and got.judged.ok:
            notes.append(f"{first.label} fits the budget with its {count} most sensitive node(s) in float: "
                         f"{', '.join(ranked[:count])}")
            return got
    notes.append(f"no int8 repair of {first.label} fits the budget")
    return None


def sensitive(quantized: Variant, prepared: Prepared) -> list[str] | str:
    """Node names of the quantized variant, most sensitive first, or why they cannot be ranked."""
    from perfkit.transforms.sensitivity import rank_nodes

    got = call_guarded(rank_nodes, (prepared.model.path, quantized.model.path, prepared.feeds[0].checks[:4]),
                       prepared.spec.plan.timeout_s, prepared.spec.plan.isolate)
    return got.reason if isinstance(got, Failure) else list(got)


def judge_for(refs: list[Reference], max_memory: int | None) -> Callable[[int, Outcome], str]:
    """The halving's judge: a reason to drop entrant i (its outputs, against `refs[i]`, outside the budget —
    denormals flushed to zero can change them — or its peak memory over the cap), or ""."""

    def judge(i: int, outcome: Outcome) -> str:
        if outcome.nonfinite:
            return "non-finite outputs: " + "; ".join(outcome.nonfinite)
        verdict = judge_outputs(refs[i], outcome.checked)
        if not verdict.ok:
            return f"outside the accuracy budget: {verdict.reason}"
        peak = outcome.measurement.peak_rss_bytes
        if max_memory is not None and peak is not None and peak > max_memory:
            return f"peak memory {fmt_bytes(peak)} over --max-memory {fmt_bytes(max_memory)}"
        return ""

    return judge


def unique(options: list[Option]) -> list[Option]:
    """Each configuration once, in order."""
    seen: dict[tuple, Option] = {}
    for o in options:
        seen.setdefault(o.key, o)
    return list(seen.values())
