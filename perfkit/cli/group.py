"""The `perfkit` command group, its one-line errors and exit codes, the options commands share, and how a
report reaches the terminal or a file. The only place, with the commands beside it, that prints or exits."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING, Any

import click

from perfkit.output import FORMATS

if TYPE_CHECKING:
    from perfkit.core.report import Report
    from perfkit.core.spec import Plan

EXIT_USER_ERROR, EXIT_ROW_FAILED = 2, 3


class PerfkitGroup(click.Group):
    """Turns a PerfkitError into one line on stderr and exit 2; --debug (or PERFKIT_DEBUG=1) shows tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        from perfkit.core.errors import PerfkitError

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
def native_hint_options(command):
    """--task, --input-names, --output-names: handed to the command as one `hints` (a NativeHints)."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, task=None, input_names=None, output_names=None, **kwargs):
        from perfkit.core.model import NativeHints

        def names(text: str | None) -> tuple[str, ...]:
            return tuple(n.strip() for n in (text or "").split(",") if n.strip())

        return command(*args, hints=NativeHints(task=task, input_names=names(input_names),
                                                output_names=names(output_names)), **kwargs)

    for option in reversed((
        click.option("--task", metavar="TASK", help="A Hugging Face folder's task (text-classification, "
                     "feature-extraction, …) [from config.json's architectures]."),
        click.option("--input-names", metavar="NAME[,NAME…]",
                     help="A TensorFlow frozen graph's input ops, where its Placeholders are ambiguous."),
        click.option("--output-names", metavar="NAME[,NAME…]",
                     help="A TensorFlow frozen graph's output ops, where more than one node is consumed by none."),
    )):
        wrapper = option(wrapper)
    return wrapper


opset_option = click.option("--opset", type=click.IntRange(7, 30), help="Opset of the ONNX conversion of a native "
                            "model [18].")
float64_option = click.option("--float64", is_flag=True,
                              help="scikit-learn: convert with float64 inputs (keeps its precision; slower).")
upgrade_opset_option = click.option("--upgrade-opset", is_flag=True,
                                    help="An ONNX model older than opset 7 (onnxruntime has no kernels that old) is "
                                    "upgraded to opset 13 with onnx.version_converter, in the cache, and measured so.")
cache_option = click.option("--cache-dir", default=None,
                            help="Where built variants are cached [.perfkit-cache, or $PERFKIT_CACHE].")


_TIMING = (
    click.option("-t", "--target", "targets", multiple=True, default=("ort:cpu",), show_default=True,
                 help="BACKEND:DEVICE[,KEY=VALUE…], e.g. ort:cpu, ort:cuda,device_id=0 (repeatable)."),
    click.option("-b", "--batch", help="Batch sizes, one row each: 1,8,32."),
    click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE", help="Value of a named free dim."),
    click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…[:DTYPE]",
                 help="Whole shape of one input, and its element type for a PyTorch module: input_ids=1x128:int64."),
    click.option("--inputs", type=click.Path(), help="Feed this .npz (one array per input) or .npy."),
    click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads (default: onnxruntime's)."),
    click.option("--quick", is_flag=True, help="A fast look: short warm-up and timing (noisier)."),
    click.option("--min-time", type=click.FloatRange(min=0), help="Seconds of timing per row at least [2]."),
    click.option("--max-time", type=click.FloatRange(min=0), help="Seconds of timing per row at most [20]."),
    click.option("--no-isolate", is_flag=True, help="Run rows in this process (faster start, no crash safety)."),
)


def timing_options(command):
    """What to feed, where, and how long: the options every command that measures shares."""
    for option in reversed(_TIMING):
        command = option(command)
    return command


def plan_from(quick: bool, min_time: float | None, max_time: float | None, **fields) -> Plan:
    """The timing options as a Plan: --quick's or the default, with the times given and `fields` set; a
    maximum below the minimum lowers the minimum."""
    from dataclasses import replace

    from perfkit.core.spec import QUICK_PLAN, Plan

    times: dict[str, Any] = {k: v for k, v in (("min_time_s", min_time), ("max_time_s", max_time)) if v is not None}
    plan = replace(QUICK_PLAN if quick else Plan(), **times, **fields)
    return replace(plan, min_time_s=plan.max_time_s) if plan.max_time_s < plan.min_time_s else plan


@click.group(cls=PerfkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
@click.version_option(package_name="perfkit")
def main() -> None:
    """How fast is this model, how fast can it get, and what does that cost in accuracy?"""


def emit(report: Report, fmt: str, output: str | None) -> None:
    from perfkit.output.render import render

    if output:
        from pathlib import Path

        from perfkit.output.store import write_atomic

        write_atomic(Path(output), render(report, fmt, width=200))
        click.echo(f"wrote {output}", err=True)
        return
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((200, 24)).columns if tty else 200
    click.echo(render(report, fmt, width=width, color=tty), nl=False)


