"""`perfkit load`: the model, its variants and a native model as `bench` prepares them, each opened in this
process and put under load — callers back to back per concurrency (offline), or Poisson arrivals per rate,
searched for the highest rate that meets an SLO (server), with a dynamic batcher in front where asked — one
row per model file, target and batcher, its steps kept as they finish."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from perfkit.analysis.load import (
    cost_per_million,
    knee,
    meets,
    needed_requests,
    percentiles,
    search_rate,
)
from perfkit.backends import get_backend
from perfkit.core.errors import PerfkitError
from perfkit.core.load import Batching, LoadReport, LoadRow, LoadSpec, LoadStep
from perfkit.core.report import new_run_id, now_stamp
from perfkit.core.spec import Target
from perfkit.measure.env import fingerprint
from perfkit.measure.load import (
    Served,
    batched_server,
    clock_for,
    cores,
    offline,
    offline_processes,
    poisson_arrivals,
    server,
)
from perfkit.measure.targets import check_targets
from perfkit.prepare import Progress, build_variants, prepare
from perfkit.rows import native_target
from perfkit.transforms.cache import Variant

MAX_REQUESTS = 200_000  # one server step at most: a very fast model at a high rate still ends in seconds
CAPACITY_PROBE_S = 1.0  # the offline run that gives the SLO search its starting rate
SEARCH_BUDGET_S = 300.0  # an SLO search stops probing after this long; the answer is the bracket it has


def run(spec: LoadSpec, on_progress: Progress = lambda _: None, command: tuple[str, ...] = (),
        on_row: Callable[[LoadReport], None] = lambda _: None) -> LoadReport:
    """Every row, each saved through `on_row` as it finishes; Ctrl-C keeps the finished rows (complete=False)."""
    prepared = prepare(spec.bench, on_progress, compare=False)
    bench = prepared.spec
    skipped = check_targets(prepared.model, bench)
    env = fingerprint()
    built = build_variants(prepared, None, env.cpu_flags, on_progress)
    variants: list[Any] = [Variant(prepared.model), *(v for v in built if isinstance(v, Variant))]
    report = LoadReport(run_id=new_run_id(), created=now_stamp(), spec=replace(spec, bench=bench), environment=env,
                        command=command, warnings=tuple(f"{'+'.join(b.lineage)}: not built ({b.reason})"
                                                        for b in built if not isinstance(b, Variant)))
    rows: list[LoadRow] = []
    try:
        for feeds in prepared.feeds:
            subjects: list[tuple[str, Any, Target]] = []
            if prepared.native:
                subjects.append((prepared.native.label, prepared.native, native_target(prepared.native, bench)))
            subjects += [(v.model.label, v.model.path, t) for t in bench.targets for v in variants]
            for label, model, target in subjects:
                for batching in spec.batching or (None,):
                    name = label + (f" ({batching.text})" if batching else "")
                    on_progress(f"load: {name} on {target.label}, batch {feeds.shapes.batch}")
                    if target.label in skipped:
                        row = LoadRow(name, target.label, target.threads, status="skipped",
                                      reason=skipped[target.label])
                    else:
                        row = load_row(spec, name, model, target, feeds.feeds[0], feeds.shapes.batch, batching,
                                       on_progress)
                    rows.append(row)
                    report = replace(report, rows=tuple(rows))
                    on_row(report)
        report = replace(report, complete=True)
    except KeyboardInterrupt:
        report = replace(report, rows=tuple(rows), warnings=(*report.warnings, "interrupted: the rows above finished"))
    return report


def load_row(spec: LoadSpec, label: str, model: Any, target: Target, feed: dict[str, Any], batch: int,
             batching: Batching | None, on_progress: Progress) -> LoadRow:
    """One model file on one target under every load level; a crash under load is a failed row."""
    try:
        if spec.scenario == "offline":
            steps = [offline_step(spec, model, target, feed, batch, c) for c in spec.concurrency]
            return finish(spec, LoadRow(label, target.label, threads_for(target, max(spec.concurrency)),
                                        tuple(steps)))
        return server_row(spec, label, model, target, feed, batch, batching, on_progress)
    except PerfkitError:
        raise
    except Exception as exc:  # the model failed under load: a failed row, and the run goes on
        return LoadRow(label, target.label, target.threads, status="failed", reason=f"{type(exc).__name__}: {exc}")


def threads_for(target: Target, callers: int) -> int:
    """onnxruntime's intra-op threads: as asked, else the cores shared out among the callers."""
    return target.threads or max(1, cores() // callers)


@contextmanager
def opened(model: Any, target: Target, threads: int, count: int) -> Iterator[list[Any]]:
    """`count` sessions (1 when shared), closed however the block ends."""
    backend = get_backend(target.backend)
    sessions: list[Any] = []
    try:
        for _ in range(count):
            sessions.append(backend.open(model, replace(target, threads=threads)))
        yield sessions
    finally:
        for s in sessions:
            s.close()


def calls_on(sessions: list[Any], feed: dict[str, Any], callers: int) -> list[Callable[[], Any]]:
    """One bound call per caller: each on its own prepared feed (an IOBinding is per caller), over the shared
    session or its own."""
    return [sessions[k % len(sessions)].bind(sessions[k % len(sessions)].prepare(feed)) for k in range(callers)]


def offline_step(spec: LoadSpec, model: Any, target: Target, feed: dict[str, Any], batch: int,
                 callers: int) -> LoadStep:
    threads = threads_for(target, callers)
    if spec.processes:
        served = offline_processes(model, replace(target, threads=threads), feed, batch, callers,
                                   int(spec.duration_s * 1e9), int(spec.warmup_s * 1e9),
                                   spec.bench.plan.timeout_s + spec.duration_s + spec.warmup_s)
        return replace(step(served, spec, concurrency=callers), threads=threads)
    with opened(model, target, threads, callers if spec.sessions == "per-caller" else 1) as sessions:
        clock = clock_for(get_backend(target.backend).clock)
        served = offline(calls_on(sessions, feed, callers), batch, int(spec.duration_s * 1e9),
                         int(spec.warmup_s * 1e9), clock)
    return replace(step(served, spec, concurrency=callers), threads=threads)


def step(served: Served, spec: LoadSpec, *, concurrency: int | None = None, rate: float | None = None,
         batching: Batching | None = None) -> LoadStep:
    if served.errors:  # a model that fails under load is a failed row, never a step that passes its SLO
        raise RuntimeError(served.errors[0])
    seconds = served.wall_ns / 1e9
    lat = served.latencies_ns
    return LoadStep(concurrency=concurrency, rate=rate, requests=served.requests, items=served.items,
                    duration_ns=served.wall_ns, requests_per_s=served.requests / seconds,
                    items_per_s=served.items / seconds, **percentiles(lat),
                    mean_ns=float(lat.mean()) if lat.size else 0.0, cpu_util=served.cpu_s / seconds / cores(),
                    slo_pass=meets(lat, spec.slo) if spec.slo else None,
                    batching=batching.text if batching else "", mean_batch=served.requests / max(served.calls, 1),
                    enough=served.requests >= needed_requests(spec.slo), errors=len(served.errors))


def server_row(spec: LoadSpec, label: str, model: Any, target: Target, feed: dict[str, Any], batch: int,
               batching: Batching | None, on_progress: Progress) -> LoadRow:
    workers = max(spec.concurrency)
    threads = threads_for(target, workers)
    with opened(model, target, threads, 1 if batching or spec.sessions == "shared" else workers) as sessions:
        clock = clock_for(get_backend(target.backend).clock)
        calls = calls_on(sessions, feed, workers)
        batch_calls = batch_callers(sessions[0], feed, batching) if batching else None
        offline(calls[:1], batch, int(spec.warmup_s * 1e9), 0, clock)  # warm-up, not counted

        def measure(rate: float, seed: int) -> LoadStep:
            count = min(MAX_REQUESTS, max(needed_requests(spec.slo), int(rate * spec.duration_s)))
            arrivals = poisson_arrivals(rate, count, seed)
            served = batched_server(batch_calls, arrivals, batching, batch, clock) if batch_calls and batching \
                else server(calls, arrivals, batch, clock)
            on_progress(f"load: {label}: {rate:,.0f} requests/s offered, p99 "
                        f"{percentiles(served.latencies_ns)['p99_ns'] / 1e6:.2f} ms")
            return replace(step(served, spec, concurrency=workers, rate=rate, batching=batching), threads=threads)

        if spec.rates:
            steps = tuple(measure(r, spec.seed + k) for k, r in enumerate(spec.rates))
            return finish(spec, LoadRow(label, target.label, threads, steps))
        probes: list[LoadStep] = []
        capacity = offline(calls, batch, int(CAPACITY_PROBE_S * 1e9), 0, clock).requests / CAPACITY_PROBE_S
        if batching:
            capacity *= batching.max_batch / 2  # a batcher lifts the ceiling: start the bracket higher

        began = time.monotonic()

        def passes(rate: float) -> bool:
            if time.monotonic() - began > SEARCH_BUDGET_S:  # failing probes at ever lower rates grow ever longer
                return False
            probes.append(measure(rate, spec.seed + len(probes)))
            return bool(probes[-1].slo_pass)

        best = search_rate(passes, max(capacity * 0.7, 1.0))
        failing = [p.rate for p in probes if p.rate is not None and not p.slo_pass and p.rate > (best or 0)]
        row = LoadRow(label, target.label, threads, tuple(sorted(probes, key=lambda s: s.rate or 0)),
                      max_rate_meeting_slo=best, lowest_failing_rate=min(failing, default=None),
                      search=tuple(probes))
        return finish(spec, row)


def batch_callers(session: Any, feed: dict[str, Any], batching: Batching) -> Callable[[int], Callable[[], Any]]:
    """A bound call per batch size 1…max: the one-request feed repeated along the batch axis."""
    bound: dict[int, Callable[[], Any]] = {}
    for k in range(1, batching.max_batch + 1):
        grown = {n: np.concatenate([a] * k, axis=0) if np.ndim(a) else a for n, a in feed.items()}
        bound[k] = session.bind(session.prepare(grown))
    return bound.__getitem__


def finish(spec: LoadSpec, row: LoadRow) -> LoadRow:
    """The knee, the cost of a million inferences, and what the row must be read with."""
    steps = row.steps
    at = knee([s.requests_per_s for s in steps], [s.p99_ns for s in steps])
    per_request = steps[0].items / steps[0].requests if steps and steps[0].requests else 1
    items = row.max_rate_meeting_slo * per_request if row.max_rate_meeting_slo is not None else \
        max((s.items_per_s for s in steps), default=0.0)
    cost = cost_per_million(spec.price_per_hour, items) if spec.price_per_hour and items else None
    warnings = []
    over = [s for s in steps if s.concurrency and (s.threads or 1) * s.concurrency > cores()]
    if over:
        warnings.append(f"oversubscribed: {over[0].threads} intra-op threads × {over[0].concurrency} callers > "
                        f"{cores()} cores — callers and threads fight for cores; lower --threads to cores ÷ callers")
    short = [s for s in steps if not s.enough]
    if short and spec.slo:
        warnings.append(f"{len(short)} steps had fewer than the {needed_requests(spec.slo):,} requests "
                        f"{spec.slo.text} needs to be read (20 beyond the percentile): raise --duration")
    return replace(row, knee=at, cost_per_million=cost, warnings=tuple(warnings))
