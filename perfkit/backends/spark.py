"""Spark ML: a saved PipelineModel folder (or one fitted model saved alone, run as a one-stage pipeline) loaded
on a local Spark session, fed a DataFrame made from the feed's rows; its output columns collected as the ONNX
model's outputs, by name."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfkit.backends import Closing
from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel, Port
from perfkit.core.spec import Target
from perfkit.files.spark_folder import PIPELINE, read_folder
from perfkit.files.trust import trusted

# The JVM's JIT and Spark's code generation compile during the first calls: untimed until they settle.
JIT_WARMUP_CALLS = 20
OWN_CLASSES = ("org.apache.spark.ml.", "pyspark.ml.")  # stages Spark loads without importing anyone's Python


def missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark"
    return None


def java() -> str | None:
    """The java that Spark will launch: $JAVA_HOME's, else the one on PATH; None when there is none."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def spark_folder_root() -> Path:
    """Where Spark's scratch files go: perfkit's cache folder, never the user's home or working folder."""
    return Path(os.environ.get("PERFKIT_CACHE") or ".perfkit-cache").resolve() / "spark"


def spark_conf(threads: int | None) -> dict[str, str]:
    """A local session that writes only inside perfkit's cache folder and talks to no network."""
    root = spark_folder_root()
    tmp = root / "tmp"
    java_options = f'"-Djava.io.tmpdir={tmp}" "-Dderby.system.home={root / "derby"}" -XX:-UsePerfData'
    return {
        "spark.master": f"local[{threads or 1}]",  # one core by default, as onnxruntime's rows are compared on
        "spark.app.name": "perfkit",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.catalogImplementation": "in-memory",  # no Hive, no metastore_db
        "spark.sql.shuffle.partitions": "1",  # scoring a batch shuffles nothing worth spreading
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.local.dir": str(tmp),
        "spark.driver.extraJavaOptions": java_options,
        "spark.driver.host": "127.0.0.1",  # offline: no look-up of the machine's name
        "spark.driver.bindAddress": "127.0.0.1",
    }


def spark_session(threads: int | None = None) -> Any:
    """This process's local Spark session, started once (30–45 s). The JVM is launched with stdout and stderr
    pointed at /dev/null, so its banners and log lines stay off perfkit's output for its whole life; what goes
    wrong inside it still reaches Python as an exception."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if java() is None:
        raise PerfkitError("Spark", "no Java runtime found (Spark runs on the JVM)",
                           "install Java 17 or 21 and put it on PATH or in JAVA_HOME")
    conf = spark_conf(threads)
    Path(conf["spark.local.dir"]).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        with silenced(1, 2):
            spark = builder.getOrCreate()
    except Exception as exc:
        raise PerfkitError("Spark", f"a local Spark session did not start ({brief(exc)})",
                           "check `java -version` (Spark 4 needs Java 17 or 21) and JAVA_HOME") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def load(native: NativeModel, threads: int | None = None) -> Any:
    """The saved folder as a PipelineModel on this process's Spark session (started on `threads` cores if it is
    not running yet); a model saved alone is wrapped as a one-stage pipeline. Stages of classes outside Spark ML
    are Python code imported by name: only with trust. Refusals come before the JVM starts."""
    subject = native.source or native.path
    folder = read_folder(native.path)
    if folder.cls == PIPELINE or not folder.stages:
        raise PerfkitError(subject, "an unfitted Spark ML Pipeline (an estimator): it has nothing to score with",
                           "fit it and save the model: pipeline.fit(df).write().save(path)")
    foreign = sorted({s.cls for s in folder.stages if not s.cls.startswith(OWN_CLASSES)})
    if foreign and not trusted(native.trusted):
        raise PerfkitError(subject, f"its stages include Python classes that loading imports by name "
                           f"({', '.join(foreign)}): that runs their code",
                           "pass --trust (or PERFKIT_TRUST=1) only if you trust where the folder came from")
    spark = spark_session(threads)
    from pyspark.ml import Estimator, PipelineModel
    from pyspark.ml.util import DefaultParamsReader

    try:
        loaded: Any = DefaultParamsReader.loadParamsInstance(native.path, spark.sparkContext)
    except Exception as exc:
        raise PerfkitError(subject, f"Spark could not load it ({brief(exc)})",
                           f"save it again with model.write().save(path) (this is Spark {spark.version}; the folder "
                           f"was saved by Spark {folder.spark_version})") from None
    if isinstance(loaded, Estimator):
        raise PerfkitError(subject, f"a {type(loaded).__name__} that is not fitted (an estimator)",
                           "fit it and save the fitted model: estimator.fit(df).write().save(path)")
    return loaded if isinstance(loaded, PipelineModel) else PipelineModel(stages=[loaded])


def flat_stages(model: Any) -> list[Any]:
    """Every stage, nested pipelines opened, in the order they run: the order of `read_folder`'s stages."""
    from pyspark.ml import PipelineModel

    out: list[Any] = []
    for stage in model.stages:
        out += flat_stages(stage) if isinstance(stage, PipelineModel) else [stage]
    return out


@dataclass(frozen=True)
class SparkInput:
    """A column the pipeline reads before any stage writes it, as the ONNX model takes it."""

    port: Port  # (N, 1) for a number or a string, (N, width) for a vector
    kind: str  # number, string, or vector: its type in the DataFrame (double, string, vector)


