"""Commands that build and measure: bench, optimize, convert, inspect, demo."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from perfkit.cli.group import (
    EXIT_ROW_FAILED,
    cache_option,
    calibration_option,
    debug_option,
    emit,
    factory_option,
    float64_option,
    format_option,
    main,
    native_hint_options,
    opset_option,
    output_option,
    plan_from,
    results_option,
    store_option,
    timing_options,
    trust_option,
    upgrade_opset_option,
    variants_option,
)

if TYPE_CHECKING:
    from perfkit.core.spec import BenchSpec


@main.command()
@click.argument("model", type=click.Path())
@timing_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic inputs.")
@click.option("--opt-level", type=click.Choice(["disable", "basic", "extended", "all"]), default="all",
              show_default=True, help="onnxruntime graph optimization level.")
@click.option("--allow-fallback", is_flag=True, help="Run on the available provider if the asked one is missing.")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds before a case counts as hung [300].")
@click.option("--no-interleave", is_flag=True,
              help="Time rows one after another instead of in interleaved rounds (drift then skews ratios).")
@click.option("--threshold", default="2%", show_default=True, metavar="PCT",
              help="Smallest speed-up or slow-down called a difference, however significant.")
@click.option("--no-save", is_flag=True, help="Keep nothing in the results folder.")
@variants_option
@click.option("--accuracy-budget", metavar="METRIC>=N[,…]",
              help="e.g. \"cos>=0.999\", \"max_abs<=1e-2\", \"agree>=0.99\"; with --eval also \"top1_drop<=0.5%\", "
                   "\"top5_drop<=…\", \"mae_rise<=1%\", \"rmse_rise<=…\"; the fastest variant inside it is "
                   "marked [cos>=0.99,agree>=0.99].")
@calibration_option
@click.option("--eval", "eval_data", type=click.Path(), metavar="PATH",
              help="Labelled samples every row is judged on: a .npz of the inputs by name and `labels`, or a "
                   ".csv/.parquet table with --label-column; adds top-1 (classes) or MAE (float targets) to the table.")
@click.option("--label-column", metavar="NAME", help="The column of the labels in an --eval table.")
@cache_option
@click.option("--profile", is_flag=True, help="Also profile every row by op type with onnxruntime's profiler.")
@click.option("--fail-on-fallback", is_flag=True,
              help="A GPU row whose compute ops (Conv, MatMul, Gemm, Attention, …) ran on the CPU fails.")
@click.option("--config", type=click.Path(), metavar="perfkit-tuned.json",
              help="Also measure the configuration `perfkit tune` wrote: its model file on its session, beside MODEL.")
@trust_option
@factory_option
@native_hint_options
@opset_option
@float64_option
@upgrade_opset_option
@format_option
@output_option
@results_option
@store_option
@debug_option
def bench(model, targets, batch, dims, shapes, inputs, seed, threads, opt_level, allow_fallback, quick,
          min_time, max_time, timeout, no_isolate, no_interleave, threshold, no_save, variants, accuracy_budget,
          calibration, eval_data, label_column, cache_dir, profile, fail_on_fallback, config, trust, factory, opset,
          float64, upgrade_opset, fmt, output, results_dir, store, hints) -> None:
    """Measure MODEL and its optimized variants on onnxruntime and print the figures.

    MODEL is an .onnx file, or a native model — scikit-learn (.pkl, .joblib, .skops), PyTorch (.pt, .pth,
    .pt2), Keras (.keras, .h5), a TensorFlow SavedModel or frozen graph (.pb) or an MLflow model folder — which
    is measured in its own framework beside its ONNX conversion, and is then the accuracy reference."""

    from perfkit.analysis.comparison import parse_threshold
    from perfkit.core.spec import parse_batches
    from perfkit.options import make_spec

    plan = plan_from(quick, min_time, max_time, isolate=not no_isolate, interleave=not no_interleave,
                     threshold=parse_threshold(threshold, "--threshold"),
                     **({"timeout_s": timeout} if timeout is not None else {}))
    spec = make_spec(model, targets=targets, batch=parse_batches(batch) if batch else (), dims=dims,
                     shapes=shapes, inputs=inputs, seed=seed, threads=threads, opt_level=opt_level, plan=plan,
                     allow_fallback=allow_fallback, results_dir=None if no_save else results_dir, variants=variants,
                     accuracy_budget=accuracy_budget, calibration=calibration, cache_dir=cache_dir, profile=profile,
                     trust=trust, factory=factory, opset=opset, float64=float64, store=store,
                     fail_on_fallback=fail_on_fallback, eval=eval_data, label_column=label_column, config=config,
                     hints=hints, upgrade_opset=upgrade_opset)
    _run_and_print(spec, fmt, output)


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the variant files and manifest.json.")
@variants_option
@calibration_option
@cache_option
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE", help="Value of a named free dim.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…[:DTYPE]", help="Whole shape of one input.")
@click.option("--accuracy-budget", metavar="METRIC>=N[,…]",
              help="Budget fp16's repair keeps to [cos>=0.99,agree>=0.99].")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds one build step may take.")
@upgrade_opset_option
@debug_option
def optimize(model, output_dir, variants, calibration, cache_dir, dims, shapes, accuracy_budget, timeout,
             upgrade_opset) -> None:
    """Build optimized variants of MODEL into a folder, with a manifest; nothing is timed."""
    from perfkit.build import build_all
    from perfkit.core.spec import Plan
    from perfkit.options import make_spec

    spec = make_spec(model, dims=dims, shapes=shapes, variants=variants or ("auto",), calibration=calibration,
                     cache_dir=cache_dir, accuracy_budget=accuracy_budget, plan=Plan(timeout_s=timeout),
                     results_dir=None, upgrade_opset=upgrade_opset)

    def progress(text: str) -> None:
        click.echo(text, err=True)

    manifest = build_all(spec, output_dir, on_progress=progress)
    for entry in manifest.variants:
        click.echo(f"{entry.variant:<48} {entry.file or f'{entry.status}: {entry.reason}'}")
    for warning in manifest.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {os.path.join(output_dir, 'manifest.json')}", err=True)
    if any(e.status == "failed" for e in manifest.variants):
        sys.exit(EXIT_ROW_FAILED)


def _slow_step(line: str) -> None:
    """A convert step that keeps the user waiting (a JVM starting) is said on stderr; quick ones are not."""
    if " — " in line:
        click.echo(line, err=True)


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the .onnx file.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…[:DTYPE]",
              help="Example shape of an input, and its type (PyTorch modules record neither): input_ids=1x128:int64.")
@click.option("--inputs", type=click.Path(), help="Real inputs for the parity check: .npz, or .csv/.parquet rows.")
@click.option("-b", "--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Rows (items) per synthetic parity feed.")
@trust_option
@factory_option
@native_hint_options
@opset_option
@float64_option
@cache_option
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds the conversion may take.")
@click.option("--accept-mismatch", is_flag=True,
              help="Exit 0 when parity is OFF (the file is written either way; the table still says OFF).")
@debug_option
def convert(model, output, shapes, inputs, batch, trust, factory, opset, float64, cache_dir, timeout, accept_mismatch,
            hints) -> None:
    """Convert a native MODEL to ONNX and check that the ONNX model gives the native model's answers."""
    from perfkit.convert import run_convert

    lines, result = run_convert(model, output, shapes=shapes, inputs=inputs, batch=batch, trust=trust,
                                factory=factory, opset=opset, float64=float64, cache_dir=cache_dir, timeout_s=timeout,
                                hints=hints, on_progress=_slow_step)
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {output}", err=True)
    if result.ok or result.unchecked:  # unchecked: said above; the conversion itself is not in doubt
        return
    if accept_mismatch:  # the user has seen the differences and takes them
        click.echo(f"perfkit: parity OFF, accepted (--accept-mismatch): {output} gives other answers than {model}",
                   err=True)
        return
    # a script that converts and deploys must not ship other answers than the native model's
    click.echo(f"perfkit: parity OFF: {output} gives other answers than {model} — it is written for a look, "
               "not to deploy; --accept-mismatch takes it as it is", err=True)
    sys.exit(EXIT_ROW_FAILED)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@debug_option
