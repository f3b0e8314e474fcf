"""`perfkit tune`: the fastest deployable configuration inside an accuracy budget. The model files are built and
judged first (outside the budget: repaired or gone before any timing); then three phases of successive halving
on interleaved rounds, each against onnxruntime's default session on the model as given — the model file, how
its threads work, memory and numerics; then the winner, the best model file with a default session and the
default itself are timed together, and the winner is returned only when it is significantly faster. The
tuned folder holds its model file, perfkit-tuned.json and a snippet that opens it with plain onnxruntime."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from perfkit.analysis.accuracy import parse_budget, within
from perfkit.analysis.stats import percentile, quiet_rounds, ratio_in, required_n, tail_ratio
from perfkit.analysis.verdict import ratio_between
from perfkit.core import VERSION
from perfkit.core.errors import PerfkitError
from perfkit.core.records import Environment, Ratio
from perfkit.core.report import Report, Result, new_run_id, now_stamp
from perfkit.core.search import Candidate, Search, Trial, TunedConfig
from perfkit.core.spec import Plan, TuneSpec
from perfkit.files.onnx_file import disk_size
from perfkit.files.tuned import write_folder
from perfkit.measure.env import available_memory, fingerprint
from perfkit.measure.halving import MIN_STAGE_S, OVERHEAD_S, Halving, halve
from perfkit.measure.interleave import Tick, memory_groups
from perfkit.measure.targets import check_targets
from perfkit.output.store import Store
from perfkit.prepare import Prepared, Progress, model_warnings, prepare, references
from perfkit.rows import MEMORY_SHARE, WORKER_BYTES, PlannedCase, measure_rows, session_target
from perfkit.space import detail_settings, thread_settings
from perfkit.transforms.cache import Variant
from perfkit.tuning import (
    Option,
    Reference,
    build_files,
    judge_for,
    judge_outputs,
    unique,
)

BUILD_SHARE = 0.4  # of the time budget, what building model files may take before the rest is left unbuilt
CONFIRM_SHARE = 0.2  # of the time budget, kept for the final A/B: the decision gets the longest measurement
PHASE_SHARES = {"model": 0.35, "threads": 0.6, "details": 1.0}  # of the search time left when each phase starts
FIRST_STAGE_S = 0.6  # each candidate's first measurement; each later stage doubles it
SESSIONS_AT_LEAST = 7  # session candidates the least budget still times once (threads × spinning, on 2 cores)


def run(spec: TuneSpec, on_progress: Progress = lambda _: None, command: tuple[str, ...] = (),
        on_tick: Callable[[Tick], None] = lambda _: None, clock: Callable[[], float] = time.monotonic) -> Report:
    """The search, the A/B, the tuned folder and the run saved; a budget too short for one measurement of
    every model file is the user's error, before anything is built."""
    started = clock()
    prepared = prepare(spec.bench, on_progress, compare=True)
    files = len(prepared.chains) + 1
    if spec.time_budget_s < (need := minimum_seconds(files)):
        raise PerfkitError(f"--time-budget {spec.time_budget_s:g}s", f"too short to time {files} model files and "
                           f"their sessions even once (needs about {need:.0f} s)",
                           f"give --time-budget {max(60, round(need * 2))}s or more, or fewer --variants")
    check_targets(prepared.model, prepared.spec)
    env = fingerprint()
    budget = parse_budget(prepared.spec.accuracy_budget)
    refs = {id(f): Reference(r.outputs, budget, r.task, f.labels)  # each batch judged on its own check feeds
            for f, r in zip(prepared.feeds, references(prepared, on_progress, fall_back_to_conversion=True),
                            strict=True)}
    search = _Search(spec, prepared, env, refs, started, on_progress, on_tick, clock)
    winner, best_file = search.run()
    return search.confirm(winner, best_file, command)


