"""Spark ML PipelineModel folders: detected and inspected from their metadata (no Spark), converted with
onnxmltools.convert_sparkml and checked against the pipeline on a local Spark session (slow: one session for
the module, 30–45 s to start)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pyspark")
pytest.importorskip("onnxmltools")

from perfkit import bench  # noqa: E402
from perfkit.backends.spark import SparkBackend, java  # noqa: E402
from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402
from perfkit.core.spec import Target  # noqa: E402
from perfkit.native.conversion import convert  # noqa: E402
from perfkit.native.detect import detect, is_native, prepare_native  # noqa: E402
from perfkit.native.inspect import inspect_file  # noqa: E402
from perfkit.options import make_spec  # noqa: E402
from tests.conftest import FAST  # noqa: E402
from tests.files.test_spark_folder import ASSEMBLER, INDEXER, LOGISTIC, ML, SCALER, write_pipeline  # noqa: E402

SQL = (f"{ML}.feature.SQLTransformer", {"uid": "SQL_1", "statement": "SELECT * FROM __THIS__"})


def run(tmp_path, path, **kw):
    return run_convert(str(path), str(tmp_path / "out.onnx"), cache_dir=str(tmp_path / "c"), isolate=False,
                       batch=16, **kw)


# ---- from the metadata alone: no Spark session ----------------------------------------------------------

def test_a_pipeline_folder_is_a_native_spark_pipeline(tmp_path):
    path = write_pipeline(tmp_path / "p", [INDEXER, ASSEMBLER, SCALER, LOGISTIC])
    native = detect(str(path))
    assert is_native(str(path)) and (native.format, native.framework) == ("spark-pipeline", "spark")
    assert native.label == "native:spark"


def test_inspect_lists_the_stages_and_the_input_columns_with_their_kinds(tmp_path):
    found = inspect_file(str(write_pipeline(tmp_path / "p", [INDEXER, ASSEMBLER, SCALER, LOGISTIC])))
    details = dict(found.details)
    assert found.kind == "spark" and found.what == "a Spark ML PipelineModel folder"
    assert found.loads is (java() is not None)
    assert details["stages"] == "StringIndexerModel → VectorAssembler → StandardScalerModel → LogisticRegressionModel"
    assert details["inputs"] == "s (string), a (number), b (number)"
    assert found.how.startswith(f"perfkit convert {tmp_path / 'p'} -o model.onnx") and "30–45 s" in found.how


def test_inspect_names_a_stage_onnxmltools_cannot_convert(tmp_path):
    found = inspect_file(str(write_pipeline(tmp_path / "p", [ASSEMBLER, SQL, LOGISTIC])))
    assert not found.loads
    assert found.how.startswith(f"onnxmltools.convert_sparkml has no converter for {ML}.feature.SQLTransformer")


def test_inspect_says_an_unfitted_pipeline_must_be_fitted(tmp_path):
    found = inspect_file(str(write_pipeline(tmp_path / "p", [ASSEMBLER], cls=f"{ML}.Pipeline")))
    assert not found.loads and found.what == "an unfitted Spark ML Pipeline (an estimator)"
    assert "pipeline.fit(df).write().save(path)" in found.how


def test_an_unsupported_stage_is_refused_in_one_line_before_spark_starts(tmp_path):
    path = write_pipeline(tmp_path / "p", [ASSEMBLER, SQL, LOGISTIC])
    with pytest.raises(PerfkitError) as err:
        run(tmp_path, path)
    assert err.value.what == ("onnxmltools.convert_sparkml has no converter for the stage SQLTransformer "
                              "(org.apache.spark.ml.feature.SQLTransformer)")


def test_a_python_stage_loads_only_with_trust(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    path = write_pipeline(tmp_path / "p", [ASSEMBLER, ("mypackage.stages.Doubler", {"uid": "D_1"})])
    with pytest.raises(PerfkitError, match="Python classes that loading imports by name") as err:
        SparkBackend().open(prepare_native(str(path), False, None), Target("spark", "cpu"))
    assert "--trust" in err.value.fix


# ---- on a local Spark session ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One local session for the module, started by perfkit as its backend starts it, in an empty working
    folder that must stay empty."""
    from perfkit.backends.spark import spark_session

    if java() is None:
        pytest.skip("no Java runtime")
    work = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PERFKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.chdir(work)
        session = spark_session()
        yield session
    session.stop()


def frame(spark, n: int = 300):
    """A noisy two-class problem (not separable, so the coefficients stay moderate) with a string column."""
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, n))
    s = rng.choice(["x", "y", "z"], n)
    label = (a + 0.5 * b + (s == "y") + rng.normal(scale=0.7, size=n) > 0.3).astype(float)
    rows = [(float(a[i]), float(b[i]), float(c[i]), str(s[i]), float(label[i])) for i in range(n)]
    return spark.createDataFrame(rows, ["a", "b", "c", "s", "label"])


def scaled_logistic(spark, folder):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b", "c"], outputCol="raw"),
                             StandardScaler(inputCol="raw", outputCol="features"),
                             LogisticRegression(maxIter=30)]).fit(frame(spark))
    model.write().save(str(folder))
    return model


def encoded(spark, folder, **encoder):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    Pipeline(stages=[StringIndexer(inputCol="s", outputCol="si"),
                     OneHotEncoder(inputCols=["si"], outputCols=["so"], **encoder),
                     VectorAssembler(inputCols=["a", "b", "so"], outputCol="features"),
                     LogisticRegression(maxIter=30)]).fit(frame(spark)).write().save(str(folder))


