"""Parity of a conversion with its native model: the same feeds through both, each in a worker, every output
compared by name, labels for classifiers, and where float64 → float32 changes scikit-learn's answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfkit.analysis.accuracy import against
from perfkit.core.model import NativeModel
from perfkit.core.records import OutputAccuracy
from perfkit.measure.case import reference_outputs
from perfkit.measure.isolate import call_in

FLOAT32_ONLY = ("LGBM", "XGB")  # onnxmltools' booster converters write float32 trees, whatever the input type
PARITY_TOLERANCE = 1e-5  # the largest absolute error a float32 conversion should show on well-scaled outputs


@dataclass(frozen=True)
class Parity:
    outputs: tuple[OutputAccuracy, ...]
    rows: int  # items compared (rows of a table, samples of a batch)
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(a.comparable and (a.agree is None or a.agree == 1.0) and
                   (a.max_abs is None or a.max_abs <= PARITY_TOLERANCE) for a in self.outputs)


def parity(native: NativeModel, onnx_path: str, feeds: tuple[dict[str, Any], ...], timeout_s: float,
           isolate: bool) -> Parity:
    """The native model and its conversion on the same feeds, each in a worker; every output compared."""
    reference = call_in(reference_outputs, (native, feeds), timeout_s, isolate)
    converted = call_in(reference_outputs, (onnx_path, feeds), timeout_s, isolate)
    outputs = against(reference, converted)  # an output the conversion lacks is "not comparable"
    rows = sum(len(next(iter(f.values()))) for f in feeds) if feeds and feeds[0] else 0
    return Parity(outputs, rows, tuple(float64_warnings(native, outputs, timeout_s, isolate)))


def float64_warnings(native: NativeModel, outputs: tuple[OutputAccuracy, ...], timeout_s: float,
                     isolate: bool) -> list[str]:
    """scikit-learn computes in float64, the conversion in float32: name the steps that make that matter."""
    off = [a for a in outputs if a.comparable and ((a.agree is not None and a.agree < 1.0) or
                                                   (a.max_abs or 0.0) > PARITY_TOLERANCE)]
    if native.framework != "sklearn" or not off:
        return []
    steps = call_in(_sensitive_steps, native, timeout_s, isolate)
    where = ", ".join(steps) if steps else "float32 arithmetic in the converted graph"
    worst = ", ".join(f"{a.name}: " + (f"labels agree {a.agree:.2%}" if a.agree is not None and a.agree < 1
                                       else f"max abs {a.max_abs:.2g}") for a in off)
    boosters = [s.split(" ")[0] for s in steps if s.startswith(FLOAT32_ONLY)]
    fix = (f"--float64 cannot help: the {' and '.join(boosters)} converters write float32 trees"
           if boosters else "or convert with --float64 to keep scikit-learn's precision in the ONNX model")
    return [f"float64 → float32 changes answers ({worst}); the likely cause: {where} — compare on real data, {fix}"]


def _sensitive_steps(native: NativeModel) -> list[str]:
    from perfkit.backends.sklearn import float64_sensitive, load

    return float64_sensitive(load(native))
