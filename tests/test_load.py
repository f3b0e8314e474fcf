"""perfkit load's flow on the fake backend and its simulated clock: steps per concurrency and rate, the SLO
search converging on a known capacity, the batcher, the cost, and the one-line errors."""

from __future__ import annotations

import json

import pytest

from perfkit import load
from perfkit.analysis.load import needed_requests, search_rate
from perfkit.core.errors import PerfkitError
from perfkit.core.load import Slo, parse_batching, parse_price, parse_slo
from perfkit.core.spec import Plan
from perfkit.options import make_load_spec, make_spec
from perfkit.output.load_render import render_load

PLAN = Plan(isolate=False, timeout_s=60)


def run(fake_backend, tmp_path, latency_ns=1_000_000, variants=(), **load_options):
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=latency_ns)
    bench = make_spec(model, results_dir=None, variants=variants, cache_dir=str(tmp_path / "cache"), plan=PLAN)
    return load.run(make_load_spec(bench, **load_options))


def test_offline_steps_give_the_throughput_of_the_simulated_service(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, concurrency="1,2", duration="2s", price="3.6/h")
    (row,) = report.rows
    assert [s.concurrency for s in row.steps] == [1, 2]
    # 1 ms per call on one simulated machine: about 1,000 calls a second however many callers share it
    assert all(s.requests_per_s == pytest.approx(1_000, rel=0.05) for s in row.steps)
    assert row.steps[0].p50_ns == pytest.approx(1_000_000, rel=0.03)
    # $3.60 an hour at 1,000 inferences a second: $1 per million
    assert row.cost_per_million == pytest.approx(1.0, rel=0.05)


def test_the_slo_search_finds_the_known_capacity(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, scenario="server", slo="p99<=20ms", duration="2s")
    (row,) = report.rows
    # M/D/1 with 1 ms of service: p99 stays under 20 ms up to roughly 90 % of the 1,000/s capacity
    assert 800 <= row.max_rate_meeting_slo <= 1_000
    passing = [s for s in row.search if s.slo_pass]
    failing = [s for s in row.search if s.slo_pass is False]
    assert passing and failing and min(f.rate for f in failing) <= row.max_rate_meeting_slo * 1.1
    assert all(s.requests >= needed_requests(Slo(99, 20_000_000)) for s in row.search)
    data = json.loads(render_load(report, "json"))
    step = data["rows"][0]["steps"][0]
    assert {"concurrency", "rate", "requests_per_s", "items_per_s", "p50_ns", "p90_ns", "p99_ns", "p999_ns",
            "slo_pass"} <= set(step)
    assert data["rows"][0]["max_rate_meeting_slo"] == row.max_rate_meeting_slo


def test_given_rates_are_steps_with_a_verdict_each(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, scenario="server", rate="300,1500", slo="p99<=20ms", duration="1s")
    low, high = report.rows[0].steps
    assert low.slo_pass and not high.slo_pass  # 1,500/s offered to a 1,000/s server: the queue grows
    assert high.requests_per_s == pytest.approx(1_000, rel=0.05)
    assert "FAIL" in render_load(report, "table")


def test_a_batcher_raises_the_rate_that_meets_the_slo(fake_backend, tmp_path):
    plain = run(fake_backend, tmp_path, scenario="server", rate="1500", slo="p99<=20ms", duration="1s")
    batched = run(fake_backend, tmp_path, scenario="server", rate="1500", slo="p99<=20ms", duration="1s",
                  batching="max=8,delay=2ms")
    assert not plain.rows[0].steps[0].slo_pass
    step = batched.rows[0].steps[0]
    # the fake session costs the same per call whatever the batch: grouped requests share one call
    assert step.slo_pass and step.mean_batch > 1.5 and step.batching == "max=8,delay=2ms"


def test_search_rate_brackets_then_bisects():
    probes: list[float] = []

    def passes(rate: float) -> bool:
        probes.append(rate)
        return rate <= 730

    best = search_rate(passes, 100)
    assert 730 * 0.95 <= best <= 730 and len(probes) <= 16
    assert search_rate(lambda r: False, 100) is None


@pytest.mark.parametrize(("option", "value", "message"), [
    ("slo", "p99 under 20ms", "not a latency objective"), ("slo", "p100<=1ms", "not a latency objective"),
    ("concurrency", "0,2", "not a list of positive numbers"), ("rate", "0", "not a list of positive numbers"),
    ("price", "0.34", "not a price per unit of time"), ("batching", "max=0,delay=1ms", "not a batcher"),
])
def test_bad_load_options_are_one_line(tmp_path, option, value, message):
    bench = make_spec(str(tmp_path / "m.onnx"), results_dir=None)
    extra = {"scenario": "server", "slo": "p99<=5ms"} if option in ("rate", "batching") else {}
    with pytest.raises(PerfkitError, match=message):
        make_load_spec(bench, **{**extra, option: value})


def test_parsers_read_units():
    assert parse_slo("p99.9<=500us") == Slo(99.9, 500_000)
    assert parse_batching("max=16,delay=2ms").delay_ns == 2_000_000
    assert parse_price("$8.16/day") == pytest.approx(0.34)
    assert needed_requests(Slo(99, 1)) == 2_000 and needed_requests(Slo(99.9, 1)) == 20_000


