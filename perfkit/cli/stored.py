"""Commands over stored runs: show, report, runs, history, baseline; and env."""

from __future__ import annotations

import click

from perfkit.cli.group import debug_option, emit, format_option, main, output_option, results_option, store_option


@main.command()
@click.argument("run", default="latest")
@format_option
@output_option
@results_option
@store_option
@debug_option
def show(run, fmt, output, results_dir, store) -> None:
    """Re-render a stored RUN (an id, an id prefix, 'latest' or a .json path; a load run too)."""
    from perfkit.output.load_store import LoadStore
    from perfkit.output.store import Store

    loaded = LoadStore(results_dir).find(run) if run != "latest" else None
    if loaded:
        from pathlib import Path

        from perfkit.output.load_render import render_load

        text = render_load(loaded, fmt)
        if output:
            Path(output).write_text(text)
        else:
            click.echo(text, nl=False)
        return
    emit(Store(results_dir, store).load(run), fmt, output)


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

    from perfkit.output.load_store import LoadStore
    from perfkit.output.store import Store, write_atomic

    loaded = LoadStore(results_dir).find(run) if run != "latest" else None
    if loaded:
        from perfkit.output.load_html import render_load_html
        from perfkit.output.load_render import render_load

        text = render_load(loaded, "markdown") if fmt == "markdown" else render_load_html(loaded)
        if fmt == "markdown" and not output:
            click.echo(text, nl=False)
            return
        output = output or "report.html"
        write_atomic(Path(output), text)
        click.echo(f"wrote {output}", err=True)
        return
    stored = Store(results_dir, store).load(run)
    if fmt == "markdown":
        from perfkit.output.render import render

        text = render(stored, "markdown")
        if not output:
            click.echo(text, nl=False)
            return
    else:
        from perfkit.output.html import render_html

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
    from perfkit.output.load_store import LoadStore
    from perfkit.output.store import Store

    rows = Store(results_dir, store).runs(limit)
    loads = LoadStore(results_dir).listed(limit)
    if not rows and not loads:
        click.echo(f"no runs in {results_dir}/ yet — try `perfkit demo`")
        return
    click.echo(f"{'run':<26} {'created':<25} {'rows':>4}  {'state':<10} model")
    for r in rows:
        state = "complete" if r.complete else "incomplete"
        click.echo(f"{r.run_id:<26} {r.created:<25} {r.rows:>4}  {state:<10} {r.model}")
    for lr in loads:
        state = "complete" if lr.complete else "incomplete"
        click.echo(f"{lr.run_id:<26} {lr.created:<25} {len(lr.rows):>4}  {state:<10} {lr.spec.bench.model} "
                   f"(load, {lr.spec.scenario})")


@main.command()
@click.argument("model")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest runs to show.")
@results_option
@store_option
@debug_option
def history(model, limit, results_dir, store) -> None:
    """The median of each case of MODEL (a path or file name) across the stored runs, oldest first."""
    from perfkit.output.lines import history_lines
    from perfkit.output.load_render import load_history_lines
    from perfkit.output.load_store import LoadStore
    from perfkit.output.store import Store

    points = Store(results_dir, store).history(model, limit)
    loads = load_history_lines(LoadStore(results_dir).of_model(model, limit))
    if not points and not loads:
        click.echo(f"no runs of {model} in {results_dir}/")
        return
    for line in [*(history_lines(points) if points else []), *loads]:
        click.echo(line)


@main.command()
@click.argument("run")
@click.argument("name")
@results_option
@store_option
@debug_option
def baseline(run, name, results_dir, store) -> None:
    """Keep RUN as results/baselines/NAME.json, to commit and compare against (perfkit compare NAME latest)."""
    from perfkit.output.store import Store

    click.echo(f"wrote {Store(results_dir, store).save_baseline(run, name)}")


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@debug_option
def env(fmt) -> None:
    """Print the environment fingerprint that every run records."""
    import dataclasses
    import json

    from perfkit.measure.env import fingerprint
    from perfkit.output.cells import describe

    e = fingerprint()
    if fmt == "json":
        click.echo(json.dumps(dataclasses.asdict(e), indent=1))
        return
    for label, value in describe(e):
        click.echo(f"{label:>14}  {value}")
