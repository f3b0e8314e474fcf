"""perfkit report: one self-contained HTML file with its plots drawn, checked in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import onnx
import pytest
from click.testing import CliRunner

from perfkit import bench
from perfkit.cli import main
from perfkit.options import make_spec
from perfkit.output.html import render_html
from tests import models
from tests.conftest import FAST

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    onnx.save_model(models.mlp(), folder / "mlp.onnx")
    return bench.run(make_spec(folder / "mlp.onnx", plan=FAST, results_dir=str(folder / "results"),
                               variants=("ort-opt:all", "int8-dynamic"), cache_dir=str(folder / "cache")))


def test_the_page_holds_three_plots_and_loads_nothing_from_elsewhere(run):
    page = render_html(run)
    assert page.count('<svg class="plot"') == 3
    assert len(re.findall(r'class="mark"', page)) >= 3 * 2  # every row drawn in the latency plot, and more
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page) and "@import" not in page
    assert "int8-dynamic" in page and run.environment.cpu_model in page


def test_markdown_for_a_pull_request_and_html_to_a_file(run, tmp_path, monkeypatch):
    from perfkit.output.store import Store

    monkeypatch.chdir(tmp_path)
    Store(run.spec.results_dir).save_baseline(run.run_id, "mlp")  # a stored run, kept as a baseline
    cli = CliRunner()
    where = ["--results-dir", run.spec.results_dir]
    md = cli.invoke(main, ["report", "mlp", "--format", "markdown", *where])
    assert md.exit_code == 0 and md.stdout.startswith(f"**perfkit run {run.run_id}**") and "| variant |" in md.stdout
    page = cli.invoke(main, ["report", "mlp", "-o", "out.html", *where])
    assert page.exit_code == 0 and (tmp_path / "out.html").read_text().startswith("<!DOCTYPE html>")
    assert oct((tmp_path / "out.html").stat().st_mode & 0o777) != oct(0o600)  # readable like any file you write


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_report_loads_in_headless_chromium_without_errors_and_draws_its_plots(run, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(run))
    done = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-plots="3/3"' in done.stdout  # the page's own check: every plot has marks and a size
    console_errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert console_errors == []
