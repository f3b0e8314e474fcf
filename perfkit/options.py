"""User-facing options -> a checked BenchSpec: every option's form, the variant chains and the budget are
read here, so a mistake is one line before anything runs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from perfkit.analysis.accuracy import parse_budget
from perfkit.core.errors import PerfkitError
from perfkit.core.spec import DEFAULT_BUDGET, BenchSpec, Plan, Workload, parse_dim, parse_shape, parse_target
from perfkit.transforms import parse_chain, split_chains
from perfkit.transforms.cache import default_cache_dir


def make_spec(model: str | Path, *, targets: tuple[str, ...] = ("ort:cpu",), batch: tuple[int, ...] = (),
              dims: tuple[str, ...] = (), shapes: tuple[str, ...] = (), inputs: str | None = None,
              seed: int = 0, threads: int | None = None, opt_level: str = "all", plan: Plan | None = None,
              allow_fallback: bool = False, results_dir: str | None = "results", variants: tuple[str, ...] = (),
              accuracy_budget: str | None = None, calibration: str | None = None, cache_dir: str | None = None,
              profile: bool = False, trust: bool = False, factory: str | None = None,
              opset: int | None = None, float64: bool = False, store: str | None = None,
              fail_on_fallback: bool = False) -> BenchSpec:
    """The one way the CLI, the Python API and the pytest plugin turn user-facing options into a BenchSpec."""
    chains = tuple(c for text in variants for c in split_chains(text))
    for chain in chains:
        if chain != "auto":
            parse_chain(chain)
    budget = parse_budget(accuracy_budget or DEFAULT_BUDGET).text
    if calibration and not Path(calibration).is_file():
        raise PerfkitError(calibration, "no such file", "give the .npz of calibration inputs (one array per input)")
    if batch and inputs:
        raise PerfkitError(f"--inputs {inputs}", "--batch cannot resize data you supplied",
                           "drop --batch, or give one data file per batch size")
    parsed_dims = tuple(parse_dim(d) for d in dims)
    parsed_shapes = tuple(parse_shape(s) for s in shapes)
    base = Workload(dims=parsed_dims, shapes=parsed_shapes, inputs=inputs, seed=seed)
    workloads = tuple(replace(base, batch=b) for b in batch) or (base,)
    parsed_targets = tuple(parse_target(t, threads=threads, opt_level=opt_level) for t in targets)
    for t in parsed_targets:
        if t.backend != "ort":
            raise PerfkitError(f"--target {t.label}", "perfkit adds a native model's own rows itself (torch:cpu, and "
                               "torch:cuda beside a GPU target); --target names onnxruntime targets",
                               "write ort:cpu, ort:cuda, ort:tensorrt, …")
    if factory and not re.fullmatch(r"[\w.]+:\w+", factory):
        raise PerfkitError(f"--factory {factory}", "not package.module:function",
                           "e.g. --factory mypackage.models:build_resnet")
    return BenchSpec(model=str(model), targets=parsed_targets, workloads=workloads, plan=plan or Plan(),
                     allow_fallback=allow_fallback, results_dir=results_dir, variants=chains, accuracy_budget=budget,
                     calibration=calibration, cache_dir=cache_dir or default_cache_dir(), profile=profile,
                     trust=trust, factory=factory, opset=opset, float64=float64, store=store,
                     fail_on_fallback=fail_on_fallback)
