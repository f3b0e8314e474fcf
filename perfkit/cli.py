"""The command line: the only place that prints or exits. Heavy imports happen inside the commands."""

from __future__ import annotations

import os
import shutil
import sys

import click

FORMATS = ("table", "json", "csv", "markdown")  # kept here too so --help does not import the renderers
EXIT_USER_ERROR, EXIT_ROW_FAILED = 2, 3


class PerfkitGroup(click.Group):
    """Turns a PerfkitError into one line on stderr and exit 2; --debug (or PERFKIT_DEBUG=1) shows tracebacks."""

    def invoke(self, ctx: click.Context):
        from perfkit.errors import PerfkitError

        try:
            return super().invoke(ctx)
        except PerfkitError as exc:
            if _debug(ctx):
                raise
            click.echo(f"perfkit: error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.UsageError as exc:  # click's own checks of options and arguments: one line too
            if _debug(ctx):
                raise
            command = exc.ctx.command_path if exc.ctx else "perfkit"
            message = " ".join(exc.format_message().split())
            click.echo(f"perfkit: error: {message} — see {command} --help", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("perfkit: interrupted; rows measured so far are kept in the results folder", err=True)
            sys.exit(130)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("perfkit.debug")) or os.environ.get("PERFKIT_DEBUG") == "1"


def _set_debug(ctx: click.Context, _param, value: bool) -> None:
    if value:
        ctx.meta["perfkit.debug"] = True


debug_option = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                            help="Show tracebacks instead of one-line errors.")
results_option = click.option("--results-dir", default=lambda: os.environ.get("PERFKIT_RESULTS", "results"),
                              show_default="results (or $PERFKIT_RESULTS)", help="Where runs are kept.")
store_option = click.option("--store", default=lambda: os.environ.get("PERFKIT_STORE") or None,
                            metavar="postgresql://…", show_default="results-dir's SQLite (or $PERFKIT_STORE)",
                            help="Keep runs in this PostgreSQL database instead: a team's shared history.")
format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
output_option = click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE, not stdout.")
variants_option = click.option(
    "--variants", "variants", multiple=True, metavar="CHAIN[,CHAIN…]",
    help="Optimized variants to build: ort-opt:basic|extended|all, fusion, fp16, int8-dynamic, int8-static, "
         "chained with '+' (ort-opt:all+int8-static:qdq,u8s8), or 'auto' for the sensible set for this model.")
calibration_option = click.option("--calibration", type=click.Path(),
                                  help="Calibration inputs for int8-static: .npz, one array per input, "
                                       "samples on the first axis (default: synthetic, with a warning).")
trust_option = click.option("--trust", is_flag=True,
                            help="Allow loading pickle-based models (.pkl, .joblib, full .pt), which run code "
                                 "when loaded [or PERFKIT_TRUST=1]. Only for files you trust.")
factory_option = click.option("--factory", metavar="PACKAGE.MODULE:FUNCTION",
                              help="For a PyTorch state dict: the function that builds the untrained module.")
opset_option = click.option("--opset", type=click.IntRange(7, 30), help="Opset of the ONNX conversion of a native "
                            "model [18].")
float64_option = click.option("--float64", is_flag=True,
                              help="scikit-learn: convert with float64 inputs (keeps its precision; slower).")
cache_option = click.option("--cache-dir", default=None,
                            help="Where built variants are cached [.perfkit-cache, or $PERFKIT_CACHE].")


