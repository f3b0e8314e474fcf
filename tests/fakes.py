"""A deterministic backend for testing the flow, the verdict and the renderers without onnxruntime.

Every session runs on one simulated machine (`MACHINE`), whose time moves only when a session loads or runs and
whose `drift` can slow it down over time (slow waves, steps, bursts) as a busy real machine does.

A model file says how its fake session behaves, in its ONNX metadata: `fake.latency_ns` (each call's cost, with
a fixed ±2 % pattern so the statistics have something to summarise), `fake.load_ns`, and `fake.offset` (added to
every output, so a variant can miss an accuracy budget). The machine's clock is simulated, so every figure is the
same on every real machine, busy or not. Outputs are the first
input plus the offset, as float32, one per graph output.

Use it with the `fake_backend` fixture (conftest.py), which also makes `import onnxruntime` fail, so a test
that passes proves the code it covers does not need onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from perfkit.backends import Closing
from perfkit.core.spec import Target

JITTER = (0.0, 0.01, -0.01, 0.02, -0.02, 0.005, -0.005)  # per-call deviations, cycled: CV about 1.3 %
PROVIDER = "FakeExecutionProvider"


class FakeMachine:
    """Simulated nanoseconds shared by every fake session, read like time.perf_counter_ns and moved on only by
    them. `drift(now)` scales every call at that moment: a drifting, bursty machine, the same on every run."""

    def __init__(self) -> None:
        self.now = 0
        self.drift: Callable[[int], float] = lambda _: 1.0
        # A session on 1 thread pays this much more per call and ignores the drift, as a session that does not
        # spin keeps its pace while other programs take cores (0: off, the default).
        self.single_thread_cost = 0.0

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: float) -> None:
        self.now += int(ns)

    def run(self, ns: float) -> None:
        self.advance(ns * self.drift(self.now))

    def reset(self, drift: Callable[[int], float] = lambda _: 1.0) -> None:
        self.now, self.drift, self.single_thread_cost = 0, drift, 0.0


MACHINE = FakeMachine()


class FakeBackend:
    def __init__(self) -> None:
        self.clock = MACHINE

    def unavailable(self, target: Target) -> str | None:
        return None if target.device == "cpu" else f"the fake backend has no {target.device} device"

    def open(self, model: Any, target: Target) -> FakeSession:
        proto = onnx.load(str(model), load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        if "fake.refuses" in meta:
            raise RuntimeError(meta["fake.refuses"])
        self.clock.advance(float(meta.get("fake.load_ns", 0)))
        steady = bool(self.clock.single_thread_cost) and target.threads == 1
        latency = float(meta.get("fake.latency_ns", 1_000_000)) * (1 + self.clock.single_thread_cost * steady)
        return FakeSession(self.clock, latency, float(meta.get("fake.offset", 0.0)),
                           tuple(o.name for o in proto.graph.output), steady)


class FakeSession(Closing):
    def __init__(self, clock: FakeMachine, latency_ns: float, offset: float, output_names: tuple[str, ...],
                 steady: bool = False) -> None:
        self._clock, self._latency, self._offset, self._steady = clock, latency_ns, offset, steady
        self._calls = 0
        self.output_names = output_names
        self.providers = (PROVIDER,)
        self.settings = {"requested": PROVIDER, "backend": "fake"}

    def prepare(self, feed: dict[str, Any]) -> np.ndarray:
        return np.asarray(next(iter(feed.values())), dtype=np.float32)

    def run(self, prepared: np.ndarray) -> list[Any]:
        cost = self._latency * (1 + JITTER[self._calls % len(JITTER)])
        self._clock.advance(cost) if self._steady else self._clock.run(cost)
        self._calls += 1
        return [prepared + np.float32(self._offset) for _ in self.output_names]

    def bind(self, prepared: np.ndarray) -> Callable[[], Any]:
        def call() -> Any:
            return self.run(prepared)

        return call

    def close(self) -> None:
        self._calls = -1


def write_model(path: Path, latency_ns: float, *, offset: float = 0.0, load_ns: float = 0.0,
                features: int = 4, refuses: str = "") -> str:
    """A one-node ONNX file (Relu, `batch` × `features`) carrying the fake session's behaviour; `refuses`: the
    fake backend will not open it, and says this."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fake",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", features])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    _set_behaviour(model, latency_ns, offset, load_ns)
    if refuses:
        model.metadata_props.add(key="fake.refuses", value=refuses)
    onnx.save_model(model, path)
    return str(path)


def _set_behaviour(model: onnx.ModelProto, latency_ns: float, offset: float, load_ns: float) -> None:
    del model.metadata_props[:]
    for key, value in (("fake.latency_ns", latency_ns), ("fake.offset", offset), ("fake.load_ns", load_ns)):
        model.metadata_props.add(key=key, value=repr(value))


