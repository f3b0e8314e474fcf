"""Commands that check: compare (two models measured now, or two stored runs) and doctor (this machine, and the
smallest difference it can resolve for a model)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from perfkit.cli.group import (
    EXIT_ROW_FAILED,
    debug_option,
    main,
    plan_from,
    results_option,
    store_option,
    timing_options,
    trust_option,
)

if TYPE_CHECKING:
    from perfkit.analysis.comparison import Comparison
    from perfkit.core.spec import BenchSpec

def timing_spec(model: str, *, targets, batch, dims, shapes, inputs, threads, quick, min_time, max_time,
                no_isolate, trust, threshold: float, results_dir: str | None = None) -> BenchSpec:
    from perfkit.core.spec import parse_batches
    from perfkit.options import make_spec

    plan = plan_from(quick, min_time, max_time, isolate=not no_isolate, threshold=threshold)
    return make_spec(model, targets=targets, batch=parse_batches(batch) if batch else (), dims=dims, shapes=shapes,
                     inputs=inputs, threads=threads, plan=plan, results_dir=results_dir, trust=trust)


MODEL_SUFFIXES = (".onnx", ".pt", ".pth", ".pt2", ".pkl", ".joblib", ".skops", ".keras", ".h5", ".pb")


def is_model_file(path: str) -> bool:
    """A path to a model (not a stored run's .json, id or baseline name): one that exists, or is named like a
    model, so that a mistyped model path says "no such file", not "no such run"."""
    return path.lower().endswith(MODEL_SUFFIXES) or (os.path.exists(path) and not path.endswith(".json"))


@main.command()
@click.argument("old")
@click.argument("new", default="latest")
@click.option("--fail-on-regression", "fail_on", metavar="PCT",
              help="Exit 1 when a case is slower by more than this (e.g. 5%) and the change is significant.")
@click.option("--threshold", default="2%", show_default=True, metavar="PCT",
              help="Smallest change of the median that counts, however significant.")
@click.option("--rerun", is_flag=True, help="OLD and NEW are stored runs: measure their model files again, now, "
              "interleaved, with the old run's targets and inputs.")
@timing_options
@trust_option
@results_option
@store_option
@debug_option
def compare(old, new, fail_on, threshold, rerun, results_dir, store, **timing) -> None:
    """Compare OLD and NEW: two model files measured now, interleaved (the gate a CI job should use), or two
    stored runs (ids, prefixes, 'latest', baseline names or .json paths), held to each run's own drift."""
    from perfkit.analysis.comparison import parse_threshold

    limit = parse_threshold(fail_on) if fail_on else None
    practical = parse_threshold(threshold, "--threshold")
    if rerun or is_model_file(old) or is_model_file(new):
        if rerun:
            spec, new_model = _rerun_spec(old, new, results_dir, store, practical, timing)
        else:
            spec, new_model = timing_spec(old, threshold=practical, **timing), new
        result, failed = _measure_now(spec, new_model)
    else:
        from perfkit.output.load_store import LoadStore

        loads = LoadStore(results_dir)
        old_load, new_load = loads.find(old), loads.find(new)
        if old_load and new_load:  # two load runs: their highest rates under the SLO
            from perfkit.output.load_render import comparison_lines as load_lines

            lines, drop = load_lines(old_load, new_load)
            for line in lines:
                click.echo(line)
            if limit is not None and drop > limit:
                click.echo(f"perfkit: regression: a row sustains {drop:.1%} less under the SLO (limit {limit:.1%})",
                           err=True)
                sys.exit(1)
            return
        result, failed = _stored(old, new, results_dir, store, practical), False
    from perfkit.output.lines import comparison_lines

    for line in comparison_lines(result):
        click.echo(line)
    if limit is not None and result.worst_regression() > limit:
        click.echo(f"perfkit: regression: a case is {result.worst_regression():.1%} slower (limit {limit:.1%})",
                   err=True)
        sys.exit(1)
    if failed:
        sys.exit(EXIT_ROW_FAILED)


def _measure_now(spec: BenchSpec, new_model: str) -> tuple[Comparison, bool]:
    from perfkit.ab import measure_pair, pair_comparison
    from perfkit.cli.progress import Progress

    progress = Progress()
    try:
        report = measure_pair(spec, new_model, progress.step, progress.tick)
    finally:
        progress.clear()
    return pair_comparison(report, new_model), report.failed


def _stored(old: str, new: str, results_dir: str, store: str | None, practical: float) -> Comparison:
    from perfkit.analysis.comparison import compare_runs
    from perfkit.output.floors import load_floors
    from perfkit.output.store import Store

    runs = Store(results_dir, store)
    before, after = runs.load(old), runs.load(new)
    floors = load_floors(results_dir, after.environment.cpu_model)
    return compare_runs(before, after, practical=practical, floors=floors)


def _rerun_spec(old: str, new: str, results_dir: str, store: str | None, practical: float,
                timing: dict) -> tuple[BenchSpec, str]:
    from dataclasses import replace

    from perfkit.core.errors import PerfkitError
    from perfkit.output.store import Store

    runs = Store(results_dir, store)
    before, after = runs.load(old), runs.load(new)
    for run in (before, after):
        if not os.path.exists(run.spec.model):
            raise PerfkitError(run.spec.model, f"the model file of run {run.run_id} is gone",
                               "compare the stored runs without --rerun, or give the two model files")
    fresh = timing_spec(before.spec.model, threshold=practical, **timing)
    spec = replace(before.spec, plan=fresh.plan, variants=(), results_dir=None)
    return spec, after.spec.model


@main.command()
@click.argument("model", required=False)
@click.option("--threshold", default="2%", show_default=True, metavar="PCT",
              help="The practical threshold the A/A check is read against.")
@click.option("--no-save", is_flag=True, help="Do not keep the model's A/A floor for `perfkit compare`.")
@timing_options
@trust_option
@results_option
@debug_option
def doctor(model, threshold, no_save, results_dir, **timing) -> None:
    """Check this machine for benchmarking, each finding with its fix; with MODEL, also time the model against
    itself (interleaved, about 20 s) and print the smallest difference this machine can resolve for it."""
    from perfkit.analysis.comparison import parse_threshold
    from perfkit.measure.machine import machine_findings

    marks = {"ok": "ok  ", "warn": "WARN", "info": "info", "unknown": "  ? "}
    findings = machine_findings()
    for f in findings:
        click.echo(f"{marks.get(f.status, f.status):<4}  {f.check:<13} {f.seen}" + (f" — {f.fix}" if f.fix else ""))
    if not model:
        return
    practical = parse_threshold(threshold, "--threshold")
    seconds = 2 * timing["min_time"] if timing["min_time"] else None
    spec = timing_spec(model, threshold=practical, **timing)
    _aa(spec, practical, None if no_save else results_dir, seconds)


def _aa(spec: BenchSpec, practical: float, results_dir: str | None, seconds: float | None) -> None:
    from perfkit.cli.progress import Progress
    from perfkit.core.report import now_stamp
    from perfkit.doctor import AA_SECONDS, aa_check
    from perfkit.measure.env import fingerprint
    from perfkit.output.floors import Floor, save_floor
    from perfkit.output.units import fmt_ratio

    progress = Progress()
    try:
        found = aa_check(spec, progress.step, progress.tick, seconds or AA_SECONDS)
    finally:
        progress.clear()
    if found.failed:
        click.echo(f"A/A check of {spec.model} failed: {found.failed}", err=True)
        sys.exit(EXIT_ROW_FAILED)
    holds = found.ratio is not None and found.ratio.low <= 1 <= found.ratio.high
    click.echo(f"A/A: {spec.model} against itself over {found.rounds} interleaved rounds: {fmt_ratio(found.ratio)}"
               + ("" if holds else " — the interval misses 1: this machine is drifting faster than a round; "
                  "close other programs and run doctor again"))
    smallest = max(found.floor, practical)
    click.echo(f"smallest difference this machine can resolve for this model at 95 % confidence: "
               f"{smallest:.1%} with the default plan (a speed-up's interval is about ±{found.floor:.1%}, the "
               f"threshold {practical:.0%}); a longer --min-time narrows it")
    if results_dir:
        path = save_floor(results_dir, Floor(found.digest, spec.model, fingerprint().cpu_model, found.floor,
                                             found.rounds, now_stamp()))
        click.echo(f"kept the floor in {path}: `perfkit compare` of stored runs of this model holds changes to it",
                   err=True)
