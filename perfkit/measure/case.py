"""One case in this process: open the session, check what runs, first call, warm up, time, check outputs; and
the outputs of a model on the check feeds, the reference every variant is compared with.

A module of its own, apart from the flows, because the spawned worker imports it and the worker's start-up
cost is part of every isolated case.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perfkit.analysis.accuracy import nonfinite
from perfkit.backends import Clock, get_backend
from perfkit.core.model import NativeModel
from perfkit.core.records import OpTime, Outputs
from perfkit.core.report import Block, Measurement
from perfkit.core.spec import Plan, Target
from perfkit.measure.nvml import process_device_bytes
from perfkit.measure.profile import profile_ort
from perfkit.measure.timing import harness_cost, timed_calls, timed_rounds, warm_up


@dataclass(frozen=True)
class Case:
    model_path: str
    target: Target
    feeds: tuple[dict[str, Any], ...]
    plan: Plan
    checks: tuple[dict[str, Any], ...] = ()  # accuracy feeds: their outputs come back for comparison
    profile: bool = False
    native: NativeModel | None = None  # a native model, opened by its framework's backend instead of the path


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a case's worker hands back: what ran, the raw measurement, and the outputs to compare."""

    providers: tuple[str, ...]
    settings: dict[str, str]
    measurement: Measurement
    nonfinite: tuple[str, ...]  # outputs holding NaN or Inf, described
    checked: Outputs | None = None  # outputs on the check feeds, when there were any
    profile: tuple[OpTime, ...] = ()


class OpenCase:
    """A case's session held open: opened, checked and warmed up once, then timed in blocks for as long as the
    caller asks (the interleaving scheduler's rounds, or one long stretch), then finished: memory, outputs on
    the check feeds, the profile. Nothing here decides how long to time."""

    def __init__(self, case: Case, clock: Clock | None = None) -> None:
        self.case = case
        self._base_rss = reset_peak_rss()
        self._device_id = int(dict(case.target.provider_options).get("device_id", 0) or 0)
        self._device_base = process_device_bytes(self._device_id) if case.target.gpu else None
        backend = get_backend(case.target.backend)
        self.clock = clock or backend.clock
        t0 = self.clock()
        self._session = backend.open(case.native or case.model_path, case.target)
        try:
            self.load_ns = self.clock() - t0
            self._prepared = [self._session.prepare(f) for f in case.feeds]
            t0 = self.clock()
            outputs = self._session.run(self._prepared[0])
            self.first_ns = self.clock() - t0
            self._nonfinite = nonfinite(outputs, self._session.output_names)
            self.call = _cycling(self._session, self._prepared)
            settled, settle_ns = settle_jit(self.call, getattr(self._session, "jit_warmup_calls", 0), case.plan,
                                            self.clock)
            calls, warm_ns, self.estimate_ns = warm_up(self.call, case.plan, self.clock)
            self.warmup_calls, self.warmup_ns = settled + calls, settle_ns + warm_ns
        except BaseException:
            self._session.close()
            raise

    def block(self, calls: int, rewarm: int = 0) -> list[int]:
        """`rewarm` untimed calls (caches refill after another case ran), then `calls` timed ones, GC off."""
        for _ in range(rewarm):
            self.call()
        return timed_calls(self.call, calls, self.clock)

    def finish(self, samples: tuple[int, ...], blocks: tuple[Block, ...] = ()) -> Outcome:
        """The outcome of the calls timed so far; closes the session."""
        case, session = self.case, self._session
        try:
            peak = peak_rss()
            device_peak = process_device_bytes(self._device_id) if case.target.gpu else None
            # After the timing, so neither the extra outputs nor the profiler touch the figures.
            checked = outputs_on(session, case.checks) if case.checks else None
            harness, resolution = harness_cost(self.clock)
        finally:
            session.close()
        bad = self._nonfinite
        if checked:
            bad = bad or tuple(b for out in checked.per_feed for b in nonfinite(out, checked.names))[:4]
        # A GPU row is always profiled once after its timing: where its nodes ran is part of its figure.
        wanted = (case.profile or case.target.gpu) and not case.native
        profiled = profile_ort(case.model_path, case.target, case.feeds[0]) if wanted else ()
        measurement = Measurement(
            samples_ns=samples, warmup_calls=self.warmup_calls, warmup_ns=self.warmup_ns, load_ns=self.load_ns,
            first_call_ns=self.first_ns, harness_ns=harness, resolution_ns=resolution,
            base_rss_bytes=self._base_rss, peak_rss_bytes=peak, device_base_bytes=self._device_base,
            device_peak_bytes=device_peak, blocks=blocks)
        return Outcome(providers=session.providers, settings=session.settings, measurement=measurement,
                       nonfinite=bad, checked=checked, profile=profiled)