@pytest.mark.slow
def test_a_scaled_logistic_pipeline_converts_with_one_input_per_column_and_matches(spark, tmp_path):
    scaled_logistic(spark, tmp_path / "p")
    lines, parity = run(tmp_path, tmp_path / "p")
    assert parity.ok, lines
    assert lines[1] == "inputs:  a float32 [N, 1], b float32 [N, 1], c float32 [N, 1]"
    assert lines[2] == "outputs: prediction int64 [N], probability float32 [N, 2]"
    assert "onnxmltools.convert_sparkml, target opset 15" in lines[0] and "float64" in lines[0]
    assert {a.name: a.agree for a in parity.outputs} == {"prediction": 1.0, "probability": 1.0}


@pytest.mark.slow
def test_an_opset_above_onnxmltools_ceiling_is_lowered_to_15_and_said(spark, tmp_path):
    scaled_logistic(spark, tmp_path / "p")
    lines, parity = run(tmp_path, tmp_path / "p", opset=18)
    assert parity.ok and "target opset 15" in lines[0] and "--opset 18 was asked" in lines[0]


@pytest.mark.slow
def test_a_string_column_indexed_and_one_hot_encoded_converts_with_real_rows(spark, tmp_path):
    import pandas as pd

    encoded(spark, tmp_path / "p", handleInvalid="keep", dropLast=True)
    rng = np.random.default_rng(1)
    pd.DataFrame({"s": rng.choice(["x", "y", "z"], 40), "a": rng.normal(size=40),
                  "b": rng.normal(size=40)}).to_csv(tmp_path / "rows.csv", index=False)
    lines, parity = run(tmp_path, tmp_path / "p", inputs=str(tmp_path / "rows.csv"))
    assert parity.ok, lines
    assert lines[1] == "inputs:  s string [N, 1], a float32 [N, 1], b float32 [N, 1]"
    assert parity.rows == 40


@pytest.mark.slow
def test_a_one_hot_encoder_onnxmltools_refuses_says_which_settings_convert(spark, tmp_path):
    encoded(spark, tmp_path / "p")  # Spark's defaults: handleInvalid='error', dropLast=True
    with pytest.raises(PerfkitError, match="'handleInvalid' and 'dropLast'") as err:
        run(tmp_path, tmp_path / "p")
    assert "handleInvalid='keep' and dropLast=True" in err.value.fix


@pytest.mark.slow
def test_a_model_saved_alone_takes_its_features_vector(spark, tmp_path):
    scaled_logistic(spark, tmp_path / "p").stages[-1].write().save(str(tmp_path / "alone"))
    lines, parity = run(tmp_path, tmp_path / "alone")
    assert parity.ok, lines
    assert lines[1] == "inputs:  features float32 [N, 3]"


@pytest.mark.slow
def test_an_unsupported_stage_of_a_real_pipeline_is_one_line(spark, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer, VectorAssembler

    Pipeline(stages=[SQLTransformer(statement="SELECT *, a * 2 AS a2 FROM __THIS__"),
                     VectorAssembler(inputCols=["a2", "b"], outputCol="features")]).fit(frame(spark)).write().save(
        str(tmp_path / "p"))
    with pytest.raises(PerfkitError, match=r"onnxmltools\.convert_sparkml has no converter for the stage "
                                           r"SQLTransformer"):
        run(tmp_path, tmp_path / "p")


@pytest.mark.slow
def test_the_session_times_dataframe_creation_transform_and_collect(spark, tmp_path):
    scaled_logistic(spark, tmp_path / "p")
    native = convert(prepare_native(str(tmp_path / "p"), False, None), cache_dir=str(tmp_path / "c"),
                     isolate=False).native
    with SparkBackend().open(native, Target("spark", "cpu")) as session:
        rng = np.random.default_rng(0)
        feed = {n: rng.random((5, 1), dtype=np.float32) for n in "abc"}
        prediction, probability = session.run(session.prepare(feed))
        assert session.output_names == ("prediction", "probability") and session.providers == ("spark:cpu",)
        assert prediction.dtype == np.int64 and prediction.shape == (5,)
        assert probability.shape == (5, 2) and np.allclose(probability.sum(axis=1), 1)
        assert session.settings["timed"].startswith("createDataFrame from the rows + transform + collect")
        assert session.settings["master"] == "local[1]"
        rows = session.bind(session.prepare(feed))()
        assert len(rows) == 5 and rows[0]["prediction"] == prediction[0]


@pytest.mark.slow
def test_bench_puts_the_spark_row_beside_the_onnx_row_and_says_the_session_start(spark, tmp_path):
    scaled_logistic(spark, tmp_path / "p")
    said: list[str] = []
    report = bench.run(make_spec(str(tmp_path / "p"), results_dir=None, cache_dir=str(tmp_path / "c"), plan=FAST,
                                 batch=(8,)), on_progress=said.append)
    native, onnx_row = report.results
    assert native.model.label == "native:spark" and native.status == "ok" and native.providers == ("spark:cpu",)
    assert onnx_row.status == "ok" and {a.name: a.agree for a in onnx_row.accuracy} == {"prediction": 1.0,
                                                                                       "probability": 1.0}
    assert said[0].endswith("to ONNX — starting a local Spark session (30–45 s)")


@pytest.mark.slow
def test_spark_writes_nothing_into_the_working_folder(spark):
    assert os.listdir(os.getcwd()) == []
