from dataclasses import replace

from perfkit import bench
from perfkit.analysis.stats import summarize
from perfkit.analysis.verdict import cpu_isa, diagnose, judge, node_change, pareto, profile_change
from perfkit.core.model import Model
from perfkit.core.report import Result
from perfkit.core.spec import Target
from perfkit.measure.env import fingerprint
from perfkit.options import make_spec
from tests import models
from tests.conftest import FAST


def row(label="", median=1000.0, ops=None, status="ok", opt_level="all", profile=()):
    lineage = tuple(label.split("+")) if label else ()
    samples = [median * (1 + 0.001 * (k % 7 - 3)) for k in range(200)]
    return Result(model=Model("m.onnx", "onnx", "d", lineage), target=Target(), batch=1, shapes=(), status=status,
                  providers=("CPUExecutionProvider",), settings={"opt_level": opt_level},
                  summary=summarize(samples), ops=ops or {"Conv": 2, "Relu": 2}, profile=profile)


def env(*flags):
    return replace(fingerprint(), cpu_flags=flags)


def test_node_changes_name_the_groups_that_moved():
    base = {"Conv": 20, "Relu": 20, "Add": 8}
    qdq = {"Conv": 20, "Relu": 20, "Add": 8, "QuantizeLinear": 200, "DequantizeLinear": 202}
    assert node_change(base, qdq) == "+402 Q/DQ"
    casts = {"Conv": 20, "Relu": 20, "Add": 8, "Cast": 96, "com.microsoft:FusedConv": 1}
    assert node_change(base, casts) == "+97: +96 Cast"
    assert node_change(base, {"Conv": 18, "Relu": 18, "Add": 8, "X": 1}) == "-3: -2 Conv"
    assert node_change(base, base) == "same"


def test_cpu_instruction_sets():
    assert cpu_isa(("avx2", "avx512f", "avx512_vnni", "amx_int8")) == "AMX"
    assert cpu_isa(("avx2", "avx512_vnni")) == "AVX-512 VNNI"
    assert cpu_isa(("avx2", "avx_vnni")) == "AVX-VNNI"
    assert cpu_isa(("avx2",)) == "AVX2 (no VNNI)"


def test_diagnoses_from_what_can_be_detected():
    base = row(ops={"Conv": 2, "Relu": 2})
    fp16 = diagnose(row("fp16", ops={"Conv": 2, "Relu": 2, "Cast": 4}), base, env("avx2"))
    assert "fp16 on the CPU provider is emulated" in fp16[0] and "+4 Cast" in fp16[0]
    dynamic = diagnose(row("int8-dynamic"), base, env("avx512_vnni"))
    assert any("dynamic quantization of a conv net" in d for d in dynamic)
    no_vnni = diagnose(row("int8-static:qdq", ops={"Conv": 2, "QuantizeLinear": 4}), base, env("avx2"))
    assert any("this CPU has AVX2 (no VNNI)" in d for d in no_vnni)
    assert any("+4 Q/DQ nodes on a model that runs in 1 µs" in d for d in no_vnni)
    unfused = diagnose(row("int8-static", opt_level="basic"), base, env("avx512_vnni"))
    assert any("ran at level basic" in d for d in unfused)
    qop = diagnose(row("int8-static:qoperator"), base, env("avx512_vnni"))
    assert any("QOperator format" in d for d in qop)
    s8s8 = diagnose(row("int8-static:qdq,s8s8"), base, env("avx2", "avx512_vnni"))
    assert any("S8S8 on x86" in d for d in s8s8)
    assert not any("S8S8" in d for d in diagnose(row("int8-static:u8s8"), base, env("avx2", "avx512_vnni")))
    basic = diagnose(row("ort-opt:basic", opt_level="disable"), base, env("avx2"))
    assert basic == ("graph optimization level basic leaves out fusions and layouts that the baseline's session "
                     "applies at level all",)
    assert diagnose(row("int8-dynamic", ops={"MatMul": 2}), row(ops={"MatMul": 2}), env("avx512_vnni")) \
        == ("no cause detected from the graph and this CPU's features; --profile shows where the time goes per op",)


def test_profile_differences_say_where_the_time_went():
    from perfkit.core.records import OpTime

    base = row(profile=(OpTime("Conv", 900.0, 2, "CPU"), OpTime("Relu", 100.0, 2, "CPU")))
    slow = row("int8-static", profile=(OpTime("QLinearConv", 1500.0, 2, "CPU"), OpTime("Relu", 100.0, 2, "CPU")))
    assert profile_change(base, slow) == "QLinearConv +2 µs, Conv -1 µs"
    assert profile_change(base, row("int8-static")) == ""


def test_casts_onnxruntime_inserts_at_load_are_named_from_the_profile():
    from perfkit.core.records import OpTime

    fp16 = row("fp16", ops={"Conv": 2, "Cast": 2}, profile=(OpTime("Cast", 50.0, 6, "CPU"),))
    text = diagnose(fp16, row(), env("avx2"))
    assert any("onnxruntime inserted 4 Cast node(s) at load: some ops here have no CPU kernel" in d for d in text)


