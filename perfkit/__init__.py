"""perfkit: measure a model on onnxruntime soundly, and keep the figures.

The Python API is `perfkit.benchmark(...)`; heavy modules are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfkit.report import Report

__version__ = "0.1.0"


def benchmark(model: str, *, targets: tuple[str, ...] = ("ort:cpu",), batch: tuple[int, ...] = (),
          dims: tuple[str, ...] = (), shapes: tuple[str, ...] = (), inputs: str | None = None,
          quick: bool = False, results_dir: str | None = "results", **options) -> Report:
    """Benchmark an ONNX model and its variants; returns the Report (`to_frame()` gives a pandas DataFrame).

    `options` go to `perfkit.spec.make_spec`: seed, threads, opt_level, allow_fallback, plan, and for
    variants `variants=("auto",)` or chains such as "ort-opt:all+int8-static:qdq", accuracy_budget,
    calibration, cache_dir, profile.
    """
    from perfkit import bench as bench_module
    from perfkit.spec import QUICK_PLAN, make_spec

    if quick:
        options.setdefault("plan", QUICK_PLAN)
    spec = make_spec(model, targets=targets, batch=batch, dims=dims, shapes=shapes, inputs=inputs,
                     results_dir=results_dir, **options)
    return bench_module.run(spec)
