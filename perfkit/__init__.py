"""perfkit: measure a model on onnxruntime soundly, and keep the figures.

The Python API is `perfkit.benchmark(...)`, `perfkit.to_onnx(...)` and `perfkit.to_frame(report)`; heavy
modules are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perfkit.core import VERSION

if TYPE_CHECKING:
    import pandas as pd

    from perfkit.core.report import Report
    from perfkit.native.parity import Parity

__version__ = VERSION


def benchmark(model: str, *, targets: tuple[str, ...] = ("ort:cpu",), batch: tuple[int, ...] = (),
              dims: tuple[str, ...] = (), shapes: tuple[str, ...] = (), inputs: str | None = None,
              quick: bool = False, results_dir: str | None = "results", **options: Any) -> Report:
    """Benchmark a model (ONNX, or native beside its ONNX conversion) and its variants; returns the Report
    (`perfkit.to_frame(report)` gives a pandas DataFrame).

    `options` go to `perfkit.options.make_spec`: seed, threads, opt_level, allow_fallback, plan, and for
    variants `variants=("auto",)` or chains such as "ort-opt:all+int8-static:qdq", accuracy_budget,
    calibration, cache_dir, profile; labelled samples to judge every row on, `eval="eval.npz"` (and
    label_column for a table); for native models trust, factory, opset, float64; `upgrade_opset=True` measures an
    ONNX model older than opset 7 upgraded (onnx.version_converter, in the cache).
    """
    from perfkit import bench
    from perfkit.core.spec import QUICK_PLAN
    from perfkit.options import make_spec

    if quick:
        options.setdefault("plan", QUICK_PLAN)
    spec = make_spec(model, targets=targets, batch=batch, dims=dims, shapes=shapes, inputs=inputs,
                     results_dir=results_dir, **options)
    return bench.run(spec)


def to_onnx(model: str, output: str, *, trust: bool = False, **options: Any) -> tuple[list[str], Parity]:
    """Convert a native model to ONNX at `output`; (the parity report as lines, the Parity object). Named so,
    not `convert`, because the `perfkit.convert` submodule would overwrite a function of that name on import.

    `options`: shapes (("x=1x3x224x224",)), inputs, batch, factory, opset, float64, cache_dir, timeout_s.
    """
    from perfkit.convert import run_convert

    return run_convert(model, output, trust=trust, **options)


def to_frame(report: Report) -> pd.DataFrame:
    """One row per result as a pandas DataFrame (times in ns): the columns of `--format csv`, with the
    verdict's speed-ups, accuracy and pick."""
    from perfkit.output.render import to_frame as frame_of

    return frame_of(report)