def _rewrite(src: Path, dst: Path, *, speed: float = 1.0, offset: float = 0.0) -> list[str]:
    model = onnx.load(str(src))
    meta = {p.key: float(p.value) for p in model.metadata_props}
    _set_behaviour(model, meta["fake.latency_ns"] / speed, meta["fake.offset"] + offset, meta["fake.load_ns"])
    onnx.save_model(model, dst)
    return []


# Transforms for PERFKIT_TRANSFORMS: each writes the fake model another variant would be.
def twice_as_fast(src: Path, dst: Path, options: dict, ctx: Any) -> list[str]:
    return _rewrite(src, dst, speed=2.0) + ["fake: half the latency"]


def faster_but_wrong(src: Path, dst: Path, options: dict, ctx: Any) -> list[str]:
    return _rewrite(src, dst, speed=4.0, offset=0.5) + ["fake: a quarter of the latency, outputs off by 0.5"]


def ten_percent_slower(src: Path, dst: Path, options: dict, ctx: Any) -> list[str]:
    return _rewrite(src, dst, speed=1 / 1.1) + ["fake: 10 % slower"]


def one_percent_faster(src: Path, dst: Path, options: dict, ctx: Any) -> list[str]:
    return _rewrite(src, dst, speed=1.01) + ["fake: 1 % faster, inside any practical threshold"]


def same_speed(src: Path, dst: Path, options: dict, ctx: Any) -> list[str]:
    return _rewrite(src, dst) + ["fake: the same file under another name"]


def broken(src: Path, dst: Path, options: dict, ctx: Any) -> list[str]:
    raise RuntimeError("this transform always breaks")


TRANSFORMS = ("fast=tests.fakes:twice_as_fast;wrong=tests.fakes:faster_but_wrong;same=tests.fakes:same_speed;"
              "slow10=tests.fakes:ten_percent_slower;broken=tests.fakes:broken;nudge=tests.fakes:one_percent_faster")


# ---- the golden report: a fixed run the renderers' golden files are made from ------------------------------

GOLDEN_VARIANTS = ("fast", "wrong", "broken")
GOLDEN_TARGETS = ("ort:cpu", "ort:cuda")
GOLDEN_BUDGET = "cos>=0.99,max_abs<=1e-3"


def golden_run(folder: Path) -> Any:
    """The run tests/golden/report.json holds, made again: the fake model and its variants on a CPU target and
    a GPU target the fake backend lacks, with the figures that depend on the machine fixed (`fixed`)."""
    from dataclasses import replace

    from perfkit import bench
    from perfkit.core.spec import Plan
    from perfkit.options import make_spec

    model = write_model(folder / "model.onnx", latency_ns=2_000_000, load_ns=40_000_000)
    plan = Plan(warmup_calls=2, warmup_time_s=0.0, warmup_max_s=1.0, min_rounds=30, min_time_s=0.0,
                max_time_s=1.0, max_rounds=60, timeout_s=60.0, isolate=False)
    spec = make_spec(model, targets=GOLDEN_TARGETS, batch=(8,), plan=plan, results_dir=None,
                     variants=GOLDEN_VARIANTS, accuracy_budget=GOLDEN_BUDGET, cache_dir=str(folder / "cache"))
    report = bench.run(spec)
    return fixed(replace(report, spec=replace(report.spec, model="model.onnx", cache_dir=".perfkit-cache")),
                 str(folder))


def fixed(report: Any, folder: str) -> Any:
    """What a run on the fake backend still takes from the machine, set to fixed values: the run's id and
    time, the environment and its warnings, memory, and the folder the files were written in."""
    from dataclasses import replace

    from perfkit.core.records import Environment

    env = Environment(cpu_model="Fake CPU", cpu_flags=("avx2", "fma"), logical_cores=2, physical_cores=2,
                      os="Linux", python="3.11.7", packages={"perfkit": "0.1.0", "onnx": "1.0"},
                      providers=(PROVIDER,), git_commit=None, load_average=0.0)

    def steady(result: Any) -> Any:
        path = result.model.path.replace(folder, "").lstrip("/")
        if "/variants/" in path:  # the cache key holds onnxruntime's version: name the entry by its lineage
            path = f".perfkit-cache/variants/{result.model.label}/model.onnx"
        model = replace(result.model, path=path)
        m = result.measurement
        if m is not None:
            m = replace(m, base_rss_bytes=50 << 20, peak_rss_bytes=60 << 20)
        return replace(result, model=model, measurement=m)

    return replace(report, run_id="20261203-120000.000-0000", created="2026-12-03T12:00:00+0000", environment=env,
                   warnings=tuple(w for w in report.warnings if not w.startswith("machine busy")),
                   results=tuple(steady(r) for r in report.results))
