"""Parity of a conversion with its native model: the same feeds through both, each in a worker, every output
compared by name, labels for classifiers, and where float64 → float32 changes scikit-learn's answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from perfkit.analysis.accuracy import against
from perfkit.core.model import NativeModel
from perfkit.core.records import OutputAccuracy
from perfkit.measure.case import reference_outputs
from perfkit.measure.isolate import call_in

FLOAT32_ONLY = ("LGBM", "XGB")  # onnxmltools' booster converters write float32 trees, whatever the input type
PARITY_TOLERANCE = 1e-5  # the largest absolute error a float32 conversion should show on well-scaled outputs
# ... and on large values (a regression's 300.0), the relative error float32 rounding alone gives: a float32 has
# 2^-24 ≈ 6e-8 of relative precision, so 1e-6 is ~16 roundings, where a real difference is orders beyond.
PARITY_RELATIVE = 1e-6


@dataclass(frozen=True)
class Parity:
    outputs: tuple[OutputAccuracy, ...]
    rows: int  # items compared (rows of a table, samples of a batch)
    warnings: tuple[str, ...]
    unchecked: str = ""  # why the native model could not run here (PMML without Java): nothing compared

    @property
    def ok(self) -> bool:
        return not self.unchecked and all(a.comparable and (a.agree is None or a.agree == 1.0) and
                   (a.max_abs is None or a.max_abs <= PARITY_TOLERANCE or
                    a.max_rel is not None and a.max_rel <= PARITY_RELATIVE) for a in self.outputs)


def parity(native: NativeModel, onnx_path: str, feeds: tuple[dict[str, Any], ...], timeout_s: float,
           isolate: bool) -> Parity:
    """The native model and its conversion on the same feeds, each in a worker; every output compared."""
    reference = call_in(reference_outputs, (native, feeds), timeout_s, isolate)
    converted = call_in(reference_outputs, (onnx_path, feeds), timeout_s, isolate)
    outputs = against(reference, converted)  # an output the conversion lacks is "not comparable"
    rows = sum(len(next(iter(f.values()))) for f in feeds) if feeds and feeds[0] else 0
    return Parity(outputs, rows, tuple(float64_warnings(native, outputs, timeout_s, isolate)))


@dataclass(frozen=True)
class Cause:
    """Why a family of scikit-learn estimators answers otherwise once its float64 arithmetic is float32."""

    pattern: str  # matched against the class names of the model's steps
    why: str


# The first cause a step's class name matches is its cause; steps that match none say nothing.
CAUSES = (
    Cause(r"^(LGBM|XGB)", "its trees' thresholds are float32: a value on a split threshold goes the other way"),
    Cause(r"Neighbors|LocalOutlierFactor|KNNImputer|NearestCentroid",
          "nearest neighbours: distances that nearly tie in float64 tie or swap in float32, so another neighbour "
          "is picked"),
    Cause(r"Tree|Forest|GradientBoosting|AdaBoost|Bagging",
          "float32 thresholds: a value on a split threshold goes the other way"),
    Cause(r"^GaussianProcess", "kernel products and the solve against the training set lose float32 precision"),
    Cause(r"^(Nu)?SV[CR]$|^OneClassSVM$|^Kernel(Ridge|PCA)$", "kernel sums lose float32 precision"),
    Cause(r"^StandardScaler$", "divides by the feature's scale"),
    Cause(r"^RobustScaler$", "divides by the feature's IQR"),
    Cause(r"^MinMaxScaler$", "divides by the feature's range"),
    Cause(r"^MaxAbsScaler$", "divides by the largest value"),
    Cause(r"^KBinsDiscretizer$", "compares to bin edges"),
)


def likely_causes(step_names: list[str]) -> list[str]:
    """`KNeighborsRegressor (nearest neighbours: …)` for each step a cause is known for, in pipeline order."""
    out = []
    for name in step_names:
        cause = next((c for c in CAUSES if re.search(c.pattern, name)), None)
        if cause:
            out.append(f"{name} ({cause.why})")
    return out


def float64_warnings(native: NativeModel, outputs: tuple[OutputAccuracy, ...], timeout_s: float,
                     isolate: bool) -> list[str]:
    """scikit-learn computes in float64, the conversion in float32: name the steps that make that matter, and
    why each does, by estimator family."""
    off = [a for a in outputs if a.comparable and ((a.agree is not None and a.agree < 1.0) or
                                                   (a.max_abs or 0.0) > PARITY_TOLERANCE)]
    if native.framework != "sklearn" or not off:
        return []
    names = call_in(_step_names, native, timeout_s, isolate)
    causes = likely_causes(names)
    where = ", ".join(causes) if causes else "float32 arithmetic in the converted graph"
    worst = ", ".join(f"{a.name}: " + (f"labels agree {a.agree:.2%}" if a.agree is not None and a.agree < 1
                                       else f"max abs {a.max_abs:.2g}") for a in off)
    boosters = [n for n in names if n.startswith(FLOAT32_ONLY)]
    fix = (f"--float64 cannot help: the {' and '.join(boosters)} converters write float32 trees"
           if boosters else "or convert with --float64 to keep scikit-learn's precision in the ONNX model")
    return [f"float64 → float32 changes answers ({worst}); the likely cause: {where} — compare on real data, {fix}"]


def _step_names(native: NativeModel) -> list[str]:
    from perfkit.backends.sklearn import load, steps

    return [type(s).__name__ for s in steps(load(native))]