def test_the_fastest_row_inside_the_budget_is_picked(save, tmp_path):
    path = save(models.conv(), "conv.onnx")
    report = bench.run(make_spec(path, plan=FAST, results_dir=None, variants=("ort-opt:all", "int8-dynamic"),
                                 accuracy_budget="cos>=0.9", cache_dir=str(tmp_path / "c")))
    verdict = judge(report)
    assert verdict.baseline == (0, 0, 0) and verdict.speedups[0] is None
    assert all(s.low <= s.value <= s.high and s.value > 0 for s in verdict.speedups[1:])
    (best,) = verdict.best
    fastest = min(range(3), key=lambda i: report.results[i].summary.median)
    assert best in (fastest, 0)  # the fastest, or the baseline when the fastest is inside the noise
    strict = replace(report, spec=replace(report.spec, accuracy_budget="max_abs<=1e-12"))
    assert judge(strict).best == (0,) or report.results[0].accuracy[0].max_abs > 1e-12


def interleaved(r, medians):
    from perfkit.core.report import Block, Measurement

    blocks = tuple(Block(k, 10, float(m)) for k, m in enumerate(medians))
    return replace(r, measurement=Measurement(samples_ns=tuple(int(m) for m in medians for _ in range(10)),
                                              warmup_calls=1, warmup_ns=1, load_ns=1, first_call_ns=1, harness_ns=1.0,
                                              resolution_ns=1.0, blocks=blocks))


def test_the_verdict_pairs_interleaved_rows_round_by_round(relu_model, tmp_path):
    """Drift moves the medians of whole rounds; the pairs see through it where the two medians could not."""
    report = bench.run(make_spec(relu_model, plan=FAST, results_dir=None, variants=("ort-opt:basic",),
                                 cache_dir=str(tmp_path / "c")))
    base = report.results[0]
    drift = [1000 * (1 + 0.4 * (k % 4)) for k in range(16)]
    faster = replace(row("int8-dynamic"), accuracy=base.accuracy, target=base.target, shapes=base.shapes)
    rows = (interleaved(base, drift), interleaved(faster, [m / 1.05 for m in drift]))
    rows = tuple(replace(r, summary=summarize(r.measurement.samples_ns, r.measurement.blocks)) for r in rows)
    verdict = judge(replace(report, results=rows))
    ratio = verdict.speedups[1]
    assert ratio.rounds == 16 and ratio.significant and ratio.value == 1.05 and verdict.best == (1,)


def test_a_real_run_times_every_row_in_the_same_rounds(relu_model, tmp_path):
    report = bench.run(make_spec(relu_model, plan=FAST, results_dir=None, variants=("ort-opt:basic", "ort-opt:all"),
                                 cache_dir=str(tmp_path / "c")))
    base, *variants = [[b.round for b in r.measurement.blocks] for r in report.results]
    # Every row in the first rounds; a row whose interval is still wide stays on with its baseline.
    assert all(v[:10] == base[:10] == list(range(10)) and set(v) <= set(base) for v in variants)
    assert all(r.summary.n == sum(b.calls for b in r.measurement.blocks) for r in report.results)
    assert [s.rounds for s in judge(report).speedups[1:]] == [len(v) for v in variants]




def test_a_variant_past_the_budgets_top1_drop_is_not_picked(relu_model, tmp_path):
    from perfkit.core.records import OutputAccuracy, TaskAccuracy, TaskScores
    from perfkit.core.report import Report

    eval_file = tmp_path / "eval.npz"
    eval_file.write_bytes(b"")  # make_spec wants the file to exist; nothing reads it here
    spec = make_spec(relu_model, plan=FAST, results_dir=None, variants=("int8-dynamic",), eval=str(eval_file),
                     accuracy_budget="cos>=0.9,top1_drop<=0.5%")
    reference = TaskScores(top1=0.9)
    exact = (OutputAccuracy("y", cosine=1.0, max_abs=0.0),)
    base = replace(row(), accuracy=exact, task=TaskAccuracy("y", 200, reference, reference))
    fast = replace(row("int8-dynamic", median=500.0), accuracy=exact,
                   task=TaskAccuracy("y", 200, TaskScores(top1=0.89), reference))
    verdict = judge(Report(run_id="r", created="", spec=spec, environment=env(), results=(base, fast)))
    assert verdict.budget[1] == (False, "y: top1_drop 1% (budget <=0.5%)") and verdict.best == (0,)


def test_the_pareto_front_keeps_rows_no_other_row_beats_on_both():
    points = [(10.0, 1e-6, 0), (5.0, 1e-3, 1), (7.0, 1e-3, 2), (4.0, 1e-2, 3), (12.0, 1e-7, 4)]
    assert sorted(pareto(points)) == [0, 1, 3, 4]  # row 2 is slower than row 1 and no more accurate
