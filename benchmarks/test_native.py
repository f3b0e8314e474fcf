"""Native models beside their ONNX conversions: parity, and how much faster onnxruntime runs them.

Targets (issue 4), for a scikit-learn pipeline, a PyTorch CNN and a Keras model that no unit test contains
(built here in code; the scikit-learn ones are fitted on the datasets scikit-learn ships, so no download):
parity error of the conversion ≤ 1e-5 and 100 % label agreement on real rows; `perfkit bench` shows native
and ONNX side by side (the issue expects onnxruntime 30-500× faster than scikit-learn at batch 1).

Every figure comes from perfkit itself: `perfkit.convert` for parity, `perfkit.benchmark` for the table, each
row timed in its own spawned worker with perfkit's plan, native and ONNX in the same run.
Run: pytest benchmarks/test_native.py --benchmark-only -s
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import perfkit
from perfkit.analysis.verdict import native_speedups
from perfkit.core.spec import Plan

PLAN = Plan(warmup_time_s=0.5, min_rounds=50, min_time_s=2.0, max_time_s=6.0)


def sklearn_models(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """(model file, real rows) per scikit-learn model."""
    import joblib
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    digits_x, digits_y = load_digits(return_X_y=True)
    cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
    models = {
        "digits: imputer+scaler+PCA+logistic": (
            make_pipeline(SimpleImputer(), StandardScaler(), PCA(20), LogisticRegression(max_iter=500)),
            digits_x, digits_y),
        "breast cancer: scaler+random forest(100)": (
            make_pipeline(StandardScaler(), RandomForestClassifier(100, random_state=0)), cancer_x, cancer_y),
    }
    try:
        from lightgbm import LGBMClassifier

        models["breast cancer: scaler+LightGBM(50)"] = (
            make_pipeline(StandardScaler(), LGBMClassifier(n_estimators=50, verbose=-1)), cancer_x, cancer_y)
    except ImportError:
        pass
    out = {}
    for name, (model, x, y) in models.items():
        path = folder / (name.split(":")[0].replace(" ", "_") + f"_{len(out)}.joblib")
        joblib.dump(model.fit(x, y), path)
        out[name] = (path, x.astype(np.float32))
    return out


def torch_cnn(folder: Path) -> Path:
    import torch

    class Block(torch.nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.c1, self.b1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)
            self.c2, self.b2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

        def forward(self, x):
            return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32),
                              torch.nn.ReLU(), Block(32), Block(32), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(32, 10))
    with torch.no_grad():  # trained-looking batch-norm statistics, so the folded constants are not trivial
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = folder / "cnn.pt"
    torch.jit.save(torch.jit.trace(net.eval(), torch.rand(1, 3, 64, 64)), path)
    return path


def keras_cnn(folder: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((48, 48, 3), name="image")
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(16, 3, padding="same")(image)))
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(h))
    h = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(h))
    path = folder / "cnn.keras"
    keras.Model(image, keras.layers.Dense(7, activation="softmax")(h)).save(path)
    return path


def report_ratios(name: str, report) -> dict[str, float]:
    out = {}
    for n, i, ratio in native_speedups(report):
        r = report.results[i]
        native = report.results[n]
        print(f"  {name}, batch {r.batch}: native {native.summary.median / 1e3:9.1f} µs, ONNX "
              f"{r.summary.median / 1e3:8.1f} µs -> ONNX {ratio.value:6.1f}× ({ratio.low:.1f}–{ratio.high:.1f})")
        out[f"batch {r.batch}"] = ratio.value
    return out


def test_scikit_learn_pipelines(benchmark, tmp_path):
    pytest.importorskip("skl2onnx")
    figures = {}
    print()
    for name, (path, rows) in sklearn_models(tmp_path).items():
        for batch in (1, 64):
            np.savez(tmp_path / "rows.npz", X=rows[:batch])
            lines, parity = perfkit.to_onnx(str(path), str(tmp_path / "m.onnx"), trust=True,
                                            inputs=str(tmp_path / "rows.npz"), cache_dir=str(tmp_path / "c"))
            assert parity.ok, "\n".join(lines)
            report = perfkit.benchmark(str(path), trust=True, inputs=str(tmp_path / "rows.npz"), plan=PLAN,
                                       results_dir=None, cache_dir=str(tmp_path / "c"))
            figures.update({f"{name} {k}": v for k, v in report_ratios(name, report).items()})
        worst = max(a.max_abs for a in parity.outputs if a.max_abs is not None)
        print(f"  {name}: parity max abs {worst:.2g} on {parity.rows} real rows, labels agree 100%")
    assert all(v > 1 for v in figures.values()), figures  # onnxruntime beats scikit-learn on every one
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)  # the figures above are the result


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_cnns(benchmark, tmp_path, framework):
    pytest.importorskip(framework)
    path = torch_cnn(tmp_path) if framework == "torch" else keras_cnn(tmp_path)
    shapes = ("x=1x3x64x64",) if framework == "torch" else ()
    lines, parity = perfkit.to_onnx(str(path), str(tmp_path / "m.onnx"), shapes=shapes, batch=16,
                                    cache_dir=str(tmp_path / "c"))
    print("\n" + "\n".join(lines))
    assert parity.ok
    report = perfkit.benchmark(str(path), shapes=shapes, batch=(1, 16), plan=PLAN, results_dir=None,
                               cache_dir=str(tmp_path / "c"))
    figures = report_ratios(f"{framework} CNN", report)
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)


def hf_encoder(folder: Path) -> tuple[Path, Path]:
    """A BERT-base-width classifier (hidden 768, 12 heads, 2 layers) saved with save_pretrained, and a batch of
    8 real-looking requests: ids across the vocabulary, [CLS] first, padded after 96 of 128 tokens."""
    import torch
    import transformers

    torch.manual_seed(0)
    path = folder / "bert"
    config = transformers.BertConfig(num_hidden_layers=2, num_labels=2)
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    rng = np.random.default_rng(1)
    ids = rng.integers(1000, config.vocab_size, (8, 128))
    ids[:, 0], ids[:, 96:] = 101, 0
    mask = np.ones_like(ids)
    mask[:, 96:] = 0
    np.savez(folder / "text.npz", input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids))
    return path, folder / "text.npz"


def test_hugging_face_encoder(benchmark, tmp_path):
    pytest.importorskip("transformers")
    path, inputs = hf_encoder(tmp_path)
    lines, parity = perfkit.to_onnx(str(path), str(tmp_path / "m.onnx"), inputs=str(inputs),
                                    cache_dir=str(tmp_path / "c"))
    print("\n" + "\n".join(lines))
    assert parity.ok
    figures = {}
    for batch in (1, 8):
        np.savez(tmp_path / "batch.npz", **{k: v[:batch] for k, v in np.load(inputs).items()})
        report = perfkit.benchmark(str(path), inputs=str(tmp_path / "batch.npz"), plan=PLAN, results_dir=None,
                                   cache_dir=str(tmp_path / "c"))
        figures.update(report_ratios("BERT-base width, 2 layers (HF folder)", report))
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)


def frozen_mobilenet(folder: Path) -> Path:
    """Keras' MobileNetV2 (random weights, 128×128) frozen to a GraphDef the way TF1-era serving code kept
    models: variables folded to constants, written with tf.io.write_graph. One training-mode pass first gives
    the batch norms real statistics, so the outputs are not one constant."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(weights=None, input_shape=(128, 128, 3), classes=100)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(np.random.default_rng(0).random((16, 128, 128, 3), dtype=np.float32), training=True)
    spec = tf.TensorSpec([None, 128, 128, 3], tf.float32, name="images")
    serve = tf.function(lambda x: net(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(serve)
    tf.io.write_graph(frozen.graph.as_graph_def(), str(folder), "mobilenet_v2.pb", as_text=False)
    return folder / "mobilenet_v2.pb"


def test_tensorflow_frozen_graph(benchmark, tmp_path):
    pytest.importorskip("tf2onnx")
    path = frozen_mobilenet(tmp_path)
    lines, parity = perfkit.to_onnx(str(path), str(tmp_path / "m.onnx"), batch=4, cache_dir=str(tmp_path / "c"))
    print("\n" + "\n".join(lines))
    assert parity.ok
    report = perfkit.benchmark(str(path), batch=(1, 8), plan=PLAN, results_dir=None, cache_dir=str(tmp_path / "c"))
    figures = report_ratios("MobileNetV2 128px (frozen GraphDef)", report)
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)


PMML_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">'
             '<Header/><DataDictionary>{fields}</DataDictionary>{model}</PMML>')


