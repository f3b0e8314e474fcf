from dataclasses import replace

import pytest

from perfkit import bench
from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec
from perfkit.output.store import Store
from tests.conftest import FAST


def spec(model, **kw):
    kw.setdefault("plan", FAST)
    kw.setdefault("results_dir", None)
    return make_spec(model, **kw)


def test_a_row_per_batch_with_honest_fields(relu_model):
    report = bench.run(spec(relu_model, batch=(0, 1, 8)))
    assert report.complete and not report.failed
    assert [r.batch for r in report.results] == [0, 1, 8]
    zero, one, eight = report.results
    assert zero.throughput is None and one.throughput > 0
    assert eight.shapes == (("x", (8, 4)),)
    for r in report.results:
        assert r.status == "ok" and r.providers[0] == "CPUExecutionProvider" and not r.fallback
        m = r.measurement
        assert m.warmup_calls >= FAST.warmup_calls and len(m.samples_ns) == r.summary.n >= FAST.min_rounds
        assert m.load_ns > 0 and m.first_call_ns > 0 and m.peak_rss_bytes > 0


def test_default_dims_are_warned_about(relu_model):
    report = bench.run(spec(relu_model))
    assert any("free dims filled with defaults: batch=1" in w for w in report.warnings)
    assert not any("filled" in w for w in bench.run(spec(relu_model, batch=(2,))).warnings)


def test_model_without_inputs_works(no_input_model):
    (row,) = bench.run(spec(no_input_model)).results
    assert row.status == "ok" and row.batch == 1 and row.shapes == ()


def test_nan_outputs_make_the_row_invalid(nan_model):
    report = bench.run(spec(nan_model))
    (row,) = report.results
    assert row.status == "invalid" and "y: 4 NaN, 0 Inf of 4" in row.reason and report.failed


def test_user_data_is_fed(relu_model, tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.ones((3, 4), np.float32))
    (row,) = bench.run(spec(relu_model, inputs=str(tmp_path / "d.npz"))).results
    assert row.batch == 3 and row.status == "ok"


