"""A saved Spark ML folder read from its metadata JSON, without Spark: its class, its stages in order (nested
pipelines flattened), and the columns each stage reads and writes. `pipelineModel.write().save(path)` writes
`metadata/part-00000…` (one JSON line) and `stages/{i}_{uid}/` with the same layout per stage; a model saved alone
has `metadata/` and `data/`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from perfkit.core.errors import PerfkitError

PIPELINE_MODEL = "org.apache.spark.ml.PipelineModel"
PIPELINE = "org.apache.spark.ml.Pipeline"  # an unfitted pipeline: an estimator, nothing to score with
# Params through which a stage reads columns at transform time (labelCol is read only when fitting).
READ_PARAMS = ("inputCol", "inputCols", "featuresCol")
WRITE_PARAMS = ("outputCol", "outputCols", "predictionCol", "probabilityCol", "rawPredictionCol")
STRING_READERS = ("StringIndexerModel", "Tokenizer", "RegexTokenizer")  # stages whose input column is text
# Feature stages whose input column is a vector (a predictor's featuresCol is one too).
VECTOR_READERS = ("StandardScalerModel", "MinMaxScalerModel", "MaxAbsScalerModel", "PCAModel", "VectorIndexerModel",
                  "Normalizer", "ElementwiseProduct", "DCT", "PolynomialExpansion", "VectorSlicer",
                  "ChiSqSelectorModel")


@dataclass(frozen=True)
class SparkStage:
    cls: str  # the class its metadata names: org.apache.spark.ml.feature.VectorAssembler (or a Python class)
    uid: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    features: tuple[str, ...] = ()  # of `reads`, those read as a features vector (a predictor's featuresCol)

    @property
    def name(self) -> str:
        return self.cls.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class SparkColumn:
    """A column the pipeline reads before any stage writes it: what the DataFrame handed to transform holds."""

    name: str
    kind: str  # number, string, or vector
    stage: SparkStage  # the first stage that reads it


@dataclass(frozen=True)
class SparkFolder:
    path: str
    cls: str  # the folder's own class: PipelineModel, or the one model saved alone
    spark_version: str
    stages: tuple[SparkStage, ...]  # what runs, in order: a model saved alone is its only stage

    @property
    def pipeline(self) -> bool:
        return self.cls == PIPELINE_MODEL

    def inputs(self) -> tuple[SparkColumn, ...]:
        """Each column read before any stage writes it, in the order the stages first read them."""
        written: set[str] = set()
        out: dict[str, SparkColumn] = {}
        for stage in self.stages:
            for column in stage.reads:
                if column not in written and column not in out:
                    out[column] = SparkColumn(column, _kind(column, stage), stage)
            written.update(stage.writes)
        return tuple(out.values())


def _kind(column: str, stage: SparkStage) -> str:
    if stage.name in STRING_READERS:
        return "string"
    return "vector" if column in stage.features or stage.name in VECTOR_READERS else "number"


def is_spark_folder(path: Path) -> bool:
    """A folder with metadata/part-00000… naming a Spark ML class (read, never run)."""
    part = _metadata_file(path)
    if part is None:
        return False
    with part.open("rb") as f:
        head = f.read(512)
    return b'"class"' in head and (b"org.apache.spark.ml" in head or b"pyspark.ml" in head)


def read_folder(path_text: str) -> SparkFolder:
    """The folder's class and its stages (nested pipelines flattened), from the metadata JSON alone."""
    root = Path(path_text)
    meta = _metadata(root, path_text)
    stages = _stages(root, meta, path_text) if meta["class"] in (PIPELINE_MODEL, PIPELINE) else (_stage(meta),)
    return SparkFolder(path_text, meta["class"], str(meta.get("sparkVersion", "?")), stages)


def _stages(root: Path, meta: dict, subject: str) -> tuple[SparkStage, ...]:
    """A pipeline's stages in the order of its stageUids, each read from stages/{i}_{uid}/."""
    folders = {p.name.split("_", 1)[-1]: p for p in (root / "stages").glob("*_*") if p.is_dir()}
    out: list[SparkStage] = []
    for uid in meta.get("paramMap", {}).get("stageUids", []):
        if uid not in folders:
            raise PerfkitError(subject, f"the pipeline names a stage {uid} that is not under stages/",
                               "copy the whole folder that pipelineModel.write().save(path) wrote")
        inner = _metadata(folders[uid], subject)
        out += _stages(folders[uid], inner, subject) if inner["class"] in (PIPELINE_MODEL, PIPELINE) \
            else [_stage(inner)]
    return tuple(out)


def _stage(meta: dict) -> SparkStage:
    params = {**meta.get("defaultParamMap", {}), **meta.get("paramMap", {})}

    def columns(names: tuple[str, ...]) -> tuple[str, ...]:
        found: list[str] = []
        for name in names:
            value = params.get(name)
            found += value if isinstance(value, list) else [value] if isinstance(value, str) and value else []
        return tuple(found)

    return SparkStage(meta["class"], str(meta.get("uid", "")), columns(READ_PARAMS), columns(WRITE_PARAMS),
                      columns(("featuresCol",)))


def _metadata_file(folder: Path) -> Path | None:
    """metadata/part-00000 (Spark 2 and 3) or metadata/part-00000-<uuid>-c000.txt (Spark 4)."""
    meta = folder / "metadata"
    if not meta.is_dir():
        return None
    return next(iter(sorted(p for p in meta.glob("part-00000*") if p.is_file())), None)


def _metadata(folder: Path, subject: str) -> dict:
    part = _metadata_file(folder)
    if part is None:
        raise PerfkitError(subject, f"{folder.name}/metadata/part-00000 is missing",
                           "copy the whole folder that model.write().save(path) wrote")
    try:
        meta = json.loads(part.read_text(encoding="utf-8").splitlines()[0])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise PerfkitError(subject, f"{part.relative_to(folder.parent)} is not Spark's metadata JSON",
                           "save the model again with model.write().save(path)") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("class"), str):
        raise PerfkitError(subject, f"{part.relative_to(folder.parent)} names no class",
                           "save the model again with model.write().save(path)")
    return meta
