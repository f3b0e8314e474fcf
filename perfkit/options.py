"""User-facing options -> a checked BenchSpec: every option's form, the variant chains and the budget are
read here, so a mistake is one line before anything runs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from perfkit.analysis.accuracy import parse_budget
from perfkit.core.errors import PerfkitError
from perfkit.core.load import LoadSpec
from perfkit.core.model import NativeHints
from perfkit.core.spec import (
    DEFAULT_BUDGET,
    BenchSpec,
    Plan,
    TuneSpec,
    Workload,
    parse_dim,
    parse_shape,
    parse_target,
)
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
              fail_on_fallback: bool = False, eval: str | None = None, label_column: str | None = None,
              config: str | None = None, hints: NativeHints | None = None,
              upgrade_opset: bool = False) -> BenchSpec:
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
    if config:
        from perfkit.files.tuned import read_config

        tuned = read_config(config)
        if not (batch or dims or shapes or inputs):  # the shapes it was tuned with
            shapes = tuple(f"{name}={'x'.join(map(str, dims_))}" for name, dims_ in tuned.shapes)
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
                     trust=trust, factory=factory, hints=hints or NativeHints(), opset=opset, float64=float64,
                     store=store, fail_on_fallback=fail_on_fallback, eval=eval, label_column=label_column,
                     config=config, upgrade_opset=upgrade_opset)


def parse_duration(text: str, option: str = "--time-budget") -> float:
    """`5m`, `90s`, `90`, `1h` -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(h|m|min|s)?\s*", text)
    if not m or float(m[1]) <= 0:
        raise PerfkitError(f"{option} {text}", "not a duration", "write e.g. 5m, 90s or 1h")
    return float(m[1]) * {"h": 3600, "m": 60, "min": 60}.get(m[2] or "s", 1)


def parse_size(text: str, option: str = "--max-memory") -> int:
    """`2GB`, `512MB`, `1.5G` -> bytes (powers of 1024, as memory is counted)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m or float(m[1]) <= 0:
        raise PerfkitError(f"{option} {text}", "not a size", "write e.g. 2GB or 512MB")
    return int(float(m[1]) * 1024 ** " KMGT".index((m[2] or " ").upper()))


def make_tune_spec(bench: BenchSpec, *, output_dir: str, objective: str = "median", time_budget: str = "5m",
                   max_memory: str | None = None) -> TuneSpec:
    """`perfkit tune`'s options on top of bench's: one target, the objective, the time and memory caps."""
    from perfkit.files.tuned import check_folder
    from perfkit.measure.halving import OBJECTIVES

    if len(bench.targets) != 1:
        raise PerfkitError("--target", f"tune searches one target at a time, {len(bench.targets)} were given",
                           "run perfkit tune once per target")
    if objective not in OBJECTIVES:
        raise PerfkitError(f"--objective {objective}", "unknown objective", f"use one of {', '.join(OBJECTIVES)}")
    if len(bench.workloads) > 1 and objective != "throughput":
        raise PerfkitError("--batch", "several batch sizes only make sense when tuning for throughput",
                           "give one --batch, or --objective throughput to let tune choose among them")
    check_folder(Path(output_dir))  # before the search: a folder tune may not replace is said at once
    return TuneSpec(bench=bench, output_dir=output_dir, objective=objective,
                    time_budget_s=parse_duration(time_budget),
                    max_memory=parse_size(max_memory) if max_memory else None)


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


def make_load_spec(bench: BenchSpec, *, scenario: str = "offline", concurrency: str | None = None,
                   rate: str | None = None, slo: str | None = None, batching: str | None = None,
                   duration: str = "5s", processes: bool = False, sessions: str = "shared",
                   price: str | None = None) -> LoadSpec:
    """`perfkit load`'s options on top of bench's: the scenario and its levels, the SLO, the batcher, the price."""
    from perfkit.core.load import AUTO_BATCHING, parse_batching, parse_price, parse_slo

    if scenario not in ("offline", "server"):
        raise PerfkitError(f"--scenario {scenario}", "unknown scenario", "use offline or server")
    levels = _positive_list(concurrency, "--concurrency", int) if concurrency else ()
    rates = _positive_list(rate, "--rate", float) if rate else ()
    if rates and scenario != "server":
        raise PerfkitError(f"--rate {rate}", "a request rate belongs to the server scenario",
                           "add --scenario server, or give --concurrency for the offline one")
    parsed_slo = parse_slo(slo) if slo else None
    if scenario == "server" and not rates and not parsed_slo:
        raise PerfkitError("--scenario server", "needs request rates or an SLO to search under",
                           "give --rate 50,100,200, or --slo \"p99<=20ms\" to find the highest rate that meets it")
    grid: tuple = ()
    if batching:
        if scenario != "server":
            raise PerfkitError(f"--batching {batching}", "a batcher groups requests that arrive: server scenario only",
                               "add --scenario server")
        grid = AUTO_BATCHING if batching.strip() == "auto" else (parse_batching(batching),)
        if any(w.batch not in (None, 1) for w in bench.workloads):
            raise PerfkitError("--batch", "with --batching each request is one item and the batcher makes batches",
                               "drop --batch")
    if processes and scenario != "offline":
        raise PerfkitError("--processes", "callers as processes belong to the offline scenario (the server "
                           "scenario's workers share one schedule)", "drop --processes, or use --scenario offline")
    if sessions not in ("shared", "per-caller"):
        raise PerfkitError(f"--sessions {sessions}", "unknown", "use shared or per-caller")
    return LoadSpec(bench=bench, scenario=scenario, concurrency=levels or (1,), rates=rates, slo=parsed_slo,
                    batching=grid, duration_s=parse_duration(duration, "--duration"), processes=processes,
                    sessions=sessions, price_per_hour=parse_price(price) if price else None,
                    seed=bench.workloads[0].seed if bench.workloads else 0)


def _positive_list(text: str, option: str, kind: type) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise PerfkitError(f"{option} {text}", "not a list of positive numbers", f"write e.g. {option} 1,2,4,8")
    return values
