"""Result and Report: what one run found, as dataclasses inside and versioned JSON at the edge.

A Report as a pandas DataFrame is `perfkit.to_frame(report)` (the renderers own the flat columns)."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from perfkit.core.errors import PerfkitError
from perfkit.core.model import Model, Signature
from perfkit.core.records import Environment, OpTime, OutputAccuracy, Summary, TaskAccuracy
from perfkit.core.search import Search
from perfkit.core.spec import BenchSpec, Target

SCHEMA_VERSION = 3
STATUSES = ("ok", "skipped", "failed", "invalid")  # invalid: it ran, but its outputs cannot be trusted


@dataclass(frozen=True)
class Block:
    """One interleaved block of a row: the round it ran in, its timed calls, their median. Two rows' blocks of
    the same round ran minutes apart at most seconds, so their ratio is free of the machine's slow drift."""

    round: int
    calls: int
    median_ns: float


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """Raw figures of one case, in ns and bytes; warm-up is counted but never in `samples_ns`."""

    samples_ns: tuple[int, ...]
    warmup_calls: int
    warmup_ns: int
    load_ns: int
    first_call_ns: int
    harness_ns: float
    resolution_ns: float
    base_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    device_base_bytes: int | None = None  # GPU memory of the process before the session (NVML), GPU rows only
    device_peak_bytes: int | None = None  # and after the timed calls: allocators keep their peak
    blocks: tuple[Block, ...] = ()  # interleaved rounds, in order; empty when the row was timed on its own


@dataclass(frozen=True, kw_only=True)
class Result:
    """One row: a model variant on a target with a workload."""

    model: Model
    target: Target
    batch: int
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    status: str
    reason: str = ""
    providers: tuple[str, ...] = ()  # what onnxruntime actually ran, never what was asked
    fallback: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    measurement: Measurement | None = None
    summary: Summary | None = None
    throughput: float | None = None  # items per second at the median
    warnings: tuple[str, ...] = ()
    accuracy: tuple[OutputAccuracy, ...] = ()  # against the reference on the check feeds
    size_bytes: int | None = None  # the model file and its external data on disk
    ops: dict[str, int] = field(default_factory=dict)  # op type -> node count in the file
    notes: tuple[str, ...] = ()  # what the transforms that made this variant said
    profile: tuple[OpTime, ...] = ()  # --profile: time per call by op type
    task: TaskAccuracy | None = None  # --eval: task metrics on the labels, beside the reference's


@dataclass(frozen=True)
class Report:
    run_id: str
    created: str
    spec: BenchSpec
    environment: Environment
    results: tuple[Result, ...] = ()
    warnings: tuple[str, ...] = ()
    complete: bool = False  # False while running, and for ever if the run was interrupted
    command: tuple[str, ...] = ()
    accuracy_on: str = ""  # what every row's accuracy was judged on: the user's data, or synthetic feeds
    search: Search | None = None  # a `perfkit tune` run: what it tried; its rows are the final A/B
    signature: Signature | None = None  # the model's inputs and outputs as its file declares them
    schema_version: int = SCHEMA_VERSION

    @property
    def failed(self) -> bool:
        return any(r.status in ("failed", "invalid") for r in self.results)


def new_run_id(now: float | None = None) -> str:
    """`20261202-160144.123-97d3`: sorts in the order runs began, to the millisecond, and stays unique."""
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}-" + \
        secrets.token_hex(2)


def now_stamp(now: float | None = None) -> str:
    """When a run began, as its report records it: `2026-12-03T12:00:00+0000`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))


def to_json(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), indent=1, allow_nan=False)


def from_json(text: str, source: str) -> Report:
    try:
        data = json.loads(text)
        version = data.get("schema_version")
    except (ValueError, AttributeError):
        raise PerfkitError(source, "not a perfkit run file (bad JSON)", "give a run id from `perfkit runs`") from None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise PerfkitError(source, f"schema version {version!r} is not one this perfkit reads (≤ {SCHEMA_VERSION})",
                           "upgrade perfkit")
    for old in range(version, SCHEMA_VERSION):
        data = UPGRADES[old](data)
    try:
        return _build(Report, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise PerfkitError(source, f"run file does not match schema {SCHEMA_VERSION} ({exc})",
                           "it may be damaged; rerun the benchmark") from None


# schema N -> N+1, applied in order on load, so old runs stay readable after the format moves on.
UPGRADES: dict[int, typing.Callable[[dict], dict]] = {
    # 2 added accuracy, size, ops, notes and profile to results; each has a default.
    1: lambda data: {**data, "schema_version": 2},
    # 3 added interleaved blocks to measurements (default: none) and dropped the re-timing contests, which
    # the interleaved rounds replace.
    2: lambda data: {**{k: v for k, v in data.items() if k != "contests"}, "schema_version": 3},
}


def _build(tp: Any, data: Any) -> Any:
    """Rebuild a value of type `tp` from its JSON form (dataclasses, tuples, dicts, optionals)."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        return tp(**{k: _build(hints[k], v) for k, v in data.items() if k in known})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        return _build(next(a for a in args if a is not type(None)), data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in data)
        return tuple(_build(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        return dict(data)
    if tp is float and isinstance(data, int):
        return float(data)
    return data
