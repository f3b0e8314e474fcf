"""Load testing as nouns: what to put on a model (a scenario, concurrencies or rates, an SLO, a batcher, a
price) and what came back (a step per concurrency or rate, a row per model variant and target)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from perfkit.core.errors import PerfkitError
from perfkit.core.records import Environment
from perfkit.core.spec import BenchSpec

UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass(frozen=True)
class Slo:
    """A latency objective: the `percentile` (99.0 for p99) of latency at most `limit_ns`."""

    percentile: float
    limit_ns: int

    @property
    def text(self) -> str:
        return f"p{self.percentile:g}<={_duration(self.limit_ns)}"


@dataclass(frozen=True)
class Batching:
    """A dynamic batcher in front of the session: requests arriving within `delay_ns` of the first waiting one
    run as one batch of at most `max_batch`."""

    max_batch: int
    delay_ns: int

    @property
    def text(self) -> str:
        return f"max={self.max_batch},delay={_duration(self.delay_ns)}"


# --batching auto: the grid the server scenario chooses from (max batch × delay), each searched under the SLO.
AUTO_BATCHING = (Batching(4, 1_000_000), Batching(4, 4_000_000), Batching(16, 1_000_000), Batching(16, 4_000_000))


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """One `perfkit load`: the model and its variants as `bench` takes them, and the load to put on them."""

    bench: BenchSpec
    scenario: str = "offline"  # offline: callers back to back; server: Poisson arrivals at a rate
    concurrency: tuple[int, ...] = (1,)  # offline: callers; server: requests served at once
    rates: tuple[float, ...] = ()  # server: requests per second; empty with an SLO: search for the highest passing
    slo: Slo | None = None
    batching: tuple[Batching, ...] = ()  # server: one batcher, or a grid to choose from (--batching auto)
    duration_s: float = 5.0  # offline: timed seconds per step
    warmup_s: float = 0.5
    processes: bool = False  # offline: callers are processes, not threads
    sessions: str = "shared"  # shared: one session for all callers; per-caller: one each
    price_per_hour: float | None = None  # dollars per hour of the machine: the cost of a million inferences
    seed: int = 0


@dataclass(frozen=True)
class LoadStep:
    """One load level measured: a concurrency (offline) or an offered rate (server)."""

    concurrency: int | None
    rate: float | None  # offered requests per second (server)
    requests: int
    items: int
    duration_ns: int
    requests_per_s: float  # achieved
    items_per_s: float
    p50_ns: int
    p90_ns: int
    p99_ns: int
    p999_ns: int
    mean_ns: float
    max_ns: int
    cpu_util: float  # the process's CPU time over wall time, per core (1.0: every core busy)
    slo_pass: bool | None = None  # None: no SLO asked
    batching: str = ""  # the batcher's settings, "" without one
    mean_batch: float = 1.0  # requests per session call (the batcher's grouping)
    enough: bool = True  # enough requests for the SLO's percentile to be read (see needed_requests)
    errors: int = 0
    threads: int | None = None  # onnxruntime's intra-op threads per session at this step


@dataclass(frozen=True)
class LoadRow:
    """A model file on a target under every load level asked for."""

    label: str  # the variant (base, export:onnx, native:sklearn, …)
    target: str
    threads: int | None  # onnxruntime's intra-op threads per session
    steps: tuple[LoadStep, ...] = ()
    status: str = "ok"  # ok, failed, skipped
    reason: str = ""
    max_rate_meeting_slo: float | None = None  # server with an SLO: requests per second
    lowest_failing_rate: float | None = None  # the search's other end: the answer lies between the two
    knee: int | None = None  # the step at the knee of the latency-throughput curve
    cost_per_million: float | None = None  # dollars, at the highest rate meeting the SLO (or the peak throughput)
    warnings: tuple[str, ...] = ()
    search: tuple[LoadStep, ...] = field(default=())  # the SLO search's probes, in the order they ran


def parse_slo(text: str) -> Slo:
    """`p99<=20ms`, `p99.9<=5ms`, `p50<=800us`."""
    m = re.fullmatch(r"\s*p(\d+(?:\.\d+)?)\s*<=?\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*", text)
    if not m or not 0 < float(m[1]) < 100 or float(m[2]) <= 0:
        raise PerfkitError(f"--slo {text}", "not a latency objective",
                           "write a percentile and a limit with its unit, e.g. --slo \"p99<=20ms\"")
    return Slo(float(m[1]), int(float(m[2]) * UNITS_NS[m[3]]))


def parse_batching(text: str) -> Batching:
    """`max=16,delay=2ms`."""
    pairs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s)", pairs.get("delay", "").strip())
    try:
        size = int(pairs.get("max", ""))
    except ValueError:
        size = 0
    if size < 1 or not m or set(pairs) != {"max", "delay"}:
        raise PerfkitError(f"--batching {text}", "not a batcher", "write max=BATCH,delay=TIME, e.g. max=16,delay=2ms, "
                           "or auto")
    return Batching(size, int(float(m[1]) * UNITS_NS[m[2]]))


def parse_price(text: str) -> float:
    """`0.34/h` (dollars per hour), `$0.34/h`, `8.16/day`."""
    m = re.fullmatch(r"\s*\$?(\d+(?:\.\d+)?)\s*/\s*(h|hour|day|month)\s*", text)
    if not m or float(m[1]) <= 0:
        raise PerfkitError(f"--price {text}", "not a price per unit of time",
                           "write dollars per hour with its unit, e.g. --price 0.34/h")
    return float(m[1]) / {"h": 1, "hour": 1, "day": 24, "month": 730}[m[2]]


def _duration(ns: int) -> str:
    for unit, size in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= size and math.isclose(ns / size, round(ns / size, 3)):
            return f"{ns / size:g}{unit}"
    return f"{ns}ns"


@dataclass(frozen=True)
class LoadReport:
    """One `perfkit load` run: what was asked, the machine, and a row per model variant, target and batcher."""

    run_id: str
    created: str
    spec: LoadSpec
    environment: Environment
    rows: tuple[LoadRow, ...] = ()
    warnings: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    complete: bool = False  # False: interrupted; the rows are the steps that finished


LOAD_SCHEMA = "perfkit-load/1"  # the "schema" of a load run's JSON, which tells it from a bench run's


def load_report_from_json(text: str, source: str) -> LoadReport:
    import json

    from perfkit.core.report import _build

    try:
        data = json.loads(text)
    except ValueError:
        raise PerfkitError(source, "not a perfkit load run (bad JSON)", "give a run id from `perfkit runs`") from None
    if not isinstance(data, dict) or data.get("schema") != LOAD_SCHEMA:
        raise PerfkitError(source, f"not a load run this perfkit reads (schema {data.get('schema')!r})",
                           "upgrade perfkit, or give a run id from `perfkit runs`")
    try:
        report: LoadReport = _build(LoadReport, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise PerfkitError(source, f"load run file does not match {LOAD_SCHEMA} ({exc})",
                           "it may be damaged; run perfkit load again") from None
    return report