def _pmml_fields(names: list[str]) -> tuple[str, str]:
    fields = '<DataField name="y" optype="continuous" dataType="double"/>' + "".join(
        f'<DataField name="{n}" optype="continuous" dataType="double"/>' for n in names)
    schema = '<MiningSchema><MiningField name="y" usageType="target"/>' + "".join(
        f'<MiningField name="{n}"/>' for n in names) + "</MiningSchema>"
    return fields, schema


def _pmml_tree(tree, names: list[str], node: int = 0, predicate: str = "<True/>") -> str:
    """One scikit-learn regression tree as PMML Nodes: left child `<=` its threshold, right `>`."""
    left, right = tree.children_left[node], tree.children_right[node]
    if left == -1:
        return f'<Node score="{float(tree.value[node].ravel()[0])!r}">{predicate}</Node>'
    field, threshold = names[tree.feature[node]], repr(float(tree.threshold[node]))
    return (f"<Node>{predicate}"
            + _pmml_tree(tree, names, left, f'<SimplePredicate field="{field}" operator="lessOrEqual" '
                                            f'value="{threshold}"/>')
            + _pmml_tree(tree, names, right, f'<SimplePredicate field="{field}" operator="greaterThan" '
                                             f'value="{threshold}"/>') + "</Node>")