SETTLED = 0.9  # a call 10 % faster than the best before it: the JIT is still at work, not noise settling


def settle_jit(call: Callable[[], object], jit_calls: int, plan: Plan, clock: Clock) -> tuple[int, int]:
    """Untimed calls until a JIT (TorchScript's profiling executor) runs its optimised graph: at least
    `jit_calls`, then until a call is no longer clearly faster than the best before it, within the warm-up's
    cap. Nothing for a session that does not JIT (`jit_calls` 0): onnxruntime rows warm up as they always have.
    Returns (calls, ns)."""
    if jit_calls <= 0:
        return 0, 0
    start, calls = clock(), 0
    best: int | None = None
    while True:
        t0 = clock()
        call()
        t1 = clock()
        calls += 1
        improved = best is None or t1 - t0 < best * SETTLED
        best = t1 - t0 if best is None else min(best, t1 - t0)
        if (calls >= jit_calls and not improved) or t1 - start >= plan.warmup_max_s * 1e9:
            return calls, t1 - start


def run_case(case: Case, clock: Clock | None = None) -> Outcome:
    """The case timed on its own, in one stretch (`--no-interleave`, and single measurements), with `clock`
    (default: the backend's own)."""
    opened = OpenCase(case, clock)
    samples = timed_rounds(opened.call, case.plan, opened.estimate_ns, opened.clock)
    return opened.finish(tuple(samples))


def _cycling(session: Any, prepared: list[Any]) -> Callable[[], object]:
    """The timed call: the one bound feed, or the bound feeds in turn."""
    if len(prepared) == 1:
        call: Callable[[], object] = session.bind(prepared[0])
        return call
    bound = itertools.cycle([session.bind(p) for p in prepared])

    def next_feed() -> object:
        return next(bound)()

    return next_feed


def reference_outputs(job: tuple[str | NativeModel, tuple[dict[str, Any], ...]]) -> Outputs:
    """A model's outputs on the check feeds, as the reference: a native model in its own framework on the CPU;
    an ONNX file as written — CPU provider, graph optimization off."""
    source, feeds = job
    if isinstance(source, NativeModel):
        backend, target = get_backend(source.framework), Target(source.framework, "cpu")
    else:
        backend, target = get_backend("ort"), Target(opt_level="disable")
    with backend.open(source, target) as session:
        return outputs_on(session, feeds)


def session_outputs(job: tuple[str, Target, tuple[dict[str, Any], ...]]) -> Outputs:
    """A model file's outputs on the check feeds in the session its rows will run: an int8 file's own kernels,
    not the float reference's. Judging a candidate before it is timed."""
    path, target, feeds = job
    with get_backend(target.backend).open(path, target) as session:
        return outputs_on(session, feeds)


def outputs_on(session: Any, feeds: tuple[dict[str, Any], ...]) -> Outputs:
    """An open session's outputs on each feed, in the form that crosses to the parent and compares."""
    return Outputs(tuple(session.output_names),
                   tuple([_plain(v) for v in session.run(session.prepare(f))] for f in feeds))


def _plain(value: Any) -> Any:
    """Outputs as they can cross to the parent: an OrtValue (bfloat16, float8) as numpy where it can be."""
    if hasattr(value, "numpy") and not hasattr(value, "dtype"):
        try:
            return value.numpy()
        except Exception:  # an element type numpy lacks: not comparable, said so by accuracy.compare_outputs
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