def inspect(path, fmt) -> None:
    """Say what a model file is, whether perfkit can load and convert it, and the way to ONNX."""
    import json

    from perfkit.native.inspect import inspect_file

    found = inspect_file(path)
    if fmt == "json":
        click.echo(json.dumps(found.as_dict(), indent=1))
        return
    for label, value in found.lines():
        click.echo(f"{label:>14}  {value}")


@main.command()
@click.option("--quick", is_flag=True, help="A fast look: short warm-up and timing (noisier).")
@format_option
@results_option
@store_option
@debug_option
def demo(quick, fmt, results_dir, store) -> None:
    """Build a small CNN locally (no download), its optimized variants, and benchmark them at batch 8."""
    from perfkit.core.spec import QUICK_PLAN, Plan
    from perfkit.examples import write
    from perfkit.options import make_spec

    path = write("cnn", os.path.join(".perfkit-cache", "examples"))
    click.echo(f"built {path} (a 2-layer CNN, 32x32 RGB input, random weights)", err=True)
    spec = make_spec(path, batch=(8,), plan=QUICK_PLAN if quick else Plan(), results_dir=results_dir, store=store,
                     variants=("auto",), accuracy_budget="cos>=0.999")
    _run_and_print(spec, fmt, None)


def _run_and_print(spec: BenchSpec, fmt: str, output: str | None) -> None:
    from perfkit import bench as bench_module
    from perfkit.cli.progress import Progress

    progress = Progress()
    try:
        report = bench_module.run(spec, on_progress=progress.step, command=tuple(sys.argv), on_tick=progress.tick)
    finally:
        progress.clear()
    emit(report, fmt, output)
    if spec.results_dir:
        where = "the PostgreSQL store" if spec.store else f"{spec.results_dir}/"
        click.echo(f"saved run {report.run_id} in {where}", err=True)
    if report.failed:
        sys.exit(EXIT_ROW_FAILED)
