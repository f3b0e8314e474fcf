"""Saved Spark ML folders read from their metadata JSON alone: class, stages in order, the columns they read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.files.formats import sniff
from perfkit.files.spark_folder import is_spark_folder, read_folder

ML = "org.apache.spark.ml"


def write_meta(folder: Path, cls: str, params: dict, defaults: dict | None = None, spark4: bool = True) -> None:
    """metadata/ as Spark writes it: part-00000-<uuid>-c000.txt in Spark 4, part-00000 before."""
    (folder / "metadata").mkdir(parents=True)
    name = "part-00000-6c73221f-c000.txt" if spark4 else "part-00000"
    meta = {"class": cls, "timestamp": 1, "sparkVersion": "4.0.0" if spark4 else "3.5.1",
            "uid": params.pop("uid"), "paramMap": params, "defaultParamMap": defaults or {}}
    (folder / "metadata" / name).write_text(json.dumps(meta) + "\n")
    (folder / "metadata" / "_SUCCESS").write_text("")


def write_pipeline(folder: Path, stages: list[tuple[str, dict]], cls: str = f"{ML}.PipelineModel",
                   spark4: bool = True) -> Path:
    """A pipeline folder whose stages are (class, params with a uid), in that order."""
    write_meta(folder, cls, {"uid": "PipelineModel_1", "stageUids": [p["uid"] for _, p in stages]}, spark4=spark4)
    for i, (stage_cls, params) in enumerate(stages):
        params = dict(params)
        uid = params["uid"]
        if stage_cls.endswith("PipelineModel"):
            write_pipeline(folder / "stages" / f"{i}_{uid}", params.pop("stages"))
        else:
            write_meta(folder / "stages" / f"{i}_{uid}", stage_cls, params, _defaults(stage_cls), spark4)
    return folder


def _defaults(cls: str) -> dict:
    """What Spark writes into defaultParamMap: a predictor reads `features` and writes its three columns."""
    if ".classification." in cls or ".regression." in cls:
        return {"featuresCol": "features", "labelCol": "label", "predictionCol": "prediction",
                "probabilityCol": "probability", "rawPredictionCol": "rawPrediction"}
    return {"outputCol": "default__output"}


ASSEMBLER = (f"{ML}.feature.VectorAssembler", {"uid": "VA_1", "inputCols": ["a", "b", "si"], "outputCol": "raw"})
INDEXER = (f"{ML}.feature.StringIndexerModel", {"uid": "SI_1", "inputCol": "s", "outputCol": "si"})
SCALER = (f"{ML}.feature.StandardScalerModel", {"uid": "SS_1", "inputCol": "raw", "outputCol": "features"})
LOGISTIC = (f"{ML}.classification.LogisticRegressionModel", {"uid": "LR_1"})


def test_a_pipeline_reads_only_the_columns_no_earlier_stage_writes_and_not_the_label(tmp_path):
    folder = read_folder(str(write_pipeline(tmp_path / "p", [INDEXER, ASSEMBLER, SCALER, LOGISTIC])))
    assert folder.pipeline and folder.spark_version == "4.0.0"
    assert [s.name for s in folder.stages] == ["StringIndexerModel", "VectorAssembler", "StandardScalerModel",
                                               "LogisticRegressionModel"]
    assert [(c.name, c.kind, c.stage.name) for c in folder.inputs()] == [
        ("s", "string", "StringIndexerModel"), ("a", "number", "VectorAssembler"), ("b", "number", "VectorAssembler")]
    assert folder.stages[-1].writes == ("prediction", "probability", "rawPrediction")


def test_stages_follow_the_pipelines_stage_uids_not_the_folder_names_order(tmp_path):
    """Twelve stages: stages/10_… sorts before stages/2_… by name."""
    stages = [(f"{ML}.feature.Binarizer", {"uid": f"B_{i}", "inputCol": f"c{i}", "outputCol": f"o{i}"})
              for i in range(12)]
    folder = read_folder(str(write_pipeline(tmp_path / "p", stages, spark4=False)))
    assert [s.uid for s in folder.stages] == [f"B_{i}" for i in range(12)]
    assert [c.name for c in folder.inputs()] == [f"c{i}" for i in range(12)]


def test_a_nested_pipeline_is_flattened_in_the_order_its_stages_run(tmp_path):
    inner = (f"{ML}.PipelineModel", {"uid": "Inner_1", "stages": [ASSEMBLER, SCALER]})
    folder = read_folder(str(write_pipeline(tmp_path / "p", [INDEXER, inner, LOGISTIC])))
    assert [s.uid for s in folder.stages] == ["SI_1", "VA_1", "SS_1", "LR_1"]
    assert [c.name for c in folder.inputs()] == ["s", "a", "b"]


def test_a_model_saved_alone_is_its_one_stage_reading_a_features_vector(tmp_path):
    write_meta(tmp_path / "m", LOGISTIC[0], dict(LOGISTIC[1]), _defaults(LOGISTIC[0]))
    folder = read_folder(str(tmp_path / "m"))
    assert not folder.pipeline and [s.name for s in folder.stages] == ["LogisticRegressionModel"]
    assert [(c.name, c.kind) for c in folder.inputs()] == [("features", "vector")]


def test_a_scaler_first_reads_a_vector_column(tmp_path):
    folder = read_folder(str(write_pipeline(tmp_path / "p", [SCALER, LOGISTIC])))
    assert [(c.name, c.kind) for c in folder.inputs()] == [("raw", "vector")]


def test_a_stage_folder_missing_from_stages_is_named(tmp_path):
    write_pipeline(tmp_path / "p", [ASSEMBLER, LOGISTIC])
    for child in (tmp_path / "p" / "stages").glob("1_*"):
        shutil.rmtree(child)
    with pytest.raises(PerfkitError, match="names a stage LR_1 that is not under stages/"):
        read_folder(str(tmp_path / "p"))


def test_metadata_that_is_not_spark_json_is_one_line(tmp_path):
    (tmp_path / "p" / "metadata").mkdir(parents=True)
    (tmp_path / "p" / "metadata" / "part-00000").write_text("not json {")
    with pytest.raises(PerfkitError, match="not Spark's metadata JSON"):
        read_folder(str(tmp_path / "p"))


def test_the_sniffer_calls_a_spark_folder_spark_and_another_metadata_folder_a_directory(tmp_path):
    write_pipeline(tmp_path / "p", [ASSEMBLER, LOGISTIC])
    write_meta(tmp_path / "m", LOGISTIC[0], dict(LOGISTIC[1]))
    (tmp_path / "other" / "metadata").mkdir(parents=True)
    (tmp_path / "other" / "metadata" / "part-00000").write_text('{"class": "com.example.Thing"}')
    assert sniff(tmp_path / "p").kind == "spark" and sniff(tmp_path / "m").kind == "spark"
    assert not is_spark_folder(tmp_path / "other") and sniff(tmp_path / "other").kind == "directory"