@click.group(cls=PerfkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
@click.version_option(package_name="perfkit")
def main() -> None:
    """How fast is this model, how fast can it get, and what does that cost in accuracy?"""


@main.command()
@click.argument("model", type=click.Path())
@click.option("-t", "--target", "targets", multiple=True, default=("ort:cpu",), show_default=True,
              help="BACKEND:DEVICE[,KEY=VALUE…], e.g. ort:cpu, ort:cuda,device_id=0 (repeatable).")
@click.option("-b", "--batch", help="Batch sizes to sweep, one row each: 1,8,32.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE", help="Value of a named free dim.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…", help="Whole shape of one input.")
@click.option("--inputs", type=click.Path(), help="Feed this .npz (one array per input) or .npy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic inputs.")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads (default: onnxruntime's).")
@click.option("--opt-level", type=click.Choice(["disable", "basic", "extended", "all"]), default="all",
              show_default=True, help="onnxruntime graph optimization level.")
@click.option("--allow-fallback", is_flag=True, help="Run on the available provider if the asked one is missing.")
@click.option("--quick", is_flag=True, help="A fast look: short warm-up and timing (noisier).")
@click.option("--min-time", type=click.FloatRange(min=0), help="Seconds of timing at least [2].")
@click.option("--max-time", type=click.FloatRange(min=0), help="Seconds of timing at most [20].")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds before a case counts as hung [300].")
@click.option("--no-isolate", is_flag=True, help="Run cases in this process (faster start, no crash safety).")
@click.option("--no-save", is_flag=True, help="Keep nothing in the results folder.")
@variants_option
@click.option("--accuracy-budget", metavar="METRIC>=N[,…]",
              help="e.g. \"cos>=0.999\", \"max_abs<=1e-2\", \"agree>=0.99\"; the fastest variant inside it is "
                   "marked [cos>=0.99].")
@calibration_option
@cache_option
@click.option("--profile", is_flag=True, help="Also profile every row by op type with onnxruntime's profiler.")
@click.option("--fail-on-fallback", is_flag=True,
              help="A GPU row whose compute ops (Conv, MatMul, Gemm, Attention, …) ran on the CPU fails.")
@trust_option
@factory_option
@opset_option
@float64_option
@format_option
@output_option
@results_option
@store_option
@debug_option
def bench(model, targets, batch, dims, shapes, inputs, seed, threads, opt_level, allow_fallback, quick,
          min_time, max_time, timeout, no_isolate, no_save, variants, accuracy_budget, calibration, cache_dir,
          profile, fail_on_fallback, trust, factory, opset, float64, fmt, output, results_dir, store) -> None:
    """Measure MODEL and its optimized variants on onnxruntime and print the figures.

    MODEL is an .onnx file, or a native model — scikit-learn (.pkl, .joblib, .skops), PyTorch (.pt, .pth,
    .pt2), Keras (.keras, .h5), a TensorFlow SavedModel or an MLflow model folder — which is measured in its
    own framework beside its ONNX conversion, and is then the accuracy reference."""
    from dataclasses import replace

    from perfkit.spec import QUICK_PLAN, Plan, make_spec, parse_batches

    plan = QUICK_PLAN if quick else Plan()
    overrides = {"min_time_s": min_time, "max_time_s": max_time, "timeout_s": timeout}
    plan = replace(plan, isolate=not no_isolate, **{k: v for k, v in overrides.items() if v is not None})
    if plan.max_time_s < plan.min_time_s:
        plan = replace(plan, min_time_s=plan.max_time_s)
    spec = make_spec(model, targets=targets, batch=parse_batches(batch) if batch else (), dims=dims,
                     shapes=shapes, inputs=inputs, seed=seed, threads=threads, opt_level=opt_level, plan=plan,
                     allow_fallback=allow_fallback, results_dir=None if no_save else results_dir, variants=variants,
                     accuracy_budget=accuracy_budget, calibration=calibration, cache_dir=cache_dir, profile=profile,
                     trust=trust, factory=factory, opset=opset, float64=float64, store=store,
                     fail_on_fallback=fail_on_fallback)
    _run_and_print(spec, fmt, output)


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the variant files and manifest.json.")
@variants_option
@calibration_option
@cache_option
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE", help="Value of a named free dim.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…", help="Whole shape of one input.")
@click.option("--accuracy-budget", metavar="METRIC>=N[,…]", help="Budget fp16's repair keeps to [cos>=0.99].")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds one build step may take.")
@debug_option
def optimize(model, output_dir, variants, calibration, cache_dir, dims, shapes, accuracy_budget, timeout) -> None:
    """Build optimized variants of MODEL into a folder, with a manifest; nothing is timed."""
    from perfkit.optimize import build_all
    from perfkit.spec import Plan, make_spec

    spec = make_spec(model, dims=dims, shapes=shapes, variants=variants or ("auto",), calibration=calibration,
                     cache_dir=cache_dir, accuracy_budget=accuracy_budget, plan=Plan(timeout_s=timeout),
                     results_dir=None)

    def progress(text: str) -> None:
        click.echo(text, err=True)

    manifest = build_all(spec, output_dir, on_progress=progress)
    for entry in manifest["variants"]:
        where = entry.get("file") or f"{entry['status']}: {entry['reason']}"
        click.echo(f"{entry['variant']:<48} {where}")
    for warning in manifest["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {os.path.join(output_dir, 'manifest.json')}", err=True)
    if any(e["status"] == "failed" for e in manifest["variants"]):
        sys.exit(EXIT_ROW_FAILED)


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the .onnx file.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…",
              help="Example shape of an input (PyTorch modules do not record theirs).")
@click.option("--inputs", type=click.Path(), help="Real inputs for the parity check: .npz, or .csv/.parquet rows.")
@click.option("-b", "--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Rows (items) per synthetic parity feed.")
@trust_option
@factory_option
@opset_option
@float64_option
@cache_option
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds the conversion may take.")
@debug_option
def convert(model, output, shapes, inputs, batch, trust, factory, opset, float64, cache_dir, timeout) -> None:
    """Convert a native MODEL to ONNX and check that the ONNX model gives the native model's answers."""
    from perfkit.convert import run_convert

    lines, _ = run_convert(model, output, shapes=shapes, inputs=inputs, batch=batch, trust=trust,
                           factory=factory, opset=opset, float64=float64, cache_dir=cache_dir, timeout_s=timeout)
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@debug_option
def inspect(path, fmt) -> None:
    """Say what a model file is, whether perfkit can load and convert it, and the way to ONNX."""
    import json

    from perfkit.identify import identify_file

    found = identify_file(path)
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
    from perfkit.examples import write
    from perfkit.spec import QUICK_PLAN, Plan, make_spec

    path = write("cnn", os.path.join(".perfkit-cache", "examples"))
    click.echo(f"built {path} (a 2-layer CNN, 32x32 RGB input, random weights)", err=True)
    spec = make_spec(path, batch=(8,), plan=QUICK_PLAN if quick else Plan(), results_dir=results_dir, store=store,
                     variants=("auto",), accuracy_budget="cos>=0.999")
    _run_and_print(spec, fmt, None)


def _run_and_print(spec, fmt: str, output: str | None) -> None:
    from perfkit import bench as bench_module

    # Plain lines, not a live spinner: a spinner's redraw thread would compete with the timed loop for the GIL.
    def progress(text: str) -> None:
        if sys.stderr.isatty():
            click.echo(f"{text} …", err=True)

    report = bench_module.run(spec, on_progress=progress, command=tuple(sys.argv))
    _emit(report, fmt, output)
    if spec.results_dir:
        where = "the PostgreSQL store" if spec.store else f"{spec.results_dir}/"
        click.echo(f"saved run {report.run_id} in {where}", err=True)
    if report.failed:
        sys.exit(EXIT_ROW_FAILED)


def _emit(report, fmt: str, output: str | None) -> None:
    from perfkit.render import render

    if output:
        from pathlib import Path

        from perfkit.store import write_atomic

        write_atomic(Path(output), render(report, fmt, width=200))
        click.echo(f"wrote {output}", err=True)
        return
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((200, 24)).columns if tty else 200
    click.echo(render(report, fmt, width=width, color=tty), nl=False)


@main.command()
@click.argument("run", default="latest")
@format_option
@output_option
@results_option
@store_option
@debug_option
def show(run, fmt, output, results_dir, store) -> None:
    """Re-render a stored RUN (an id, an id prefix, 'latest' or a .json path)."""
    from perfkit.store import Store

    _emit(Store(results_dir, store).load(run), fmt, output)


@main.command()
@click.argument("run", default="latest")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE [report.html / stdout].")
@click.option("--format", "fmt", type=click.Choice(["html", "markdown"]), default="html", show_default=True,
              help="html: one self-contained file with plots; markdown: for a pull-request comment.")
@results_option
@store_option
@debug_option
def report(run, output, fmt, results_dir, store) -> None:
    """A stored RUN as a self-contained HTML page (plots, table, environment) or as markdown."""
    from pathlib import Path

    from perfkit.store import Store, write_atomic

    stored = Store(results_dir, store).load(run)
    if fmt == "markdown":
        from perfkit.render import render_markdown

        text = render_markdown(stored)
        if not output:
            click.echo(text, nl=False)
            return
    else:
        from perfkit.html_report import render_html

        text = render_html(stored)
        output = output or "report.html"
    write_atomic(Path(output), text)
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@results_option
@store_option
@debug_option
def runs(limit, results_dir, store) -> None:
    """List stored runs, newest first."""
    from perfkit.store import Store

    rows = Store(results_dir, store).runs(limit)
    if not rows:
        click.echo(f"no runs in {results_dir}/ yet — try `perfkit demo`")
        return
    click.echo(f"{'run':<26} {'created':<25} {'rows':>4}  {'state':<10} model")
    for r in rows:
        state = "complete" if r.complete else "incomplete"
        click.echo(f"{r.run_id:<26} {r.created:<25} {r.rows:>4}  {state:<10} {r.model}")


@main.command()
@click.argument("old")
@click.argument("new", default="latest")
@click.option("--fail-on-regression", "fail_on", metavar="PCT",
              help="Exit 1 when a case is slower by more than this (e.g. 5%) and the change is significant.")
@click.option("--threshold", default="2%", show_default=True, metavar="PCT",
              help="Smallest change of the median that counts, however significant.")
@results_option
@store_option
@debug_option
def compare(old, new, fail_on, threshold, results_dir, store) -> None:
    """Compare two runs case by case (ids, prefixes, 'latest', baseline names or .json paths)."""
    from perfkit.compare import compare_runs, comparison_lines, parse_threshold
    from perfkit.store import Store

    limit = parse_threshold(fail_on) if fail_on else None
    practical = parse_threshold(threshold)
    store = Store(results_dir, store)
    result = compare_runs(store.load(old), store.load(new), practical=practical)
    for line in comparison_lines(result):
        click.echo(line)
    if limit is not None and result.worst_regression() > limit:
        click.echo(f"perfkit: regression: a case is {result.worst_regression():.1%} slower (limit {limit:.1%})",
                   err=True)
        sys.exit(1)


@main.command()
@click.argument("model")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest runs to show.")
@results_option
@store_option
@debug_option
def history(model, limit, results_dir, store) -> None:
    """The median of each case of MODEL (a path or file name) across the stored runs, oldest first."""
    from perfkit.render import fmt_ns
    from perfkit.store import Store

    rows = Store(results_dir, store).history(model, limit)
    if not rows:
        click.echo(f"no runs of {model} in {results_dir}/")
        return
    cases: dict[tuple, list] = {}
    for run_id, _created, variant, target, batch, median, status in rows:
        cases.setdefault((variant, target, batch), []).append((run_id, median, status))
    for (variant, target, batch), points in cases.items():
        medians = [m for _, m, _ in points if m]
        trend = ""
        if len(medians) >= 2:
            trend = f"  ({medians[-1] / medians[0] - 1:+.1%} first to last)"
        click.echo(f"{variant} on {target}, batch {batch}{trend}")
        for run_id, median, status in points:
            click.echo(f"  {run_id}  {fmt_ns(median) if median else status:>10}  {_bar(median, medians)}")


def _bar(value: float | None, values: list[float]) -> str:
    """A text bar scaled between the case's fastest and slowest run: the trend at a glance."""
    if not value or not values or max(values) == min(values):
        return ""
    return "█" * (1 + round(19 * (value - min(values)) / (max(values) - min(values))))


@main.command()
@click.argument("run")
@click.argument("name")
@results_option
@store_option
@debug_option
def baseline(run, name, results_dir, store) -> None:
    """Keep RUN as results/baselines/NAME.json, to commit and compare against (perfkit compare NAME latest)."""
    from perfkit.store import Store

    click.echo(f"wrote {Store(results_dir, store).save_baseline(run, name)}")


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@debug_option
def env(fmt) -> None:
    """Print the environment fingerprint that every run records."""
    import dataclasses
    import json

    from perfkit.env import describe, fingerprint

    e = fingerprint()
    if fmt == "json":
        click.echo(json.dumps(dataclasses.asdict(e), indent=1))
        return
    for label, value in describe(e):
        click.echo(f"{label:>14}  {value}")
