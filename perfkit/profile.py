"""onnxruntime's own profiler, summarised by op type: where one call's time goes, and how two rows differ."""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from perfkit.spec import Target

PROFILE_CALLS = 20  # profiled calls after a short warm-up: enough to average out one slow call
PROFILE_WARMUP = 5


@dataclass(frozen=True)
class OpTime:
    """One op type in a profile: mean time per call summed over its nodes, and where they ran."""

    op: str
    ns_per_call: float
    nodes: int
    provider: str  # the provider that ran these nodes ("CPU", "CUDA"); mixed ones are listed per provider


def profile_ort(model_path: str, target: Target, feed: dict[str, Any], calls: int = PROFILE_CALLS
                ) -> tuple[OpTime, ...]:
    """Run the model with onnxruntime's profiler on and sum kernel time by op type and provider."""
    from perfkit.backends.ort import OrtBackend

    if target.backend != "ort":
        return ()
    with tempfile.TemporaryDirectory() as folder:
        session = OrtBackend().open(model_path, target, profile_prefix=os.path.join(folder, "profile"))
        prepared = session.prepare(feed)
        for _ in range(PROFILE_WARMUP + calls):
            session.run(prepared)
        path = session.end_profiling()
        with open(path) as f:
            events = json.load(f)
        session.close()
    return summarize_profile(events, PROFILE_WARMUP)


def summarize_profile(events: list[dict], skip_runs: int) -> tuple[OpTime, ...]:
    """Kernel events of every model run after the first `skip_runs`, grouped by op type and provider,
    as mean ns per run."""
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(runs) <= skip_runs:
        return ()
    start_us, calls = runs[skip_runs], len(runs) - skip_runs
    total: dict[tuple[str, str], float] = defaultdict(float)
    nodes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if e.get("ts", 0) < start_us:
            continue
        args = e.get("args", {})
        key = (args.get("op_name", "?"), str(args.get("provider", "")).removesuffix("ExecutionProvider"))
        total[key] += float(e.get("dur", 0)) * 1000
        nodes[key].add(e["name"])
    ops = [OpTime(op, ns / calls, len(nodes[(op, prov)]), prov) for (op, prov), ns in total.items()]
    return tuple(sorted(ops, key=lambda o: -o.ns_per_call))


def profile_diff(base: tuple[OpTime, ...], other: tuple[OpTime, ...], top: int = 4) -> list[tuple[str, float]]:
    """(op, change in ns per call) for the op types whose time changed most between two profiles."""
    before: dict[str, float] = defaultdict(float)
    after: dict[str, float] = defaultdict(float)
    for o in base:
        before[o.op] += o.ns_per_call
    for o in other:
        after[o.op] += o.ns_per_call
    changes = [(op, after[op] - before[op]) for op in before.keys() | after.keys()]
    return sorted(changes, key=lambda c: -abs(c[1]))[:top]
