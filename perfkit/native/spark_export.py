"""Spark ML → ONNX with onnxmltools.convert_sparkml: one input per column the pipeline's first stages read
(float [N, 1] for a number, string [N, 1], float [N, width] for a features vector), the columns its last stages
write (prediction, probability) as outputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, root_cause
from perfkit.core.model import NativeModel
from perfkit.files.spark_folder import SparkFolder, read_folder

if TYPE_CHECKING:
    from types import ModuleType

    from perfkit.native.exporters import ExportJob

MAX_OPSET = 15  # onnxmltools' Spark ML converters write nothing newer (its DEFAULT_OPSET_NUMBER)
# What onnxmltools' refusals mean for the stages that meet them, with what the user can do.
SPARK_FIXES = (
    ("'handleInvalid' and 'dropLast'", "its OneHotEncoder converts only with handleInvalid='keep' and dropLast=True "
                                       "(or 'error' and False): set them, fit and save the pipeline again"),
    ("Estimator must be fitted", "fit the pipeline and save the PipelineModel: pipeline.fit(df).write().save(path)"),
)


def export_onnx(job: ExportJob, sb: ModuleType) -> tuple[NativeModel, tuple[str, ...]]:
    native = job.native
    subject = native.source or native.path
    try:
        from onnxmltools import convert_sparkml
        from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType
    except ImportError:
        raise PerfkitError(subject, "converting Spark ML pipelines needs onnxmltools",
                           "pip install 'perfkit[spark]'") from None
    check_convertible(read_folder(native.path), subject)  # before Spark starts: a refusal costs no JVM
    model = sb.load(native)
    inputs = sb.pipeline_inputs(native, model)
    asked = job.opset or MAX_OPSET
    opset = min(asked, MAX_OPSET)
    types = [(c.port.name, (StringTensorType if c.port.dtype == "string" else FloatTensorType)(list(c.port.shape)))
             for c in inputs]
    try:
        with silenced(1):  # its LogisticRegression converter prints the node's attributes
            onx = convert_sparkml(model, "spark-pipeline", types, target_opset=opset, spark_session=sb.spark_session())
    except Exception as exc:
        raise _failure(subject, exc) from None
    Path(job.dst).write_bytes(onx.SerializeToString())
    outputs = tuple(o.name for o in onx.graph.output)
    ceiling = f"onnxmltools' Spark ML converters go no higher than {MAX_OPSET}"
    notes = (f"onnxmltools.convert_sparkml, target opset {opset} ({ceiling}"
             + (f"; --opset {asked} was asked" if asked > MAX_OPSET else "") + ")",
             "Spark computes in float64, the ONNX model in float32")
    return replace(native, inputs=tuple(c.port for c in inputs), outputs=outputs), notes


def unconvertible(folder: SparkFolder) -> list[str]:
    """The stages' classes that onnxmltools has no Spark ML converter for (its map names them as pyspark
    classes, which mirror the JVM's: org.apache.spark.ml.feature.X is pyspark.ml.feature.X)."""
    from onnxmltools.convert.sparkml.ops_names import sparkml_operator_name_map

    known = set(sparkml_operator_name_map.values())
    found = [s.cls for s in folder.stages if s.cls.replace("org.apache.spark", "pyspark", 1) not in known]
    return list(dict.fromkeys(found))


def check_convertible(folder: SparkFolder, subject: str) -> None:
    missing = unconvertible(folder)
    if missing:
        names = ", ".join(c.rsplit(".", 1)[-1] for c in missing)
        what = f"the stage {names} ({missing[0]})" if len(missing) == 1 else f"the stages {names}"
        raise PerfkitError(subject, f"onnxmltools.convert_sparkml has no converter for {what}",
                           "replace it with supported stages (onnxmltools' Spark ML list: VectorAssembler, "
                           "StandardScaler, StringIndexer, OneHotEncoder, linear models, trees, …), fit and save again")


def _failure(subject: str, exc: Exception) -> PerfkitError:
    why = root_cause(exc)
    fix = next((f for mark, f in SPARK_FIXES if mark in why), None)
    return PerfkitError(subject, f"onnxmltools.convert_sparkml could not convert it: {why}",
                        fix or "check the stages against onnxmltools' Spark ML list, or pass --debug --no-isolate")
