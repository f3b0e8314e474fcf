"""`perfkit tune`: the fastest deployable configuration inside an accuracy budget. The model files are built and
judged first (outside the budget: repaired or gone before any timing); then three phases of successive halving
on interleaved rounds, each against onnxruntime's default session on the model as given — the model file, how
its threads work, memory and numerics; then the winner, the best variant with a default session and the
default itself are timed together, and the winner is returned only when it is significantly faster. The
tuned folder holds its model file, perfkit-tuned.json and a snippet that opens it with plain onnxruntime."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from perfkit import __version__
from perfkit.analysis.accuracy import parse_budget
from perfkit.analysis.stats import tail_ratio
from perfkit.analysis.verdict import ratio_between
from perfkit.core.errors import PerfkitError
from perfkit.core.records import Ratio
from perfkit.core.report import Report, Result, new_run_id, now_stamp
from perfkit.core.search import Candidate, Search, Trial, TunedConfig
from perfkit.core.spec import Plan, TuneSpec
from perfkit.measure.env import fingerprint
from perfkit.measure.halving import MIN_STAGE_S, OVERHEAD_S, Halving, halve
from perfkit.measure.interleave import Tick
from perfkit.measure.targets import check_targets
from perfkit.output.store import Store
from perfkit.prepare import Prepared, Progress, prepare, references
from perfkit.rows import PlannedCase, measure_rows, session_target
from perfkit.space import detail_settings, thread_settings
from perfkit.transforms.cache import Variant
from perfkit.tuning import Option, build_files, footprint, judge_for, unique, write_folder

BUILD_SHARE = 0.4  # of the time budget, what building model files may take before the rest is left unbuilt
CONFIRM_SHARE = 0.2  # of the time budget, kept for the final A/B: the decision gets the longest measurement
PHASE_SHARES = {"model": 0.35, "threads": 0.6, "details": 1.0}  # of the search time left when each phase starts
FIRST_STAGE_S = 0.6  # each candidate's first measurement; each later stage doubles it


@dataclass
class _Log:
    """The search as it goes: candidates by key, trials, notes."""

    candidates: list[Candidate]
    trials: list[Trial]
    notes: list[str]
    index: dict[tuple, int]

    def add(self, option: Option, judged_error: float | None = None) -> int:
        key = (option.variant.model.path, option.target, option.feeds.shapes.batch)
        if key not in self.index:
            self.index[key] = len(self.candidates)
            self.candidates.append(Candidate(option.variant.model.label, session_text(option),
                                             judged_error, None, footprint(option.variant.model.path)))
        return self.index[key]


def session_text(option: Option) -> str:
    batch = option.feeds.shapes.batch
    return ", ".join(filter(None, [option.target.session_text, f"batch {batch}" if batch != 1 else ""]))


def run(spec: TuneSpec, on_progress: Progress = lambda _: None, command: tuple[str, ...] = (),
        on_tick: Callable[[Tick], None] = lambda _: None, clock: Callable[[], float] = time.monotonic) -> Report:
    started = clock()
    deadline = started + spec.time_budget_s
    prepared = prepare(spec.bench, on_progress, compare=True)
    bench = prepared.spec
    check_targets(prepared.model, bench)
    env = fingerprint()
    refs = references(prepared, on_progress, fall_back_to_conversion=True)
    ref = refs[0].outputs
    budget = parse_budget(bench.accuracy_budget)
    base = Variant(prepared.model)
    target = replace(bench.targets[0], threads=None)
    default = Option(base, target, prepared.feeds[0])
    log = _Log([], [], [], {})
    log.add(default)
    need = minimum_seconds(len(prepared.chains) + 1)
    if spec.time_budget_s < need:
        raise PerfkitError(f"--time-budget {spec.time_budget_s:g}s", f"too short to time {len(prepared.chains) + 1} "
                           f"model files and their sessions even once (needs about {need:.0f} s)",
                           f"give --time-budget {max(60, round(need * 2))}s or more, or fewer --variants")
    built = build_files(prepared, ref, env.cpu_flags, started + spec.time_budget_s * BUILD_SHARE, on_progress)
    log.notes += built.notes
    judge = judge_for(ref, budget, spec.max_memory)
    search_end = deadline - spec.time_budget_s * CONFIRM_SHARE
    overhead = [OVERHEAD_S]

    def phase(name: str, options: list[Option], keep: int) -> list[Option]:
        options = [o for o in unique(options) if o.key != default.key]
        if not options:
            return []
        on_progress(f"[{name}] {len(options)} candidates, halving")
        plan = bench.plan
        entrants = [default.entrant(plan), *(o.entrant(plan) for o in options)]
        got = halve(entrants, plan, objective=spec.objective, keep=keep, first_stage_s=FIRST_STAGE_S,
                    deadline=clock() + (search_end - clock()) * PHASE_SHARES[name], overhead_s=overhead[0],
                    judge=judge, on_tick=on_tick, clock=clock)
        overhead[0] = got.overhead_s
        record(log, name, options, got)
        return [options[i - 1] for i in got.survivors]

    batches = feeds_for(spec, prepared)
    files = [Option(v, session_target(v, target), f) for v, j in built.variants if j.ok for f in batches]
    files += [Option(base, target, f) for f in batches[1:]]
    best_file = phase("model", files, keep=1)
    starts = [default, *best_file]
    threaded = [replace(o, target=t) for o in starts for t in
                thread_settings(o.target, env.logical_cores, env.physical_cores, bench.targets[0].threads)]
    best_threads = phase("threads", threaded, keep=1) or best_file or [default]
    top = best_threads[0]
    offline = bool(top.variant.model.lineage) and top.variant.model.lineage[-1].startswith("ort-opt")
    best = phase("details", [top, *(replace(top, target=t) for t in detail_settings(top.target, offline))], keep=1)
    winner = best[0] if best else top
    plan = confirm_plan(bench.plan, deadline - clock(), 3, overhead[0])
    return confirm(spec, replace(prepared, spec=replace(bench, plan=plan)), env, log, default,
                   best_file[0] if best_file else None, winner, ref, started, command, on_progress, on_tick, clock)


def confirm_plan(plan: Plan, left_s: float, cases: int, overhead_s: float) -> Plan:
    """The final A/B's plan: the bench plan, its maximum time cut to what the budget has left (its minimum
    stays: the decision is never made on less)."""
    fit = left_s / cases - 2 * overhead_s
    return replace(plan, max_time_s=max(plan.min_time_s, min(plan.max_time_s, fit)))


def feeds_for(spec: TuneSpec, prepared: Prepared) -> tuple:
    """The batches a candidate may use: every --batch for throughput, else the first."""
    return prepared.feeds if spec.objective == "throughput" else prepared.feeds[:1]


def minimum_seconds(files: int) -> float:
    """The least time a search can mean anything in: every model file once, a few sessions, and the A/B."""
    return (files + 1 + 7) * (MIN_STAGE_S + OVERHEAD_S) + 3 * (2.0 + OVERHEAD_S)


def record(log: _Log, phase: str, options: list[Option], got: Halving) -> None:
    for s in got.standings:
        log.trials.append(Trial(log.add(options[s.index - 1]), phase, s.stage, s.seconds, s.median_ns, s.score,
                                s.status, s.reason))
    if got.stopped:
        log.notes.append(f"{phase}: {got.stopped}")


def confirm(spec: TuneSpec, prepared: Prepared, env, log: _Log, default: Option, best_file: Option | None,
            winner: Option, ref, started: float, command: tuple[str, ...], on_progress: Progress,
            on_tick: Callable[[Tick], None], clock: Callable[[], float]) -> Report:
    """Default, the best model file with a default session, and the winner, timed together for as long as the
    plan asks; the winner stands only if significantly faster than the default, else the default is the
    answer."""
    bench = prepared.spec
    options = unique([o for o in (default, best_file, winner) if o is not None])
    on_progress(f"[confirm] {len(options)} configurations against each other, interleaved")
    cases = [PlannedCase(o.feeds, ref, o.target, o.variant) for o in options]
    footprints = {o.variant.model.path: (footprint(o.variant.model.path), {}) for o in options}
    results, note = measure_rows(cases, bench, {}, footprints, on_tick)
    if note:
        log.notes.append(note)
    chosen = [o.key for o in options].index(winner.key)
    ratio = gain(results[0], results[chosen], spec.objective, bench.plan.threshold) if chosen else None
    won = chosen != 0 and ratio is not None and ratio.significant and ratio.value > 1 and \
        results[chosen].status == "ok"
    answer = (f"tuned: {log.candidates[log.add(winner)].label} runs {ratio.value:.2f}× the default's "
              f"{spec.objective} ({ratio.low:.2f}–{ratio.high:.2f}, {ratio.rounds} rounds)" if won and ratio else
              "the default stays: no configuration was significantly faster than onnxruntime's default session "
              "on the model as given" + (f" (the best read {ratio.value:.2f}×, {ratio.low:.2f}–{ratio.high:.2f})"
                                         if ratio else ""))
    chosen_option = winner if won else default
    chosen_row = results[chosen] if won else results[0]
    config = TunedConfig(
        model=chosen_option.variant.model.path, model_digest=chosen_option.variant.model.digest,
        lineage=chosen_option.variant.model.lineage, tuned_from=prepared.spec.model,
        tuned_from_digest=prepared.model.digest, target=chosen_option.target, shapes=chosen_option.feeds.shapes.shapes,
        batch=chosen_option.feeds.shapes.batch, objective=spec.objective, speedup=ratio if won else None,
        latency_ns=chosen_row.summary.median if chosen_row.summary else None,
        default_latency_ns=results[0].summary.median if results[0].summary else None,
        budget=bench.accuracy_budget, accuracy=chosen_row.accuracy, environment=env,
        perfkit_version=__version__, created=now_stamp())
    written = write_folder(Path(spec.output_dir), config, chosen_option.feeds.feeds[0])
    search = Search(objective=spec.objective, time_budget_s=spec.time_budget_s, wall_s=clock() - started,
                    candidates=tuple(log.candidates), trials=tuple(log.trials), answer=answer,
                    winner=log.add(winner) if won else None, config=str(written), notes=tuple(log.notes))
    report = Report(run_id=new_run_id(), created=now_stamp(), spec=bench, environment=env,
                    results=tuple(results), complete=True, command=command, search=search,
                    accuracy_on="; ".join(dict.fromkeys(f.checks_from for f in prepared.feeds[:1])))
    if bench.results_dir:
        store = Store(bench.results_dir, bench.store)
        store.begin(report)
        for i, result in enumerate(results, 1):
            store.add(replace(report, results=tuple(results[:i])), result)
        store.finish(report)
    return report


def gain(base: Result, row: Result, objective: str, threshold: float) -> Ratio | None:
    """How much better `row` is than `base` on the objective: the paired speed-up; for p99 the ratio of the
    tails; for throughput the speed-up scaled by the items each call processes (calls of different batches)."""
    if objective == "p99":
        if not (base.measurement and row.measurement):
            return None
        return tail_ratio(base.measurement.samples_ns, row.measurement.samples_ns, threshold)
    ratio = ratio_between(base, row, threshold)
    if ratio is None or objective != "throughput" or row.batch == base.batch:
        return ratio
    scale = row.batch / max(base.batch, 1)
    value = ratio.value * scale
    return replace(ratio, value=value, low=ratio.low * scale, high=ratio.high * scale,
                   significant=ratio.low * scale > 1 + threshold / 2 and value - 1 >= threshold)