def pmml_models(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """A linear regression and a 100-tree gradient boosting regressor fitted on scikit-learn's diabetes data,
    written as PMML the way sklearn2pmml lays them out (a RegressionModel; a MiningModel summing TreeModels,
    the learning rate and initial value as the target's rescaling)."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    x, y = load_diabetes(return_X_y=True)
    names = [f"x{i}" for i in range(x.shape[1])]
    fields, schema = _pmml_fields(names)
    linear = LinearRegression().fit(x, y)
    predictors = "".join(f'<NumericPredictor name="{n}" coefficient="{float(c)!r}"/>'
                         for n, c in zip(names, linear.coef_, strict=True))
    models = {"diabetes: linear regression": f'<RegressionModel functionName="regression">{schema}'
                                             f'<RegressionTable intercept="{float(linear.intercept_)!r}">{predictors}'
                                             "</RegressionTable></RegressionModel>"}
    boosted = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    segments = "".join(f'<Segment id="{k + 1}"><True/><TreeModel functionName="regression" '
                       f'splitCharacteristic="binarySplit">{schema}'
                       f"{_pmml_tree(est[0].tree_, names)}</TreeModel></Segment>"
                       for k, est in enumerate(boosted.estimators_))
    init = float(boosted.init_.constant_.ravel()[0])
    models["diabetes: gradient boosting(100)"] = (
        f'<MiningModel functionName="regression">{schema}<Targets><Target field="y" '
        f'rescaleFactor="{float(boosted.learning_rate)!r}" rescaleConstant="{init!r}"/></Targets>'
        f'<Segmentation multipleModelMethod="sum">{segments}</Segmentation></MiningModel>')
    out = {}
    for k, (name, model) in enumerate(models.items()):
        path = folder / f"pmml_{k}.pmml"
        path.write_text(PMML_HEAD.format(fields=fields, model=model))
        out[name] = (path, x.astype(np.float64))
    return out


def test_pmml_models(benchmark, tmp_path):
    from perfkit.backends.pmml import java_missing

    if java_missing():
        pytest.skip("no Java runtime for the JPMML evaluator")
    figures = {}
    print()
    for name, (path, rows) in pmml_models(tmp_path).items():
        for batch in (1, 64):
            np.savez(tmp_path / "rows.npz", X=rows[:batch].astype(np.float32))
            lines, parity = perfkit.to_onnx(str(path), str(tmp_path / "m.onnx"), inputs=str(tmp_path / "rows.npz"),
                                            cache_dir=str(tmp_path / "c"))
            assert parity.ok, "\n".join(lines)
            report = perfkit.benchmark(str(path), inputs=str(tmp_path / "rows.npz"), plan=PLAN, results_dir=None,
                                       cache_dir=str(tmp_path / "c"))
            figures.update({f"{name} {k}": v for k, v in report_ratios(name, report).items()})
        worst = max(a.max_abs for a in parity.outputs if a.max_abs is not None)
        print(f"  {name}: parity max abs {worst:.2g} on {parity.rows} real rows")
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)


def spark_pipeline(folder: Path) -> tuple[Path, Path]:
    """VectorAssembler + StandardScaler + a 30-tree random forest on the breast-cancer data, saved with
    PipelineModel.write(), and 64 real rows, one column each."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from sklearn.datasets import load_breast_cancer

    from perfkit.backends.spark import spark_session

    x, y = load_breast_cancer(return_X_y=True)
    names = [f"f{i}" for i in range(x.shape[1])]
    spark = spark_session()
    rows = [(*map(float, row), float(label)) for row, label in zip(x, y, strict=True)]
    frame = spark.createDataFrame(rows, [*names, "label"])
    Pipeline(stages=[VectorAssembler(inputCols=names, outputCol="raw"),
                     StandardScaler(inputCol="raw", outputCol="features"),
                     RandomForestClassifier(numTrees=30, maxDepth=6, seed=0)]).fit(frame).write().save(
        str(folder / "forest"))
    spark.stop()
    np.savez(folder / "rows.npz", **{n: x[:64, i:i + 1].astype(np.float32) for i, n in enumerate(names)})
    return folder / "forest", folder / "rows.npz"


def test_spark_pipeline(benchmark, tmp_path, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PERFKIT_CACHE", str(tmp_path / "c"))
    path, rows = spark_pipeline(tmp_path)
    lines, parity = perfkit.to_onnx(str(path), str(tmp_path / "m.onnx"), inputs=str(rows),
                                    cache_dir=str(tmp_path / "c"))
    print("\n" + "\n".join(lines))
    assert parity.ok
    report = perfkit.benchmark(str(path), inputs=str(rows), plan=PLAN, results_dir=None, cache_dir=str(tmp_path / "c"))
    figures = report_ratios("Spark scaler+random forest(30), batch of 64 rows", report)
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)
