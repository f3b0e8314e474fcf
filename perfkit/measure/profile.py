"""onnxruntime's own profiler, summarised by op type: where one call's time goes, per provider."""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from typing import Any

from perfkit.core.records import OpTime
from perfkit.core.spec import Target

PROFILE_CALLS = 20  # profiled calls after a short warm-up: enough to average out one slow call
PROFILE_WARMUP = 5


def profile_ort(model_path: str, target: Target, feed: dict[str, Any], calls: int = PROFILE_CALLS
                ) -> tuple[OpTime, ...]:
    """Run the model with onnxruntime's profiler on and sum kernel time by op type and provider."""
    from perfkit.backends.ort import OrtBackend

    if target.backend != "ort":
        return ()
    with tempfile.TemporaryDirectory() as folder, \
            OrtBackend().open(model_path, target, profile_prefix=os.path.join(folder, "profile")) as session:
        prepared = session.prepare(feed)
        for _ in range(PROFILE_WARMUP + calls):
            session.run(prepared)
        with open(session.end_profiling()) as f:
            events = json.load(f)
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
