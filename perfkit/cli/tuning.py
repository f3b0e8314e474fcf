"""`perfkit tune`: search the model's variants and onnxruntime's session settings for the fastest
configuration inside an accuracy budget, and write it where a deployment can pick it up."""

from __future__ import annotations

import sys

import click

from perfkit.cli.group import (
    EXIT_ROW_FAILED,
    cache_option,
    calibration_option,
    debug_option,
    emit,
    factory_option,
    format_option,
    main,
    native_hint_options,
    opset_option,
    results_option,
    store_option,
    trust_option,
    upgrade_opset_option,
    variants_option,
)


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the tuned model file, perfkit-tuned.json and run_tuned.py.")
@click.option("-t", "--target", "target", default="ort:cpu", show_default=True,
              help="The one target to tune for: ort:cpu, ort:cuda, ort:tensorrt.")
@click.option("-b", "--batch", help="Batch size; with --objective throughput, the sizes to choose from: 1,8,32.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE", help="Value of a named free dim.")
@click.option("--shape", "shapes", multiple=True, metavar="INPUT=D1xD2…[:DTYPE]", help="Whole shape of one input.")
@click.option("--inputs", type=click.Path(), help="Feed this .npz (one array per input); accuracy is judged on it.")
@click.option("--threads", type=click.IntRange(min=1), help="The most intra-op threads a configuration may use.")
@variants_option
@click.option("--accuracy-budget", metavar="METRIC>=N[,…]",
              help="What every candidate must keep [cos>=0.99,agree>=0.99].")
@calibration_option
@click.option("--eval", "eval_data", type=click.Path(),
              help="Labelled samples (.npz with a `labels` array, or a table with --label-column): accuracy is "
                   "judged on them, and budget terms such as top1_drop<=0.5% apply.")
@click.option("--label-column", metavar="NAME", help="The labels' column when --eval is a .csv/.parquet table.")
@click.option("--time-budget", default="5m", show_default=True, metavar="DURATION",
              help="The whole search, builds included: 5m, 90s, 1h.")
@click.option("--objective", type=click.Choice(["median", "p99", "throughput"]), default="median",
              show_default=True, help="What the search minimises (latency) or maximises (items per second).")
@click.option("--max-memory", metavar="SIZE", help="Drop candidates whose peak memory passes this: 2GB, 512MB.")
@click.option("--threshold", default="2%", show_default=True, metavar="PCT",
              help="The smallest speed-up the winner must show beyond the noise to replace the default.")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds before a case or build counts as hung [300].")
@click.option("--no-isolate", is_flag=True, help="Run candidates in this process (no crash safety; for tests).")
@click.option("--no-save", is_flag=True, help="Keep no run in the results folder (the tuned folder is still written).")
@cache_option
@trust_option
@factory_option
@native_hint_options
@opset_option
@upgrade_opset_option
@format_option
@results_option
@store_option
@debug_option
def tune(model, output_dir, target, batch, dims, shapes, inputs, threads, variants, accuracy_budget, calibration,
         eval_data, label_column, time_budget, objective, max_memory, threshold, timeout, no_isolate, no_save,
         cache_dir, trust, factory, opset, upgrade_opset, fmt, results_dir, store, hints) -> None:
    """Find the fastest configuration of MODEL inside an accuracy budget: its variants (auto by default) and
    onnxruntime's session settings, searched by successive halving on interleaved rounds and confirmed
    against the default in a final A/B. Returned only if significantly faster; otherwise the default is the
    answer, and the output says so."""
    from perfkit import tune as tune_module
    from perfkit.analysis.comparison import parse_threshold
    from perfkit.cli.progress import Progress
    from perfkit.core.spec import Plan, parse_batches
    from perfkit.options import make_spec, make_tune_spec

    plan = Plan(isolate=not no_isolate, threshold=parse_threshold(threshold, "--threshold"),
                **({"timeout_s": timeout} if timeout is not None else {}))
    bench = make_spec(model, targets=(target,), batch=parse_batches(batch) if batch else (), dims=dims,
                      shapes=shapes, inputs=inputs, threads=threads, plan=plan,
                      results_dir=None if no_save else results_dir, variants=variants or ("auto",),
                      accuracy_budget=accuracy_budget, calibration=calibration, cache_dir=cache_dir, trust=trust,
                      factory=factory, opset=opset, store=store, eval=eval_data, label_column=label_column,
                      hints=hints, upgrade_opset=upgrade_opset)
    spec = make_tune_spec(bench, output_dir=output_dir, objective=objective, time_budget=time_budget,
                          max_memory=max_memory)
    progress = Progress()
    try:
        report = tune_module.run(spec, on_progress=progress.step, command=tuple(sys.argv), on_tick=progress.tick)
    finally:
        progress.clear()
    emit(report, fmt, None)
    search = report.search
    if search:
        click.echo(f"wrote {search.config} (python {output_dir}/run_tuned.py opens the same session)", err=True)
    if bench.results_dir:
        click.echo(f"saved run {report.run_id}; perfkit report {report.run_id} shows the search", err=True)
    if report.failed:
        sys.exit(EXIT_ROW_FAILED)