def test_missing_provider_is_a_user_error_unless_fallback_is_allowed(relu_model, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PerfkitError, match="CUDAExecutionProvider is not in this onnxruntime"):
        bench.run(spec(relu_model, targets=("ort:cuda",), results_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
    (row,) = bench.run(spec(relu_model, targets=("ort:cuda",), allow_fallback=True)).results
    assert row.fallback and row.providers[0] == "CPUExecutionProvider"
    assert row.warnings[0] == "fallback: asked for CUDAExecutionProvider, onnxruntime ran CPUExecutionProvider"


def test_no_kernel_is_a_user_error_and_nothing_is_written(no_kernel_model, tmp_path):
    with pytest.raises(PerfkitError, match="Acos \\(opset 7\\) has no CPU kernel for float64"):
        bench.run(spec(no_kernel_model, results_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_isolated_run_is_stored(relu_model, tmp_path):
    s = spec(relu_model, results_dir=str(tmp_path / "r"))
    report = bench.run(replace(s, plan=replace(FAST, isolate=True)))
    assert report.results[0].status == "ok"
    stored = Store(tmp_path / "r").load(report.run_id)
    assert stored == report


def test_a_crashing_case_is_a_failed_row_and_the_sweep_goes_on(relu_model, monkeypatch):
    calls = []

    def flaky(case):
        calls.append(case)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(case)

    from perfkit.measure import worker

    real = worker.OpenCase
    monkeypatch.setattr(worker, "OpenCase", flaky)
    report = bench.run(spec(relu_model, batch=(1, 2)))
    assert [r.status for r in report.results] == ["failed", "ok"]
    assert report.results[0].reason == "RuntimeError: boom" and report.failed


def test_distinct_feeds_are_cycled_while_timing(relu_model):
    s = spec(relu_model)
    s = replace(s, workloads=tuple(replace(w, distinct_feeds=3) for w in s.workloads))
    (row,) = bench.run(s).results
    assert row.status == "ok" and row.summary.n >= FAST.min_rounds


def variant_spec(model, tmp_path, variants, **kw):
    return spec(model, variants=variants, cache_dir=str(tmp_path / "cache"), **kw)


def test_variants_are_measured_side_by_side_with_their_accuracy(save, tmp_path):
    from tests import models

    path = save(models.conv(), "conv.onnx")
    report = bench.run(variant_spec(path, tmp_path, ("ort-opt:basic", "int8-static:qdq,u8s8", "fusion")))
    base, opt, static, fusion = report.results
    assert [r.model.label for r in report.results] == ["base", "ort-opt:basic", "int8-static:qdq,u8s8", "fusion"]
    assert base.status == opt.status == static.status == "ok"
    assert fusion.status == "skipped" and "no attention" in fusion.reason and not report.failed
    assert opt.settings["opt_level"] == "disable" and base.settings["opt_level"] == "all"
    assert base.accuracy[0].max_abs < 1e-5 and opt.accuracy[0].cosine > 0.99999
    assert 0.99 < static.accuracy[0].cosine < 1 and static.accuracy[0].max_abs > 0
    assert static.size_bytes > 0 and static.ops["QuantizeLinear"] > 0 and "QuantizeLinear" not in base.ops
    assert any("calibrated on" in n for n in static.notes)
    assert any("synthetic inputs" in w for w in report.warnings)


def test_a_crashing_variant_is_a_failed_row_and_the_run_goes_on(save, tmp_path, plugins):
    from tests import models

    plugins("crash=tests.workers:abort")
    path = save(models.mlp(), "mlp.onnx")
    results = tmp_path / "r"
    report = bench.run(variant_spec(path, tmp_path, ("crash", "int8-dynamic"), results_dir=str(results),
                                    plan=replace(FAST, isolate=True)))
    base, crash, dynamic = report.results
    assert crash.status == "failed" and crash.reason == "building crash: crashed (SIGABRT)"
    assert base.status == dynamic.status == "ok" and report.failed and report.complete
    assert Store(results).load(report.run_id) == report


def test_every_row_is_saved_as_it_is_measured(relu_model, tmp_path, monkeypatch):
    saved = []
    real_add = Store.add

    def add(self, report, result):
        real_add(self, report, result)
        saved.append(len(self.load(report.run_id).results))

    monkeypatch.setattr(Store, "add", add)
    bench.run(variant_spec(relu_model, tmp_path, ("ort-opt:basic", "ort-opt:all"), results_dir=str(tmp_path / "r")))
    assert saved == [1, 2, 3]


def test_auto_expands_for_the_model(save, tmp_path):
    from tests import models

    path = save(models.mlp(), "mlp.onnx")
    report = bench.run(variant_spec(path, tmp_path, ("auto", "int8-dynamic")))
    labels = [r.model.label for r in report.results]
    assert labels == ["base", "ort-opt:all", "int8-dynamic", "int8-static:qdq,per-channel"]


def test_profile_is_kept_per_row(relu_model, tmp_path):
    report = bench.run(variant_spec(relu_model, tmp_path, ("ort-opt:basic",), profile=True))
    assert all(r.profile and r.profile[0].op == "Relu" for r in report.results)


def test_calibration_data_is_checked_before_anything_runs(save, tmp_path, rng):
    import numpy as np

    from tests import models

    path = save(models.conv(), "conv.onnx")
    np.savez(tmp_path / "cal.npz", pixels=rng.random((4, 3, 8, 8), dtype=np.float32))
    with pytest.raises(PerfkitError, match="names do not match the model's inputs"):
        bench.run(variant_spec(path, tmp_path, ("int8-static",), calibration=str(tmp_path / "cal.npz"),
                               results_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_large_models_use_external_data_through_every_step(tmp_path, monkeypatch):
    import onnx

    from perfkit.transforms import cache
    from tests import models

    monkeypatch.setattr(cache, "LARGE_BYTES", 1000)  # in-process builds see it; a 2 GB model would be too slow
    path = tmp_path / "big" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(models.mlp(features=64, hidden=128), path)  # one file: only its size sends weights beside
    chains = ("ort-opt:basic+int8-dynamic", "fp16", "ort-opt:all")
    report = bench.run(variant_spec(str(path), tmp_path, chains))
    assert [r.status for r in report.results] == ["ok"] * 4, [r.reason for r in report.results]
    for r in report.results[1:]:
        from pathlib import Path

        assert Path(r.model.path + ".data").is_file(), r.model.label
        assert Path(r.model.path).stat().st_size < 10_000 and r.size_bytes > 10_000
        assert r.accuracy[0].cosine > 0.99


def test_auto_variants_of_a_model_with_its_weights_beside_it_all_build(tmp_path):
    import onnx

    from tests import models

    path = tmp_path / "export" / "conv.onnx"  # as torch.onnx.export writes it: conv.onnx + conv.onnx.data
    path.parent.mkdir()
    onnx.save_model(models.conv(), path, save_as_external_data=True, location="conv.onnx.data", size_threshold=0)
    report = bench.run(variant_spec(str(path), tmp_path, ("auto",)))
    assert len(report.results) == 5 and not report.failed
    assert [r.status for r in report.results] == ["ok"] * 5, [r.reason for r in report.results]
    assert all(r.accuracy[0].cosine > 0.99 for r in report.results)


def test_auto_variants_of_a_bert_from_torchs_default_exporter_make_a_table_not_an_error(tmp_path):
    """The field report: torch.onnx.export (dynamo) writes bert.onnx.data beside bert.onnx, and every variant
    of it used to end the run with exit 2."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.torch_models import Hidden, export

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, num_hidden_layers=2, intermediate_size=64, hidden_size=32,
                                     num_attention_heads=2)
    ids = (torch.randint(0, 100, (1, 8)), torch.ones(1, 8, dtype=torch.int64))
    path = export(Hidden(transformers.BertModel(config).eval()), ids, ["input_ids", "attention_mask"],
                  tmp_path / "bert.onnx", dynamo=True)
    assert path.with_name("bert.onnx.data").is_file()
    report = bench.run(variant_spec(str(path), tmp_path, ("auto",)))
    rows = {r.model.label: r for r in report.results}
    assert list(rows) == ["base", "ort-opt:all", "fusion", "int8-dynamic", "fusion+int8-dynamic",
                          "fusion+int8-dynamic:per-channel"]
    assert all(r.status == "ok" for r in rows.values()), [(r.model.label, r.reason) for r in report.results]
    assert any("model type bert, 2 heads, hidden size 32" in n for n in rows["fusion"].notes), rows["fusion"].notes
    assert all(r.accuracy[0].cosine > 0.99 for r in rows.values())


def test_accuracy_is_judged_on_calibration_samples_held_out_and_the_table_says_so(save, tmp_path, rng):
    import numpy as np

    from perfkit.output.render import render
    from tests import models

    path = save(models.conv(), "conv.onnx")
    cal = tmp_path / "cal.npz"
    np.savez(cal, image=rng.random((40, 3, 8, 8), dtype=np.float32))
    report = bench.run(variant_spec(path, tmp_path, ("int8-static:qdq,u8s8",), calibration=str(cal)))
    assert report.accuracy_on == f"10 samples held out from {cal} (calibration used the other 30)"
    assert any(f"{cal} (30 of 40 samples" in n for n in report.results[1].notes)
    assert f"accuracy judged on 10 samples held out from {cal}" in render(report, "table", width=250)
    synthetic = bench.run(variant_spec(path, tmp_path, ("ort-opt:basic",)))
    assert synthetic.accuracy_on == ("8 synthetic feeds — random values, not your data: give --calibration or "
                                     "--inputs to judge on real inputs")


def test_without_variants_nothing_is_compared(relu_model):
    (row,) = bench.run(spec(relu_model)).results
    assert row.accuracy == () and row.status == "ok"


def test_a_reference_that_cannot_run_is_said_and_nothing_is_compared(save, tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from tests.conftest import graph_model, tensor

    table = numpy_helper.from_array(np.ones((2, 3), np.float32), "table")
    model = graph_model([helper.make_node("Gather", ["table", "ids"], ["y"])],
                        [tensor("ids", TensorProto.INT64, ("batch",))], [tensor("y", shape=("batch", 3))], [table])
    path = save(model, "gather.onnx")
    np.savez(tmp_path / "ids.npz", ids=np.array([5, 7]))  # past the table's two rows
    report = bench.run(variant_spec(path, tmp_path, ("ort-opt:basic",), inputs=str(tmp_path / "ids.npz")))
    assert any(w.startswith("no accuracy for batch 1: the reference run failed (") and "out of" in w
               for w in report.warnings), report.warnings
    assert [r.status for r in report.results] == ["failed", "failed"] and report.failed
    assert all(r.accuracy == () for r in report.results)


@pytest.mark.slow  # waits out a hang's timeout: about 12 s
def test_a_variant_that_hangs_mid_run_is_a_failed_row_and_the_run_goes_on(relu_model, tmp_path, plugins):
    plugins("endless=tests.workers:endless_loop")
    plan = replace(FAST, isolate=True, timeout_s=4)
    report = bench.run(variant_spec(relu_model, tmp_path, ("endless", "ort-opt:basic"), plan=plan,
                                    results_dir=str(tmp_path / "r")))
    base, endless, opt = report.results
    assert endless.status == "failed" and endless.reason.startswith("timed out after 4 s (hung?)")
    assert base.status == opt.status == "ok" and report.complete and report.failed


def test_outputs_are_matched_by_name_and_a_missing_one_does_not_hide_the_rest():
    import numpy as np

    from perfkit.analysis.accuracy import against
    from perfkit.core.records import Outputs

    ref = Outputs(("a", "b"), ([np.ones(3), np.zeros(2)],))
    a, b = against(ref, Outputs(("a",), ([np.ones(3) * 2],)))
    assert a.name == "a" and a.comparable and a.max_abs == 1.0
    assert b.name == "b" and not b.comparable and "no output of this name" in b.reason
    assert [x.max_abs for x in against(ref, Outputs(("b", "a"), ([np.zeros(2), np.ones(3)],)))] == [0.0, 0.0]


def test_run_ids_sort_in_the_order_runs_began_within_one_second():
    from perfkit.core.report import new_run_id

    ids = [new_run_id(1_800_000_000 + k / 1000) for k in (5, 120, 999)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert ids[0].split("-")[1].endswith(".005")


def eval_data(path, rng, n=200, classes=6, wrong_every=10):
    """Labelled samples for models.classifier(): its own answers, with every `wrong_every`-th label moved on."""
    import numpy as np

    x = rng.standard_normal((n, 8)).astype(np.float32)
    labels = (x @ np.random.default_rng(0).standard_normal((8, classes))).argmax(1)
    labels[::wrong_every] = (labels[::wrong_every] + 1) % classes
    np.savez(path, x=x, labels=labels)
    return str(path)


def test_eval_data_gives_every_row_top1_beside_the_reference(save, tmp_path, rng):
    from perfkit.output.render import render
    from tests import models

    path = save(models.classifier(), "clf.onnx")
    data = eval_data(tmp_path / "eval.npz", rng)
    report = bench.run(variant_spec(path, tmp_path, ("int8-dynamic",), batch=(16,), eval=data,
                                    accuracy_budget="cos>=0.9,top1_drop<=5%"))
    base, int8 = report.results
    assert base.task.scores.top1 == base.task.reference.top1 == 0.9 and base.task.samples == 200
    assert int8.task.output == "probabilities" and int8.task.top1_drop == pytest.approx(0.9 - int8.task.scores.top1)
    assert int8.task.scores.top5 is not None and int8.status == "ok"
    assert report.accuracy_on == f"the --eval data (200 labelled samples of {data})"
    table = render(report, "table", width=250)
    assert "top1" in table and "90.0% (±0.0)" in table and f"{int8.task.scores.top1:.1%} (" in table


def test_labels_that_do_not_fit_the_outputs_stop_the_run_before_anything_is_timed(save, tmp_path, rng, monkeypatch):
    import numpy as np

    from perfkit import rows
    from tests import models

    path = save(models.classifier(classes=6), "clf.onnx")
    np.savez(tmp_path / "eval.npz", x=rng.random((8, 8), dtype=np.float32), labels=np.arange(8))
    monkeypatch.setattr(rows, "interleave", lambda *a, **k: pytest.fail("timed"))
    with pytest.raises(PerfkitError, match="labels 6, 7 are not classes of output 'probabilities'"):
        bench.run(spec(path, eval=str(tmp_path / "eval.npz"), results_dir=str(tmp_path / "results")))
    assert not (tmp_path / "results").exists()


def test_a_config_tuned_for_a_gpu_is_a_skipped_row_on_a_machine_without_one(tmp_path):
    from dataclasses import replace as with_

    import numpy as np
    import onnx

    from perfkit import bench
    from perfkit.core.spec import QUICK_PLAN
    from perfkit.files.tuned import write_folder
    from perfkit.options import make_spec
    from tests.files.test_tuned import config_for
    from tests.models import mlp

    onnx.save(mlp(), tmp_path / "m.onnx")
    config = config_for(str(tmp_path / "m.onnx"))
    gpu = with_(config, target=with_(config.target, device="cuda", session_config=(), session_options=()))
    written = write_folder(tmp_path / "tuned", gpu, {"x": np.ones((2, 16), np.float32)})
    report = bench.run(make_spec(str(tmp_path / "m.onnx"), config=str(written), results_dir=None,
                                 plan=with_(QUICK_PLAN, isolate=False), cache_dir=str(tmp_path / "c")))
    base, tuned = report.results
    assert base.status == "ok" and tuned.status == "skipped" and "CUDAExecutionProvider" in tuned.reason


def test_inputs_holding_nan_are_flagged_before_the_rows(relu_model, tmp_path):
    import numpy as np

    from perfkit import bench
    from perfkit.core.spec import QUICK_PLAN
    from perfkit.options import make_spec

    data = np.ones((1, 4), np.float32)
    data[0, 1] = np.nan
    np.savez(tmp_path / "in.npz", x=data)
    report = bench.run(make_spec(relu_model, inputs=str(tmp_path / "in.npz"), results_dir=None,
                                 plan=replace(QUICK_PLAN, isolate=False)))
    assert any(w.startswith(f"{tmp_path / 'in.npz'}: 'x' holds 1 NaN of 4 values — rows whose outputs turn NaN")
               for w in report.warnings)


def test_an_opset_older_than_onnxruntime_runs_upgraded_with_upgrade_opset_and_the_run_says_so(save, tmp_path):
    from tests.models import old_batchnorm

    path = save(old_batchnorm(), "old.onnx")
    with pytest.raises(PerfkitError, match="old.onnx: no onnxruntime kernel for BatchNormalization at opset 6: .* "
                                           "— pass --upgrade-opset"):
        bench.run(spec(path, cache_dir=str(tmp_path / "c")))
    report = bench.run(spec(path, cache_dir=str(tmp_path / "c"), upgrade_opset=True))
    (row,) = report.results
    assert row.status == "ok" and row.model.path.startswith(str(tmp_path / "c" / "upgraded"))
    assert report.spec.model == path and report.warnings[0].startswith(f"{path}: opset 6 → 13 by "
                                                                       "onnx.version_converter")


def test_a_model_computing_in_fp16_on_the_cpu_is_warned_about(save):
    from tests.models import fp16_mlp, mlp

    path = save(fp16_mlp(), "half.onnx")
    warned = [w for w in bench.run(spec(path, batch=(2,))).warnings if "float16" in w]
    assert warned == [f"{path} computes in float16 (MatMul fed float16): most of onnxruntime's CPU kernels are "
                      "float32, so on ort:cpu float16 is emulated with casts and the latency is not what an fp16 GPU "
                      "gives — measure the fp32 model on the CPU, or this one on a GPU (--target ort:cuda)"]
    assert not [w for w in bench.run(spec(save(mlp(), "full.onnx"), batch=(2,))).warnings if "float16" in w]