def minimum_seconds(files: int) -> float:
    """The least time a search can mean anything in: every model file once, a few sessions, and the A/B."""
    return (files + 1 + SESSIONS_AT_LEAST) * (MIN_STAGE_S + OVERHEAD_S) + 3 * (2.0 + OVERHEAD_S)


@dataclass
class _Search:
    spec: TuneSpec
    prepared: Prepared
    env: Environment
    refs: dict[int, Reference]  # by id() of a workload's FeedSet
    started: float
    on_progress: Progress
    on_tick: Callable[[Tick], None]
    clock: Callable[[], float]
    candidates: list[Candidate] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    index: dict[tuple, int] = field(default_factory=dict)
    overhead_s: float = OVERHEAD_S  # per case and stage, as the last halving measured it
    sizes: dict[str, int] = field(default_factory=dict)  # bytes on disk by model path: each file read once

    def __post_init__(self) -> None:
        self.base = Variant(self.prepared.model)
        # onnxruntime's default session; with --threads (an upper bound) that many threads, so the answer keeps it
        self.default = Option(self.base, self.prepared.spec.targets[0], self.prepared.feeds[0])
        self.limit = self.default.target.threads
        self.deadline = self.started + self.spec.time_budget_s
        self.add(self.default)

    def reference(self, option: Option) -> Reference:
        return self.refs[id(option.feeds)]

    def run(self) -> tuple[Option, Option | None]:
        """The three phases, each on the winners of the one before: (the winner, the best model file)."""
        built = build_files(self.prepared, self.refs[id(self.prepared.feeds[0])], self.env.cpu_flags,
                            self.started + self.spec.time_budget_s * BUILD_SHARE, self.on_progress)
        self.notes += built.notes
        target = self.default.target
        batches = self.prepared.feeds if self.spec.objective == "throughput" else self.prepared.feeds[:1]
        files = [Option(b.variant, session_target(b.variant, target), f) for b in built.files if b.judged.ok
                 for f in batches]
        files += [Option(self.base, target, f) for f in batches[1:]]
        best_file = self.phase("model", files)
        # The best file's thread settings first: a budget that cannot time them all times those first in line.
        threaded = [replace(o, target=t) for o in (*best_file, self.default)
                    for t in thread_settings(o.target, self.env.logical_cores, self.env.physical_cores, self.limit)]
        top = (self.phase("threads", threaded) or best_file or [self.default])[0]
        lineage = top.variant.model.lineage
        offline = bool(lineage) and lineage[-1].startswith("ort-opt")
        details = [top, *(replace(top, target=t) for t in detail_settings(top.target, offline))]
        best = self.phase("details", details)
        return (best or [top])[0], best_file[0] if best_file else None

    def phase(self, name: str, options: list[Option]) -> list[Option]:
        """Successive halving of `options` against the default, in this phase's share of the time left."""
        options = [o for o in unique(options) if o.key != self.default.key]
        if not options:
            return []
        self.on_progress(f"[{name}] {len(options)} candidates, halving")
        plan = self.prepared.spec.plan
        search_end = self.deadline - self.spec.time_budget_s * CONFIRM_SHARE
        everyone = [self.default, *options]
        got = halve([o.entrant(plan) for o in everyone], plan,
                    objective=self.spec.objective, first_stage_s=FIRST_STAGE_S,
                    deadline=self.clock() + (search_end - self.clock()) * PHASE_SHARES[name],
                    overhead_s=self.overhead_s,
                    judge=judge_for([self.reference(o) for o in everyone], self.spec.max_memory),
                    groups=fitting([self.size(o.variant.model.path) for o in everyone]),
                    on_tick=self.on_tick, clock=self.clock)
        self.overhead_s = got.overhead_s
        self.record(name, options, got)
        return [options[i - 1] for i in got.survivors]

    def size(self, path: str) -> int:
        """The model file and its external data on disk; the file is parsed once per search, not per candidate
        and stage (a ResNet-18 without external data is 45 MB of protobuf)."""
        if path not in self.sizes:
            self.sizes[path] = disk_size(path)[0]
        return self.sizes[path]

    def add(self, option: Option) -> int:
        """The candidate's index in the search, added the first time it is seen."""
        if option.key not in self.index:
            self.index[option.key] = len(self.candidates)
            batch = option.feeds.shapes.batch
            session = ", ".join(filter(None, [option.target.session_text, f"batch {batch}" if batch != 1 else ""]))
            self.candidates.append(Candidate(option.variant.model.label, session,
                                             size_bytes=self.size(option.variant.model.path)))
        return self.index[option.key]

    def record(self, phase: str, options: list[Option], got: Halving) -> None:
        """A phase's standings as trials, and each candidate's accuracy from its last outcome."""
        for s in got.standings:
            self.trials.append(Trial(self.add(options[s.index - 1]), phase, s.stage, s.seconds, s.median_ns,
                                     s.score, s.status, s.reason))
        for i, outcome in got.outcomes.items():
            if i and (ref := self.reference(options[i - 1])).outputs is not None:
                k, judged = self.add(options[i - 1]), judge_outputs(ref, outcome.checked)
                self.candidates[k] = replace(self.candidates[k], error=judged.error, within=judged.ok)
        self.notes += [f"{phase}: {stop}" for stop in got.stopped]

    def confirm(self, winner: Option, best_file: Option | None, command: tuple[str, ...]) -> Report:
        """Default, the best model file with a default session, and the winner, timed together in the time left
        (at least the plan's minimum); the winner stands only if significantly faster than the default and
        inside the budget, else the default is the answer. Then the tuned folder and the run are written."""
        bench = self.prepared.spec
        options = unique([o for o in (self.default, best_file, winner) if o is not None])
        self.on_progress(f"[confirm] {len(options)} configurations timed together, interleaved")
        plan = confirm_plan(bench.plan, self.deadline - self.clock(), len(options), self.overhead_s,
                            self.spec.objective)
        results, note = measure_rows([PlannedCase(o.feeds, self.reference(o).outputs,
                                                  replace(o.target, compare_as=self.default.target.label), o.variant,
                                                  self.reference(o).task)
                                      for o in options], replace(bench, plan=plan), {},
                                     {o.variant.model.path: (self.size(o.variant.model.path), {}) for o in options},
                                     self.on_tick, also=self.same_file_pairs(options))
        self.notes += [note] if note else []
        keys = [o.key for o in options]
        k = keys.index(winner.key)
        picked = self.candidates[self.add(winner)].label if k else ""  # the search's pick, before the A/B's rules
        if best_file and winner.variant.model.path == best_file.variant.model.path and \
                0 < keys.index(best_file.key) < k:  # session settings must pay for themselves, on the same file
            f = keys.index(best_file.key)
            extra = gain(results[f], results[k], self.spec.objective, plan.threshold)
            if extra is not None and not (extra.significant and extra.value > 1):
                winner, k = best_file, f
                self.notes.append(f"the session settings found read {extra.value:.2f}× ({extra.low:.2f}–"
                                  f"{extra.high:.2f}) the same file on the default session: not significantly "
                                  "faster, so that session is kept")
        if k and (back := self.load_dependent(options, results, k, best_file, plan.threshold)) is not None:
            winner, k = options[back], back
        ratio = gain(results[0], results[k], self.spec.objective, plan.threshold) if k else None
        won = ratio is not None and ratio.significant and ratio.value > 1 and self.inside(results[k], winner)
        answer = self.answer(winner, results, k, ratio, won, picked)
        caveats = (note,) if won and (note := load_note(results[0], results[k])) else ()
        self.notes += caveats
        chosen, row = (winner, results[k]) if won else (self.default, results[0])
        config = replace(self.config(chosen, row, results[0], ratio if won else None), caveats=caveats)
        written = write_folder(Path(self.spec.output_dir), config, chosen.feeds.feeds[0])
        search = Search(objective=self.spec.objective, time_budget_s=self.spec.time_budget_s,
                        wall_s=self.clock() - self.started, candidates=tuple(self.candidates),
                        trials=tuple(self.trials), answer=answer, winner=self.add(winner) if won else None,
                        config=str(written), notes=tuple(self.notes), chosen_row=k if won else 0)
        report = Report(run_id=new_run_id(), created=now_stamp(), spec=bench, environment=self.env,
                        results=tuple(results), complete=True, command=command, search=search,
                        warnings=model_warnings(self.prepared),
                        accuracy_on=self.prepared.feeds[0].checks_from, signature=self.prepared.signature)
        if bench.results_dir:
            save(report, bench.results_dir, bench.store)
        return report

    def plain_session(self, options: list[Option], k: int) -> int | None:
        """The option before k that is k's file on the default session, if the A/B has it."""
        return next((i for i, o in enumerate(options[:k]) if o.variant.model.path == options[k].variant.model.path
                     and o.target.tuning_text == "" and o.target.threads == self.default.target.threads
                     and o.feeds is options[k].feeds), None)

    def same_file_pairs(self, options: list[Option]) -> list[tuple[int, int]]:
        """(file on the default session, file on tuned settings) in the A/B: timed until decided, as the rules
        below compare them."""
        return [(i, k) for k in range(len(options)) if (i := self.plain_session(options, k)) is not None]

    def load_dependent(self, options: list[Option], results: list[Result], k: int, best_file: Option | None,
                       threshold: float) -> int | None:
        """The row to fall back to when the winner's session settings win only while other programs hold the
        machine: slower than the same file on the default session in the A/B's quietest rounds (fewer threads
        beat a spinning default when a core is taken, and lose when it is free). None: the winner holds."""
        same = self.plain_session(options, k)
        if same is None:
            return None
        base, plain, tuned = results[0].measurement, results[same].measurement, results[k].measurement
        if base is None or plain is None or tuned is None:
            return None
        quiet = quiet_rounds(base.blocks)
        ratio = ratio_in(plain.blocks, tuned.blocks, quiet, threshold)
        if ratio is None or not (ratio.significant and ratio.value < 1):
            return None
        self.notes.append(f"{self.candidates[self.add(options[k])].label} won only while the machine was busy: in the "
                          f"A/B's quietest {len(quiet)} rounds it ran {ratio.value:.2f}× ({ratio.low:.2f}–"
                          f"{ratio.high:.2f}) the same file on the default session, which is kept — on a machine "
                          "shared with other work, compare them there with perfkit bench --config")
        return same

    def inside(self, row: Result, option: Option) -> bool:
        ref = self.reference(option)
        return row.status == "ok" and (ref.outputs is None or within(row.accuracy, ref.budget, row.task)[0])

    def answer(self, winner: Option, results: list[Result], k: int, ratio: Ratio | None, won: bool,
               picked: str = "") -> str:
        """The answer in one sentence, each way it can come out said as it is."""
        name = self.candidates[self.add(winner)].label
        measure = "items per second" if self.spec.objective == "throughput" else self.spec.objective
        figure = f"{ratio.value:.2f}× ({ratio.low:.2f}–{ratio.high:.2f})" if ratio else ""
        stays = "the default stays: "
        if won:
            return f"tuned: {name} runs {figure} the default's {measure}"
        if k == 0 and picked:
            return stays + f"the search's pick, {picked}, did not hold up in the final A/B (the notes say why)"
        if k == 0:
            return stays + "no configuration beat onnxruntime's default session on the model as given in the search"
        if ratio is None:
            calls = min(len(r.measurement.samples_ns) if r.measurement else 0 for r in (results[0], results[k]))
            need = f"; p99 needs {required_n(99)}" if self.spec.objective == "p99" else ""
            return stays + (f"the A/B could not give a {measure} ratio for {name} ({calls} calls in the shorter "
                            f"row{need}) — give a longer --time-budget")
        if ratio.significant and ratio.value > 1:
            return stays + f"{name} ran {figure} the default's {measure} in the A/B but is outside the budget there"
        return stays + (f"the best, {name}, read {figure} the default's {measure}: not significantly faster than "
                        "onnxruntime's default session on the model as given")

    def config(self, chosen: Option, row: Result, default: Result, ratio: Ratio | None) -> TunedConfig:
        model = chosen.variant.model
        return TunedConfig(
            model=model.path, model_digest=model.digest, lineage=model.lineage, tuned_from=self.prepared.spec.model,
            tuned_from_digest=self.prepared.model.digest, target=chosen.target, shapes=chosen.feeds.shapes.shapes,
            batch=chosen.feeds.shapes.batch, objective=self.spec.objective, speedup=ratio,
            latency_ns=row.summary.median if row.summary else None,
            default_latency_ns=default.summary.median if default.summary else None,
            budget=self.prepared.spec.accuracy_budget, accuracy=row.accuracy, environment=self.env,
            perfkit_version=VERSION, created=now_stamp())


