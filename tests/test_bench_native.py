"""One table: the native model in its framework, its ONNX conversion and the variants; the native model is
the accuracy reference."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from perfkit import bench
from perfkit.analysis.verdict import judge
from perfkit.cli import main
from perfkit.options import make_spec
from perfkit.output.render import flat_rows, render
from tests.conftest import FAST

sklearn = pytest.importorskip("sklearn")


@pytest.fixture
def classifier(tmp_path) -> str:
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.random((100, 6))
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, (x[:, 0] > 0.5).astype(int)),
                tmp_path / "clf.joblib")
    return str(tmp_path / "clf.joblib")


def spec(model, tmp_path, **kw):
    kw.setdefault("plan", FAST)
    return make_spec(model, results_dir=None, cache_dir=str(tmp_path / "cache"), **kw)


def test_native_and_onnx_rows_side_by_side_with_the_native_model_as_reference(classifier, tmp_path):
    report = bench.run(spec(classifier, tmp_path, trust=True, batch=(16,)))
    native, onnx_row = report.results
    assert native.model.label == "native:sklearn" and native.target.label == "sklearn:cpu"
    assert native.status == "ok" and native.providers == ("sklearn",) and native.accuracy == ()
    assert onnx_row.model.label == "export:onnx" and onnx_row.providers[0] == "CPUExecutionProvider"
    by_name = {a.name: a for a in onnx_row.accuracy}
    assert by_name["label"].agree == 1.0 and by_name["probabilities"].max_abs < 1e-5
    text = render(report, "table", width=250)
    assert "native vs ONNX, batch 16: row 2 (export:onnx on ort:cpu) runs" in text
    flat = flat_rows(report, judge(report))
    assert flat[0]["vs_native"] is None and flat[1]["vs_native"] > 0
    from perfkit.core.report import from_json, to_json

    again = from_json(to_json(report), "stored")
    assert render(again, "table", width=250) == text  # a stored native run reads back the same


def test_a_noisy_multithreaded_native_row_says_its_ratio_may_read_far_above_its_quiet_value(classifier, tmp_path):
    from dataclasses import replace

    report = bench.run(spec(classifier, tmp_path, trust=True, batch=(16,)))
    native, onnx_row = report.results
    shaky = replace(native, summary=replace(native.summary, cv=0.9))  # CV 90 %: a busy machine's native row
    line = "native rows on a busy machine: a framework's thread team loses more to other programs"
    assert line not in render(replace(report, results=(shaky, onnx_row)), "table", width=250)  # no thread team
    shaky = replace(shaky, target=replace(shaky.target, backend="torch"))  # as a TorchScript row would be
    assert line in render(replace(report, results=(shaky, onnx_row)), "table", width=250)
    single = replace(shaky, target=replace(shaky.target, threads=1))
    assert line not in render(replace(report, results=(single, onnx_row)), "table", width=250)


@pytest.mark.slow  # a torch export and its variants, each in a worker: about 20 s
def test_variants_of_a_native_model_are_built_from_its_conversion_in_isolated_workers(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.torch_models import tiny_cnn

    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pt")
    report = bench.run(spec(str(tmp_path / "w.pt"), tmp_path, factory="tests.torch_models:tiny_cnn",
                            shapes=("x=2x3x16x16",), variants=("int8-dynamic",), plan=replace(FAST, isolate=True)))
    labels = [r.model.label for r in report.results]
    assert labels == ["native:torch", "export:onnx", "export:onnx+int8-dynamic"]
    assert all(r.status == "ok" for r in report.results), [r.reason for r in report.results]
    assert report.results[0].settings["mode"] == "inference_mode"
    assert report.results[2].accuracy and report.results[2].accuracy[0].cosine > 0.9
    assert report.results[1].accuracy[0].max_abs < 1e-5  # the conversion against the native model


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


QUICK = ["--quick", "--no-isolate", "--min-time", "0", "--max-time", "0.1"]


def test_an_untrusted_pickle_is_one_line_exit_2_and_nothing_runs_or_is_written(cli, tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Evil()))
    result = cli("bench", tmp_path / "model.pkl", *QUICK)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("perfkit: error: ")
    assert "system" in result.stderr and "--trust" in result.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "results").exists()


def test_bench_and_convert_and_inspect_from_the_command_line(cli, classifier, tmp_path):
    result = cli("bench", classifier, "--trust", *QUICK)
    assert result.exit_code == 0, result.output
    assert "native:sklearn" in result.stdout and "export:onnx" in result.stdout
    converted = cli("convert", classifier, "-o", tmp_path / "clf.onnx", "--trust", "--batch", "8")
    assert converted.exit_code == 0, converted.output
    assert "parity: ok" in converted.stdout and (tmp_path / "clf.onnx").is_file()
    inspected = cli("inspect", tmp_path / "clf.onnx", "--format", "json")
    assert '"kind": "onnx"' in inspected.stdout


def test_a_conversion_whose_parity_is_off_exits_3(cli, tmp_path):
    import joblib
    import numpy as np
    from sklearn.neighbors import KNeighborsRegressor

    from tests.native.test_sklearn import TIES_QUERIES, TIES_TRAIN

    # distances that tie once rounded to float32: the ONNX model picks another neighbour, off by 100
    joblib.dump(KNeighborsRegressor(n_neighbors=1).fit(*TIES_TRAIN), tmp_path / "knn.joblib")
    np.savez(tmp_path / "q.npz", X=TIES_QUERIES)
    converted = cli("convert", tmp_path / "knn.joblib", "-o", tmp_path / "knn.onnx", "--trust", "--inputs",
                    tmp_path / "q.npz")
    assert converted.exit_code == 3 and "parity: OFF" in converted.stdout
    assert "perfkit: parity OFF: " in converted.stderr and "not to deploy; --accept-mismatch takes it as it is" \
        in converted.stderr


def test_large_outputs_within_float32_rounding_are_parity_ok(cli, tmp_path):
    import joblib
    import numpy as np
    from sklearn.neighbors import KNeighborsRegressor

    # targets near 1000: float32 rounds them by ~6e-5, past the absolute tolerance, but by no more than that
    rng = np.random.default_rng(0)
    joblib.dump(KNeighborsRegressor(n_neighbors=3).fit(rng.standard_normal((500, 8)) * 100,
                                                       rng.standard_normal(500) * 1000), tmp_path / "knn.joblib")
    converted = cli("convert", tmp_path / "knn.joblib", "-o", tmp_path / "knn.onnx", "--trust")
    assert converted.exit_code == 0 and "parity: ok" in converted.stdout, converted.stdout


def test_accept_mismatch_takes_a_conversion_whose_parity_is_off_and_exits_0(cli, tmp_path):
    import joblib
    import numpy as np
    from sklearn.neighbors import KNeighborsRegressor

    from tests.native.test_sklearn import TIES_QUERIES, TIES_TRAIN

    joblib.dump(KNeighborsRegressor(n_neighbors=1).fit(*TIES_TRAIN), tmp_path / "knn.joblib")
    np.savez(tmp_path / "q.npz", X=TIES_QUERIES)
    accepted = cli("convert", tmp_path / "knn.joblib", "-o", tmp_path / "knn.onnx", "--trust", "--inputs",
                   tmp_path / "q.npz", "--accept-mismatch")
    assert accepted.exit_code == 0 and "parity: OFF" in accepted.stdout and (tmp_path / "knn.onnx").is_file()
    assert "nearest neighbours" in accepted.stdout  # the cause is said all the same
    assert "perfkit: parity OFF, accepted (--accept-mismatch)" in accepted.stderr


@pytest.mark.parametrize("args, message", [
    (["convert", "{model}", "-o", "nowhere/x.onnx", "--trust"], "nowhere/x.onnx: its folder does not exist"),
    (["convert", "{model}", "-o", "x.txt", "--trust"], "x.txt: not an .onnx path"),
    (["convert", "missing.pkl", "-o", "x.onnx"], "missing.pkl: no such file"),
    (["bench", "{model}", "--trust", "--factory", "not a factory"], "--factory not a factory: not package"),
    (["inspect", "missing.bin"], "missing.bin: no such file"),
])
def test_native_user_errors_are_one_line(cli, classifier, tmp_path, args, message):
    result = cli(*[a.replace("{model}", classifier) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"perfkit: error: {message}") and result.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*.onnx")) and not (tmp_path / "results").exists()


def test_batch_sweeps_the_free_axis_of_the_conversion_past_the_example_shape(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.torch_models import tiny_cnn

    torch.jit.save(torch.jit.trace(tiny_cnn().eval(), torch.rand(1, 3, 16, 16)), tmp_path / "m.pt")
    report = bench.run(spec(str(tmp_path / "m.pt"), tmp_path, shapes=("x=1x3x16x16",), batch=(1, 3)))
    assert [(r.model.label, r.batch) for r in report.results] == [
        ("native:torch", 1), ("export:onnx", 1), ("native:torch", 3), ("export:onnx", 3)]
    assert all(r.status == "ok" for r in report.results)
    assert report.results[3].shapes == (("x", (3, 3, 16, 16)),)


def test_an_mlflow_folder_is_benchmarked_through_its_flavor(classifier, tmp_path):
    import shutil

    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    shutil.copy(classifier, folder / "model.pkl")
    (folder / "MLmodel").write_text("artifact_path: model\nflavors:\n  python_function:\n    loader_module: "
                                    "mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n"
                                    "    serialization_format: cloudpickle\n")
    report = bench.run(spec(str(folder), tmp_path, trust=True))
    native, onnx_row = report.results
    assert native.model.label == "native:sklearn" and native.model.path == str(folder / "model.pkl")
    assert onnx_row.status == "ok" and {a.name: a for a in onnx_row.accuracy}["label"].agree == 1.0
