"""User-facing options -> a checked BenchSpec: every option's form, the variant chains and the budget are
read here, so a mistake is one line before anything runs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from perfkit.analysis.accuracy import parse_budget
from perfkit.core.errors import PerfkitError
from perfkit.core.spec import DEFAULT_BUDGET, BenchSpec, Plan, Workload, parse_dim, parse_shape, parse_target
from perfkit.files.data import is_table
from perfkit.transforms import parse_chain, split_chains
from perfkit.transforms.cache import default_cache_dir


def make_spec(model: str | Path, *, targets: tuple[str, ...] = ("ort:cpu",), batch: tuple[int, ...] = (),
              dims: tuple[str, ...] = (), shapes: tuple[str, ...] = (), inputs: str | None = None,
              seed: int = 0, threads: int | None = None, opt_level: str = "all", plan: Plan | None = None,
              allow_fallback: bool = False, results_dir: str | None = "results", variants: tuple[str, ...] = (),
              accuracy_budget: str | None = None, calibration: str | None = None, cache_dir: str | None = None,
              profile: bool = False, trust: bool = False, factory: str | None = None,
              opset: int | None = None, float64: bool = False, store: str | None = None,
              fail_on_fallback: bool = False, eval: str | None = None, label_column: str | None = None) -> BenchSpec:
    """The one way the CLI, the Python API and the pytest plugin turn user-facing options into a BenchSpec."""
    chains = tuple(c for text in variants for c in split_chains(text))
    for chain in chains:
        if chain != "auto":
            parse_chain(chain)
    parsed_budget = parse_budget(accuracy_budget or DEFAULT_BUDGET)
    budget = parsed_budget.text
    check_eval(eval, label_column, parsed_budget.task_terms)
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
                     fail_on_fallback=fail_on_fallback, eval=eval, label_column=label_column)


def check_eval(path: str | None, label_column: str | None, task_terms: tuple[str, ...]) -> None:
    """--eval names a file, --label-column comes with a table, and a budget's task terms come with --eval."""
    if task_terms and not path:
        raise PerfkitError(f"--accuracy-budget {', '.join(task_terms)}", "a task term needs labelled samples",
                           "give --eval data.npz with labels (or drop the term)")
    if label_column and not path:
        raise PerfkitError(f"--label-column {label_column}", "names the labels of --eval data", "give --eval too")
    if not path:
        return
    if not Path(path).is_file():
        raise PerfkitError(path, "no such file", "give a .npz of the inputs and `labels`, or a .csv/.parquet table")
    if is_table(path) and not label_column:
        raise PerfkitError(f"--eval {path}", "a table needs its labels' column named", "give --label-column NAME")
    if label_column and not is_table(path):
        raise PerfkitError(f"--label-column {label_column}", f"only a .csv/.parquet table has columns; {path} is not "
                           "one", "save the labels in the .npz as `labels`, and drop --label-column")
