"""`perfkit load`: the model and its variants under load — callers back to back per concurrency (offline), or
requests arriving at a rate, searched for the highest rate that meets an SLO (server)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from perfkit.cli.group import (
    EXIT_ROW_FAILED,
    cache_option,
    calibration_option,
    debug_option,
    factory_option,
    format_option,
    main,
    native_hint_options,
    opset_option,
    output_option,
    results_option,
    trust_option,
    upgrade_opset_option,
    variants_option,
)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--scenario", type=click.Choice(["offline", "server"]), default="offline", show_default=True,
              help="offline: callers back to back, the throughput per concurrency; server: Poisson arrivals at a "
                   "rate, latency from each request's scheduled arrival.")
@click.option("-c", "--concurrency", metavar="N[,N…]",
              help="offline: callers, one row step each [1]; server: requests served at once [1].")
@click.option("--rate", metavar="R[,R…]", help="server: offered requests per second, one step each.")
@click.option("--slo", metavar="pP<=TIME", help="A latency objective, e.g. \"p99<=20ms\"; with the server scenario "
                                                "and no --rate, the highest rate that meets it is searched for.")
@click.option("--batching", metavar="max=B,delay=D|auto",
              help="server: a dynamic batcher in front of the session (requests within D run as one batch of up "
                   "to B); auto tries a small grid.")
@click.option("--duration", default="5s", show_default=True, metavar="TIME",
              help="Timed seconds per step (offline), or of arrivals per step (server; at least enough requests "
                   "for the SLO's percentile).")
@click.option("--sessions", type=click.Choice(["shared", "per-caller"]), default="shared", show_default=True,
              help="One onnxruntime session for every caller, or one each.")
@click.option("--processes", is_flag=True, help="Callers as processes instead of threads.")
@click.option("--price", metavar="DOLLARS/h", help="The machine's price, for the cost of a million inferences.")
@click.option("-t", "--target", "targets", multiple=True, default=("ort:cpu",), show_default=True,
              help="BACKEND:DEVICE[,KEY=VALUE…] (repeatable).")
@click.option("-b", "--batch", help="Items per request: 1,8 (one row each).")
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE", help="Value of a named free dim.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…[:DTYPE]", help="Whole shape of one input.")
@click.option("--inputs", type=click.Path(), help="Feed this .npz (one array per input name).")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads per session [cores ÷ callers].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the inputs and the arrivals.")
@variants_option
@calibration_option
@cache_option
@trust_option
@factory_option
@native_hint_options
@opset_option
@upgrade_opset_option
@format_option
@output_option
@results_option
@click.option("--no-save", is_flag=True, help="Keep no run in the results folder.")
@debug_option
def load(model, scenario, concurrency, rate, slo, batching, duration, sessions, processes, price, targets, batch,
         dims, shapes, inputs, threads, seed, variants, calibration, cache_dir, trust, factory, hints, opset,
         upgrade_opset, fmt, output, results_dir, no_save) -> None:
    """Put MODEL (and its variants, and a native model in its own framework) under load: throughput and
    latency percentiles per concurrency or request rate, the highest rate that meets an SLO, the knee of the
    latency-throughput curve and the cost of a million inferences."""
    from perfkit import load as load_flow
    from perfkit.cli.progress import Progress
    from perfkit.core.spec import parse_batches
    from perfkit.options import make_load_spec, make_spec
    from perfkit.output.load_render import render_load
    from perfkit.output.load_store import LoadStore

    bench = make_spec(model, targets=targets, batch=parse_batches(batch) if batch else (), dims=dims,
                      shapes=shapes, inputs=inputs, seed=seed, threads=threads, variants=variants,
                      calibration=calibration, cache_dir=cache_dir, trust=trust, factory=factory, opset=opset,
                      hints=hints, upgrade_opset=upgrade_opset, results_dir=None if no_save else results_dir)
    spec = make_load_spec(bench, scenario=scenario, concurrency=concurrency, rate=rate, slo=slo, batching=batching,
                          duration=duration, processes=processes, sessions=sessions, price=price)
    store = None if no_save else LoadStore(results_dir)

    def keep(report) -> None:  # every finished row is on disk: Ctrl-C loses only the row being measured
        if store:
            store.save(report)

    progress = Progress()
    try:
        report = load_flow.run(spec, on_progress=progress.step, command=tuple(sys.argv), on_row=keep)
    finally:
        progress.clear()
    keep(report)
    text = render_load(report, fmt)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)
    if store:
        click.echo(f"saved load run {report.run_id} in {store.folder} (perfkit show {report.run_id})", err=True)
    if any(r.status == "failed" for r in report.rows) or not report.complete:
        sys.exit(EXIT_ROW_FAILED)