def pipeline_inputs(native: NativeModel, model: Any) -> tuple[SparkInput, ...]:
    """The columns the first stages read, from the folder's metadata; a vector's width from its stage."""
    subject = native.source or native.path
    loaded: dict[str, Any] = {s.uid: s for s in flat_stages(model)}
    out = []
    for column in read_folder(native.path).inputs():
        if column.kind != "vector":
            dtype = "string" if column.kind == "string" else "float32"
            out.append(SparkInput(Port(column.name, dtype, (None, 1)), column.kind))
            continue
        width = vector_width(loaded.get(column.stage.uid))
        if width is None:
            raise PerfkitError(subject, f"its {column.stage.name} reads the vector column '{column.name}', whose "
                               "width it does not record", "put a VectorAssembler of the raw columns first")
        out.append(SparkInput(Port(column.name, "float32", (None, width)), "vector"))
    if not out:
        raise PerfkitError(subject, "no stage names a column it reads (inputCol, inputCols or featuresCol)",
                           "perfkit scores pipelines whose stages name the columns they read")
    return tuple(out)


def vector_width(stage: Any) -> int | None:
    """How many features a stage that reads a vector takes: a predictor's numFeatures, a scaler's statistics."""
    width = getattr(stage, "numFeatures", None)
    if isinstance(width, int) and width > 0:
        return width
    for attr in ("std", "originalMin", "maxAbs"):  # StandardScaler, MinMaxScaler, MaxAbsScaler models
        stats = getattr(stage, attr, None)
        if stats is not None:
            return int(stats.size)
    pc = getattr(stage, "pc", None)  # PCAModel: one row per input feature
    return int(pc.numRows) if pc is not None else None


def label_columns(model: Any) -> set[str]:
    """Columns that hold a classifier's predicted class (a double in Spark, an integer label in ONNX)."""
    from pyspark.ml.classification import ClassificationModel, OneVsRestModel

    return {s.getOrDefault("predictionCol") for s in flat_stages(model)
            if isinstance(s, ClassificationModel | OneVsRestModel)}


class SparkBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if target.device != "cpu":
            return f"perfkit runs Spark ML on a local CPU session only, not {target.device}"
        if missing():
            return f"{missing()} is not installed — pip install 'perfkit[spark]'"
        return None if java() else "no Java runtime found — install Java 17 or 21 (Spark runs on the JVM)"

    def open(self, native: NativeModel, target: Target) -> SparkScoring:
        return SparkScoring(load(native, target.threads), native)


class SparkScoring(Closing):
    """One batch-scoring call: a DataFrame made from the feed's rows, the pipeline's transform, the output
    columns collected. All three are timed, as that is what scoring a batch from Python with Spark costs."""

    jit_warmup_calls = JIT_WARMUP_CALLS

    def __init__(self, model: Any, native: NativeModel) -> None:
        import pyspark

        self._spark = spark_session()
        self._model, self._inputs = model, pipeline_inputs(native, model)
        self._schema = input_schema(self._inputs)
        produced = model.transform(self._spark.createDataFrame([], self._schema)).schema
        self.output_names = tuple(n for n in native.outputs if n in produced.fieldNames())
        labels = label_columns(model)
        self._kinds = [_kind(produced[n].dataType, n in labels) for n in self.output_names]
        master = self._spark.sparkContext.master
        self.providers = ("spark:cpu",)  # what ran is what was asked for; the master (local[N]) is in settings
        self.settings = {"requested": "spark:cpu", "spark": pyspark.__version__, "master": master,
                         "precision": "float64 (Spark's own)",
                         "timed": "createDataFrame from the rows + transform + collect (one Spark batch-scoring "
                                  "call from Python)"}

    def prepare(self, feed: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The feed as rows of Python values, one per item: doubles, strings, or dense vectors."""
        import numpy as np
        from pyspark.ml.linalg import DenseVector

        columns: list[list[Any]] = []
        for column in self._inputs:
            values = np.asarray(feed[column.port.name])
            if column.kind == "string":
                columns.append([str(v) for v in values.reshape(-1)])
            elif column.kind == "vector":
                columns.append([DenseVector(row) for row in values.astype(np.float64).reshape(len(values), -1)])
            else:
                columns.append(values.astype(np.float64).reshape(-1).tolist())
        return list(zip(*columns, strict=True))

    def bind(self, prepared: list[tuple[Any, ...]]) -> Callable[[], Any]:
        spark, model, schema, names = self._spark, self._model, self._schema, list(self.output_names)

        def call() -> Any:
            frame = spark.createDataFrame(prepared, schema, verifySchema=False)
            return model.transform(frame).select(*names).collect()

        return call

    def run(self, prepared: list[tuple[Any, ...]]) -> list[Any]:
        """Each output as the ONNX model gives it: a classifier's labels (N,) int64, vectors (N, k), other
        numbers (N, 1) — in float64, Spark's own precision."""
        rows = self.bind(prepared)()
        return [_column([r[k] for r in rows], kind) for k, kind in enumerate(self._kinds)]

    def close(self) -> None:
        # The Spark session stays up: it belongs to the process (30–45 s to start) and ends with it.
        self._model = None


def input_schema(inputs: tuple[SparkInput, ...]) -> Any:
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    types = {"number": DoubleType(), "string": StringType(), "vector": VectorUDT()}
    return StructType([StructField(c.port.name, types[c.kind]) for c in inputs])


def _kind(data_type: Any, label: bool) -> str:
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import IntegerType, LongType, StringType

    if isinstance(data_type, VectorUDT):
        return "vector"
    if label or isinstance(data_type, IntegerType | LongType):
        return "label"
    return "string" if isinstance(data_type, StringType) else "number"


def _column(values: list[Any], kind: str) -> Any:
    import numpy as np

    if kind == "vector":
        return np.array([v.toArray() for v in values], dtype=np.float64).reshape(len(values), -1)
    if kind == "label":
        return np.array(values, dtype=np.int64)
    if kind == "string":
        return np.array(values, dtype=object).reshape(-1, 1)
    return np.array(values, dtype=np.float64).reshape(-1, 1)