LOAD_SPREAD = 1.5  # a row whose round medians span more than this (90th over 10th percentile) swung with the load


def round_spread(row: Result) -> float | None:
    """How far a row's per-round medians spread: their 90th percentile over their 10th; None with few rounds."""
    blocks = sorted(b.median_ns for b in row.measurement.blocks) if row.measurement else []
    if len(blocks) < 10 or blocks[0] <= 0:
        return None
    return percentile(blocks, 90) / percentile(blocks, 10)


def load_note(default: Result, winner: Result) -> str:
    """When the default's latency swung with the machine's load and the winner's did not, part of the speed-up
    is the winner holding up while other programs run (spinning threads lose their cores): said, with how to
    check it where the model will run."""
    a, b = round_spread(default), round_spread(winner)
    if a is None or b is None or a < LOAD_SPREAD or a < b * LOAD_SPREAD:
        return ""
    return (f"the default's per-round latency spread {a:.1f}× between busy and quiet spells, the winner's {b:.1f}×: "
            "part of this speed-up is the winner holding up under other programs' load, and it will be smaller "
            "on an idle machine — check with perfkit bench MODEL --config FILE where the model will run")


def fitting(sizes: list[int]) -> Callable[[list[int]], list[list[int]]]:
    """A stage's cases in groups whose workers fit in memory together (one worker each: its runtime and the
    model about twice), the baseline in every group."""
    available = available_memory()

    def groups(members: list[int]) -> list[list[int]]:
        if not available:
            return [list(range(len(members)))]
        estimates = [WORKER_BYTES + 2 * sizes[i] for i in members]
        return memory_groups(estimates, [(0, k) for k in range(1, len(members))], int(available * MEMORY_SHARE))

    return groups


def confirm_plan(plan: Plan, left_s: float, cases: int, overhead_s: float, objective: str = "median") -> Plan:
    """The final A/B's plan: every row timed in every round for the time the budget has left, up to the plan's
    maximum and never under its minimum — all rows through the same busy and quiet spells, which the rules on
    load compare; for p99, calls enough for a tail (`required_n`)."""
    fit = max(plan.min_time_s, min(plan.max_time_s, left_s / cases - 2 * overhead_s))
    calls = max(plan.min_rounds, required_n(99)) if objective == "p99" else plan.min_rounds
    return replace(plan, min_time_s=fit, max_time_s=fit, min_rounds=calls, max_rounds=max(plan.max_rounds, calls))


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


def save(report: Report, results_dir: str, store_url: str | None) -> None:
    """The run kept like a bench run: `perfkit show`, `report` and `compare` read it."""
    store = Store(results_dir, store_url)
    store.begin(report)
    for i, result in enumerate(report.results, 1):
        store.add(replace(report, results=report.results[:i]), result)
    store.finish(report)
