"""One case in this process: open the session, check what runs, first call, warm up, time, check outputs.

DESIGN.md puts this inside bench.py; it is a module of its own because the spawned worker imports it
without the orchestration, and the worker's start-up cost is part of every isolated case.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from perfkit.accuracy import nonfinite
from perfkit.backends import get_backend
from perfkit.measure import Clock, Timing, measure
from perfkit.native import NativeModel
from perfkit.nvml import process_device_bytes
from perfkit.profile import OpTime, profile_ort
from perfkit.spec import Plan, Target


@dataclass(frozen=True)
class Case:
    model_path: str
    target: Target
    feeds: tuple[dict[str, Any], ...]
    plan: Plan
    checks: tuple[dict[str, Any], ...] = ()  # accuracy feeds: their outputs come back for comparison
    profile: bool = False
    native: NativeModel | None = None  # a native model, opened by its framework's backend instead of the path


@dataclass(frozen=True)
class Outcome:
    providers: tuple[str, ...]
    settings: dict[str, str]
    timing: Timing
    load_ns: int  # session creation
    first_call_ns: int  # the first run after creation, never in the statistics
    base_rss_bytes: int | None  # process memory before the session was created
    peak_rss_bytes: int | None  # peak process memory while loading and running
    nonfinite: tuple[str, ...]
    check_outputs: tuple[list[Any], ...] = ()
    output_names: tuple[str, ...] = ()
    profile: tuple[OpTime, ...] = ()
    device_base_bytes: int | None = None
    device_peak_bytes: int | None = None


def run_case(case: Case, clock: Clock = time.perf_counter_ns) -> Outcome:
    base_rss = reset_peak_rss()
    device_id = int(dict(case.target.provider_options).get("device_id", 0) or 0)
    device_base = process_device_bytes(device_id) if case.target.gpu else None
    backend = get_backend(case.target.backend)
    t0 = clock()
    session = backend.open(case.native or case.model_path, case.target)
    load_ns = clock() - t0
    try:
        prepared = [session.prepare(f) for f in case.feeds]
        t0 = clock()
        outputs = session.run(prepared[0])
        first_ns = clock() - t0
        bad = nonfinite(outputs, session.output_names)
        if len(prepared) == 1:
            call = session.bind(prepared[0])
        else:
            bound = itertools.cycle([session.bind(p) for p in prepared])

            def call() -> object:
                return next(bound)()

        timing = measure(call, case.plan, clock)
        peak = peak_rss()
        device_peak = process_device_bytes(device_id) if case.target.gpu else None
        # After the timing, so neither the extra outputs nor the profiler touch the figures.
        checked = tuple([_plain(v) for v in session.run(session.prepare(f))] for f in case.checks)
        bad = bad or tuple(b for out in checked for b in nonfinite(out, session.output_names))[:4]
    finally:
        session.close()
    # A GPU row is always profiled once after its timing: where its nodes ran is part of its figure.
    wanted = (case.profile or case.target.gpu) and not case.native
    profiled = profile_ort(case.model_path, case.target, case.feeds[0]) if wanted else ()
    return Outcome(session.providers, session.settings, timing, load_ns, first_ns, base_rss, peak, bad, checked,
                   session.output_names, profiled, device_base, device_peak)


def run_checks(args: tuple[str, tuple[dict[str, Any], ...]]) -> tuple[tuple[str, ...], tuple[list[Any], ...]]:
    """(output names, outputs per feed) of a model as written: CPU provider, graph optimization off."""
    path, feeds = args
    session = get_backend("ort").open(path, Target(opt_level="disable"))
    try:
        return session.output_names, tuple([_plain(v) for v in session.run(session.prepare(f))] for f in feeds)
    finally:
        session.close()


def _plain(value: Any) -> Any:
    """Outputs as they can cross to the parent: an OrtValue (bfloat16, float8) as numpy where it can be."""
    if hasattr(value, "numpy") and not hasattr(value, "dtype"):
        try:
            return value.numpy()
        except Exception:  # an element type numpy lacks: not comparable, said so by accuracy.compare
            return repr(value)
    return value


def reset_peak_rss() -> int | None:
    """Current resident memory in bytes, after resetting the kernel's high-water mark where Linux allows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmRSS") * 1024
    except OSError:
        return None


def peak_rss() -> int | None:
    """Peak resident memory of this process in bytes (since the last reset, on Linux)."""
    try:
        return _status_kb("VmHWM") * 1024
    except OSError:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")
