"""One model variant opened in this process for a test suite: the callable pytest-benchmark times, and what
it lacks — the providers that ran, the variant's lineage, accuracy against the reference — plus perfkit's
own interleaved measurement of two cases for speed-up gates, paired round by round.

The variant is built (and cached) and the reference computed in spawned workers, as in `perfkit bench`;
the timed session lives in the test's process, because pytest-benchmark calls it there.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfkit.analysis.accuracy import against
from perfkit.analysis.stats import paired_ratio, summarize
from perfkit.backends import get_backend
from perfkit.core.errors import CaseFailed, PerfkitError
from perfkit.core.model import NativeModel
from perfkit.core.records import OutputAccuracy, Outputs, Ratio, Summary
from perfkit.core.report import Block
from perfkit.core.spec import Plan, Target
from perfkit.measure.case import outputs_on
from perfkit.measure.env import fingerprint
from perfkit.measure.timing import measure, timed_calls, warm_up
from perfkit.measure.workload import FeedSet
from perfkit.options import make_spec
from perfkit.prepare import build_variants, prepare, references
from perfkit.rows import native_target, session_target, tuned_variant
from perfkit.transforms import split_chains
from perfkit.transforms.cache import Broken, Variant

# Both sides of a speed-up gate are timed in this many interleaved rounds, so drift lands on both alike and
# the per-round ratios give the interval.
SPEEDUP_ROUNDS = 20
SPEEDUP_PLAN = Plan(warmup_calls=5, warmup_time_s=0.2, min_rounds=30, min_time_s=1.0, max_time_s=3.0,
                    isolate=False)


@dataclass(kw_only=True)
class SuiteCase:
    """An open variant on a target: `call()` is one timed inference."""

    label: str  # the variant's lineage joined, e.g. "int8-dynamic" or "native:torch"
    lineage: tuple[str, ...]
    target: Target
    batch: int
    providers: tuple[str, ...]  # what actually ran
    accuracy: tuple[OutputAccuracy, ...]  # against the reference (native model, else the base ONNX model)
    call: Callable[[], Any]
    settings: dict[str, str] = field(default_factory=dict)
    _session: Any = None

    @property
    def cosine(self) -> float | None:
        values = [a.cosine for a in self.accuracy if a.comparable and a.cosine is not None]
        return min(values) if values else None

    @property
    def max_abs(self) -> float | None:
        values = [a.max_abs for a in self.accuracy if a.comparable and a.max_abs is not None]
        return max(values) if values else None

    @property
    def agree(self) -> float | None:
        values = [a.agree for a in self.accuracy if a.comparable and a.agree is not None]
        return min(values) if values else None

    def measure(self, plan: Plan = SPEEDUP_PLAN) -> Summary:
        return summarize(measure(self.call, plan).samples_ns)

    def info(self) -> dict[str, Any]:
        """What a pytest-benchmark record lacks, JSON-ready."""
        return {"variant": self.label, "lineage": list(self.lineage), "target": self.target.label,
                "batch": self.batch, "providers": list(self.providers), "settings": dict(self.settings),
                "cosine": self.cosine, "max_abs": self.max_abs, "agree": self.agree,
                "accuracy": {a.name: {"cosine": a.cosine, "max_abs": a.max_abs, "agree": a.agree}
                             for a in self.accuracy if a.comparable}}

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def open_case(model: str, *, variant: str | None = None, target: str = "ort:cpu", batch: int | None = None,
              dims: tuple[str, ...] = (), shapes: tuple[str, ...] = (), inputs: str | None = None,
              trust: bool = False, factory: str | None = None, calibration: str | None = None,
              cache_dir: str | None = None, timeout_s: float = 600, config: str | None = None) -> SuiteCase:
    """`variant`: None for the model as given (its ONNX conversion for a native model), "native" for a native
    model in its own framework, or one chain such as "ort-opt:all+int8-static:qdq,u8s8". `config`: a
    perfkit-tuned.json, whose model file opens on its session, judged against `model`."""
    chain = () if variant in (None, "native", "base") else (variant,)
    if variant == "auto" or any(len(split_chains(c)) != 1 for c in chain):
        raise PerfkitError(f"variant={variant}", "a case is one variant", "name one chain, e.g. int8-dynamic")
    spec = make_spec(model, targets=(target,), batch=(batch,) if batch else (), dims=dims, shapes=shapes,
                     inputs=inputs, results_dir=None, variants=chain, calibration=calibration, cache_dir=cache_dir,
                     trust=trust, factory=factory, plan=Plan(timeout_s=timeout_s), config=config)
    # The native model is the reference itself: nothing to compare it with.
    prepared = prepare(spec, compare=variant != "native")
    native, fed = prepared.native, prepared.feeds[0]
    if variant == "native":
        if native is None:
            raise PerfkitError(model, "variant='native' needs a native model", "give the .pkl/.pt/.keras file")
        return _open(native.label, (native.label,), native_target(native, prepared.spec), fed, None, native)
    ref = references(prepared)[0].outputs  # None: the case has no accuracy, as in bench
    built: Variant | Broken = Variant(prepared.model)
    if prepared.chains:
        (built,) = build_variants(prepared, ref, fingerprint().cpu_flags, lambda _: None)
    if isinstance(built, Broken):
        raise CaseFailed(f"variant {variant} could not be built ({built.status}): {built.reason}")
    target_used = session_target(built, prepared.spec.targets[0])
    if prepared.tuned:
        built, target_used = tuned_variant(prepared), prepared.tuned.target
    return _open(built.model.label, built.model.lineage, target_used, fed, ref, built.model.path)


def _open(label: str, lineage: tuple[str, ...], target: Target, fed: FeedSet, ref: Outputs | None,
          source: str | NativeModel) -> SuiteCase:
    # Stays open after this returns: pytest-benchmark times its calls, and SuiteCase.close() ends it.
    session = get_backend(target.backend).open(source, target)
    try:
        prepared = session.prepare(fed.feeds[0])
        session.run(prepared)  # the first call allocates; pytest-benchmark's warm-up does the rest
        checked = outputs_on(session, fed.checks) if ref else None
    except Exception:
        session.close()
        raise
    accuracy = against(ref, checked) if ref and checked and checked.per_feed else ()
    return SuiteCase(label=label, lineage=tuple(lineage), target=target, batch=fed.shapes.batch,
                     providers=tuple(session.providers), accuracy=accuracy, call=session.bind(prepared),
                     settings=dict(session.settings), _session=session)


def speedup(base: SuiteCase, other: SuiteCase, rounds: int = SPEEDUP_ROUNDS, plan: Plan = SPEEDUP_PLAN) -> Ratio:
    """How many times faster `other` runs than `base`, timed side by side in `rounds` interleaved rounds (each
    round both cases run one block, in a seeded random order, the first call of each block untimed): the
    median of the per-round ratios, with its distribution-free interval over rounds (`Ratio.rounds`).
    Significant: the interval excludes 1 and the change is at least the plan's threshold."""
    cases = (base, other)
    for case in cases:
        warm_up(case.call, plan)
    estimates = [max(statistics.median(timed_calls(c.call, 5)), 1) for c in cases]
    block_ns = plan.min_time_s * 1e9 / rounds
    calls = [int(min(max(1, block_ns // e), plan.max_rounds // rounds)) for e in estimates]
    blocks: tuple[list[Block], list[Block]] = ([], [])
    for r in range(rounds):
        order = [0, 1]
        random.Random(r).shuffle(order)
        for side in order:
            cases[side].call()  # caches refill after the other case ran: not timed
            samples = timed_calls(cases[side].call, calls[side])
            blocks[side].append(Block(r, len(samples), float(statistics.median(samples))))
    ratio = paired_ratio(blocks[0], blocks[1], plan.threshold)
    if ratio is None:
        raise CaseFailed("too few rounds for a speed-up interval")
    return ratio


def resolve_model(model: str, test_dir: str | Path, cache_dir: str | Path) -> str:
    """`example:NAME` builds perfkit's example; a relative path is looked up beside the test file first."""
    if model.startswith("example:"):
        from perfkit.examples import write

        return str(write(model.split(":", 1)[1], Path(cache_dir) / "examples"))
    beside = Path(test_dir) / model
    return str(beside) if not Path(model).is_absolute() and beside.exists() else model
