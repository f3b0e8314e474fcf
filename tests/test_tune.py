"""perfkit tune's flow on the fake backend: the winner and the never-worse rule, candidates judged before they
are timed, the tuned folder, and the time budget. Simulated figures: the same on every machine."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from perfkit import tune
from perfkit.core.errors import PerfkitError
from perfkit.core.spec import Plan
from perfkit.options import make_spec, make_tune_spec

PLAN = Plan(warmup_calls=2, warmup_time_s=0.0, warmup_max_s=1.0, min_rounds=30, min_time_s=0.2, max_time_s=1.0,
            max_rounds=400, timeout_s=60, isolate=False)


def run(fake_backend, tmp_path, variants, budget="2m", **options):
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=1_000_000)
    options.setdefault("results_dir", None)
    options.setdefault("plan", PLAN)
    bench = make_spec(model, variants=variants, cache_dir=str(tmp_path / "cache"), **options)
    return tune.run(make_tune_spec(bench, output_dir=str(tmp_path / "tuned"), time_budget=budget))


def written(tmp_path):
    return json.loads((tmp_path / "tuned" / "perfkit-tuned.json").read_text())


def test_a_variant_twice_as_fast_is_the_answer_and_is_written(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("fast",))
    search = report.search
    assert search.winner is not None and search.answer.startswith("tuned: fast")
    config = written(tmp_path)
    assert config["model"]["lineage"] == ["fast"] and config["model"]["path"] == "model.onnx"
    assert config["speedup"]["value"] == pytest.approx(2.0, rel=0.03) and config["speedup"]["significant"]
    assert sorted(p.name for p in (tmp_path / "tuned").iterdir()) == \
        ["inputs.npz", "model.onnx", "perfkit-tuned.json", "run_tuned.py"]


def test_a_candidate_faster_only_inside_the_threshold_is_never_returned(fake_backend, tmp_path):
    fake_backend.MACHINE.reset(drift=lambda now: 1.0 + 0.03 * ((now // 7_000_000) % 3))  # a wobbling machine
    report = run(fake_backend, tmp_path, ("nudge",))
    assert report.search.winner is None
    assert re.match(r"the default stays: the best, nudge, read 1\.0[01]×", report.search.answer)
    assert report.search.answer.endswith("not significantly faster than onnxruntime's default session on the model "
                                         "as given")
    config = written(tmp_path)
    assert config["model"]["lineage"] == [] and config["speedup"] is None
    assert config["session_options"] == {"intra_op_num_threads": 0, "graph_optimization_level": "ORT_ENABLE_ALL"}


def test_a_variant_outside_the_budget_is_dropped_before_it_is_timed(fake_backend, tmp_path):
    report = run(fake_backend, tmp_path, ("wrong",), accuracy_budget="max_abs<=1e-3")
    search = report.search
    assert any(n.startswith("wrong outside the budget") for n in search.notes)
    timed = {search.candidates[t.candidate].variant for t in search.trials}
    assert "wrong" not in timed and report.search.winner is None


def test_every_phase_is_recorded_against_the_default(fake_backend, tmp_path):
    search = run(fake_backend, tmp_path, ("fast",)).search
    assert {t.phase for t in search.trials} == {"model", "threads", "details"}
    fast = next(t for t in search.trials if t.phase == "model")
    assert fast.score == pytest.approx(2.0, rel=0.03) and fast.status == "kept"


def test_a_budget_too_short_for_one_measurement_is_one_clear_error(fake_backend, tmp_path):
    with pytest.raises(PerfkitError, match=r"--time-budget 5s: too short to time 2 model files .* give "
                                           r"--time-budget \d+s or more"):
        run(fake_backend, tmp_path, ("fast",), budget="5s")
    assert not (tmp_path / "tuned").exists()


def test_a_folder_holding_other_files_is_refused(fake_backend, tmp_path):
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "notes.txt").write_text("mine")
    with pytest.raises(PerfkitError, match=r"tuned: holds files tune did not write \(notes.txt\), which replacing "
                                           "it would delete — give -o a new or empty folder"):
        run(fake_backend, tmp_path, ("fast",))
    assert (tmp_path / "tuned" / "notes.txt").read_text() == "mine"


def test_a_second_tune_replaces_the_first_ones_folder_whole(fake_backend, tmp_path):
    run(fake_backend, tmp_path, ("fast",))
    run(fake_backend, tmp_path, ("nudge",))
    assert written(tmp_path)["model"]["lineage"] == []
    assert sorted(p.name for p in (tmp_path / "tuned").iterdir()) == \
        ["inputs.npz", "model.onnx", "perfkit-tuned.json", "run_tuned.py"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tuned")] == []  # nothing staged left


@pytest.mark.parametrize(("options", "match"), [
    ({"objective": "fastest"}, "--objective fastest: unknown objective"),
    ({"time_budget": "soon"}, "--time-budget soon: not a duration"),
    ({"max_memory": "lots"}, "--max-memory lots: not a size"),
])
def test_bad_tune_options_are_one_clear_error(fake_backend, tmp_path, options, match):
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=1_000_000)
    with pytest.raises(PerfkitError, match=match):
        make_tune_spec(make_spec(model, results_dir=None), output_dir=str(tmp_path / "t"), **options)


def test_the_html_report_shows_the_search_the_dropped_and_the_front(fake_backend, tmp_path):
    import html

    from perfkit.output.html import render_html

    report = run(fake_backend, tmp_path, ("fast", "wrong"), accuracy_budget="max_abs<=1e-3")
    page = render_html(report)
    assert "<h2>The search</h2>" in page and html.escape(report.search.answer) in page
    assert 'data-plot="search"' in page and page.count('<g class="mark">') >= 3
    assert "fast ★" in page and "(out)" in page


def test_a_stored_tune_run_reads_back_with_its_search(fake_backend, tmp_path):
    from perfkit.output.render import render
    from perfkit.output.store import Store

    report = run(fake_backend, tmp_path, ("fast",), results_dir=str(tmp_path / "results"))
    stored = Store(str(tmp_path / "results")).load("latest")
    assert stored.search == report.search
    assert report.search.answer in render(stored, "markdown")


def test_two_stored_tune_runs_compare_case_by_case(fake_backend, tmp_path):
    from perfkit.analysis.comparison import compare_runs
    from perfkit.output.store import Store

    results = str(tmp_path / "results")
    first = run(fake_backend, tmp_path, ("fast",), results_dir=results)
    second = run(fake_backend, tmp_path, ("fast",), results_dir=results)
    store = Store(results)
    compared = compare_runs(store.load(first.run_id), store.load(second.run_id))
    assert len(compared.cases) == len(second.results) and {c.verdict for c in compared.cases} == {"≈"}


def test_the_star_marks_tunes_answer_not_the_fastest_median(fake_backend, tmp_path):
    from perfkit.analysis.verdict import judge
    from perfkit.output.cells import notes

    report = run(fake_backend, tmp_path, ("nudge",))
    assert judge(report).best == (0,)  # the 1 % faster row is not the answer
    assert "★ tune's answer: row 1 base (no variant is faster beyond the noise inside the budget)" in \
        notes(report, judge(report))


def test_p99_is_decided_on_tails_with_enough_calls(fake_backend, tmp_path):
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=1_000_000)
    bench = make_spec(model, results_dir=None, variants=("fast",), cache_dir=str(tmp_path / "cache"), plan=PLAN)
    report = tune.run(make_tune_spec(bench, output_dir=str(tmp_path / "tuned"), objective="p99", time_budget="2m"))
    assert report.search.answer.startswith("tuned: fast") and "p99" in report.search.answer
    assert min(len(r.measurement.samples_ns) for r in report.results) >= 500


def test_throughput_chooses_among_the_batches_each_judged_on_its_own_feeds(fake_backend, tmp_path):
    # the fake call costs the same at any batch: batch 4 moves four times the items per second
    model = fake_backend.write_model(tmp_path / "model.onnx", latency_ns=1_000_000)
    bench = make_spec(model, results_dir=None, variants=("same",), batch=(1, 4), cache_dir=str(tmp_path / "cache"),
                      plan=PLAN)
    report = tune.run(make_tune_spec(bench, output_dir=str(tmp_path / "tuned"), objective="throughput",
                                     time_budget="2m"))
    assert "batch 4" in report.search.answer and "items per second" in report.search.answer
    assert not any(t.status == "dropped" for t in report.search.trials)
    assert written(tmp_path)["inputs"]["batch"] == 4


def row_with_rounds(medians):
    from perfkit.core.model import Model
    from perfkit.core.report import Block, Measurement, Result
    from perfkit.core.spec import Target

    blocks = tuple(Block(k, 5, m) for k, m in enumerate(medians))
    measurement = Measurement(samples_ns=tuple(int(m) for m in medians), warmup_calls=1, warmup_ns=1, load_ns=1,
                              first_call_ns=1, harness_ns=1, resolution_ns=1, blocks=blocks)
    return Result(model=Model("m.onnx", "onnx", "d"), target=Target(), batch=1, shapes=(), status="ok",
                  measurement=measurement)


def test_a_speedup_from_a_default_that_swung_with_the_load_is_said_to_be_partly_load():
    swinging = row_with_rounds([7e6, 18e6] * 10)  # spinning threads: fast when the other core is free
    steady = row_with_rounds([4.7e6, 4.8e6] * 10)
    assert tune.load_note(swinging, steady).startswith("the default's per-round latency spread 2.6× between busy and "
                                                       "quiet spells, the winner's 1.0×")
    assert tune.load_note(steady, steady) == ""
    assert tune.load_note(swinging, swinging) == ""


def test_a_session_that_wins_only_while_the_machine_is_busy_is_not_the_answer(fake_backend, tmp_path):
    # busy six spells of 300 ms in seven (three times slower); a 1-thread session keeps its pace at 1.3x the cost
    fake_backend.MACHINE.reset(drift=lambda now: 1.0 if (now // 300_000_000) % 7 == 0 else 3.0)
    fake_backend.MACHINE.single_thread_cost = 0.3
    plan = replace(PLAN, min_time_s=1.0, max_time_s=1.0, block_s=0.005, max_rounds=20_000)  # rounds shorter than spells
    report = run(fake_backend, tmp_path, ("fast",), plan=plan)
    assert report.search.answer.startswith("tuned: fast runs")  # the file, on the default session
    assert any("won only while the machine was busy: in the A/B's quietest" in n for n in report.search.notes)
    assert written(tmp_path)["session_options"]["intra_op_num_threads"] == 0


def test_a_pick_that_does_not_hold_up_in_the_ab_is_named_when_the_default_stays(fake_backend, tmp_path):
    fake_backend.MACHINE.reset(drift=lambda now: 1.0 if (now // 300_000_000) % 7 == 0 else 3.0)
    fake_backend.MACHINE.single_thread_cost = 0.3
    plan = replace(PLAN, min_time_s=1.0, max_time_s=1.0, block_s=0.005, max_rounds=20_000)
    report = run(fake_backend, tmp_path, ("same",), plan=plan)
    assert re.match(r"the default stays: the search's pick, base · 1 thread.*, did not hold up in the final A/B",
                    report.search.answer)
    assert any("won only while the machine was busy" in n for n in report.search.notes)