def test_ctrl_c_keeps_the_rows_that_finished(fake_backend, tmp_path):
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=1_000_000)
    bench = make_spec(model, results_dir=None, variants=("fast",), cache_dir=str(tmp_path / "cache"), plan=PLAN)
    spec = make_load_spec(bench, duration="1s")

    def interrupt_on_the_second_row(line: str) -> None:
        if line.startswith("load: fast"):
            raise KeyboardInterrupt

    report = load.run(spec, on_progress=interrupt_on_the_second_row)
    assert [r.label for r in report.rows] == ["base"] and not report.complete
    assert "interrupted" in report.warnings[-1]


def test_a_model_that_fails_under_load_is_a_failed_row_exit_3(tmp_path):
    import onnx
    from click.testing import CliRunner
    from onnx import TensorProto, helper

    from perfkit.cli import main

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, -1])  # a batch of 1 cannot be 3 rows
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "bad.onnx")
    result = CliRunner().invoke(main, ["load", str(tmp_path / "bad.onnx"), "--duration", "0.2s", "--no-save",
                                       "--format", "json"])
    assert result.exit_code == 3, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert row["status"] == "failed" and "Reshape" in row["reason"]


def test_callers_as_processes_each_open_their_own_session(tmp_path):
    import onnx

    from tests.models import mlp

    onnx.save(mlp(), tmp_path / "mlp.onnx")
    bench = make_spec(str(tmp_path / "mlp.onnx"), results_dir=None, cache_dir=str(tmp_path / "cache"), plan=PLAN)
    report = load.run(make_load_spec(bench, concurrency="2", processes=True, duration="0.3s"))
    (step,) = report.rows[0].steps
    assert report.rows[0].status == "ok" and step.concurrency == 2 and step.requests > 100 and step.errors == 0


def test_processes_belong_to_the_offline_scenario(tmp_path):
    bench = make_spec(str(tmp_path / "m.onnx"), results_dir=None)
    with pytest.raises(PerfkitError, match="offline scenario"):
        make_load_spec(bench, scenario="server", slo="p99<=5ms", processes=True)


def test_a_load_run_is_kept_and_shown_again_the_same(fake_backend, tmp_path):
    from perfkit.output.load_store import LoadStore

    report = run(fake_backend, tmp_path, scenario="server", rate="300", slo="p99<=20ms", duration="0.5s")
    store = LoadStore(tmp_path / "results")
    store.save(report)
    again = store.find(report.run_id[:12])
    assert again == report
    assert render_load(again, "table") == render_load(report, "table")
    assert store.find("no-such-run") is None


def test_batching_auto_names_the_best_batcher_for_the_slo(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, scenario="server", slo="p99<=20ms", duration="0.5s", batching="auto")
    assert len(report.rows) == 4 and all(r.max_rate_meeting_slo for r in report.rows)
    best = max(report.rows, key=lambda r: r.max_rate_meeting_slo)
    assert f"best batcher for base on ort:cpu: {best.steps[0].batching}" in render_load(report, "table")


def test_the_html_page_draws_the_curve_with_the_slo_and_a_percentile_plot_per_row(fake_backend, tmp_path):
    from perfkit.output.load_html import render_load_html

    report = run(fake_backend, tmp_path, scenario="server", rate="300,700,950", slo="p99<=20ms", duration="0.5s",
                 variants=("fast",))
    page = render_load_html(report)
    assert page.count("<svg") == 1 + len(report.rows)  # the curve, then one percentile plot per row
    assert 'class="slo"' in page and "SLO p99&lt;=20ms" in page
    assert page.count("<polyline") == len(report.rows) + sum(len(r.steps) for r in report.rows)


def test_compare_holds_the_highest_rates_to_their_search_brackets(fake_backend, tmp_path):
    from click.testing import CliRunner

    from perfkit.analysis.load import rate_change
    from perfkit.cli import main
    from perfkit.output.load_store import LoadStore

    assert not rate_change(900, 950, 930, 980).significant  # the brackets overlap
    slower = rate_change(900, 950, 600, 640)
    assert slower.significant and slower.high < 1
    store = LoadStore(tmp_path / "results")
    (tmp_path / "slow").mkdir()
    fast = run(fake_backend, tmp_path, latency_ns=1_000_000, scenario="server", slo="p99<=20ms", duration="0.5s")
    slow = run(fake_backend, tmp_path / "slow", latency_ns=2_000_000, scenario="server", slo="p99<=20ms",
               duration="0.5s")
    store.save(fast)
    store.save(slow)
    result = CliRunner().invoke(main, ["compare", fast.run_id, slow.run_id, "--results-dir",
                                       str(tmp_path / "results"), "--fail-on-regression", "10%"])
    assert result.exit_code == 1, result.output
    assert "slower" in result.stdout and "sustains" in result.stderr


def test_history_lists_the_load_runs_of_a_model(fake_backend, tmp_path):
    from click.testing import CliRunner

    from perfkit.cli import main
    from perfkit.output.load_store import LoadStore

    report = run(fake_backend, tmp_path, concurrency="1", duration="0.5s")
    LoadStore(tmp_path / "results").save(report)
    result = CliRunner().invoke(main, ["history", "model.onnx", "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 0 and f"{report.run_id}  load offline base on ort:cpu: peak" in result.stdout


def test_a_model_failing_every_call_under_the_server_scenario_is_a_failed_row(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, -1])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "bad.onnx")
    bench = make_spec(str(tmp_path / "bad.onnx"), results_dir=None, cache_dir=str(tmp_path / "c"), plan=PLAN)
    report = load.run(make_load_spec(bench, scenario="server", rate="500", slo="p99<=5ms", duration="0.2s"))
    assert report.rows[0].status == "failed" and "Reshape" in report.rows[0].reason
