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
