"""The small result records a Report is made of, and those stages hand each other: a row's latency summary
and speed-up, its accuracy per output and on the task's labels, its profile per op type, the machine it ran on,
and the outputs of a model on the check feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Summary:
    """What the table shows for one row; times in ns. p90/p99 are None when n cannot support them."""

    n: int
    median: float
    ci_low: float | None
    ci_high: float | None
    mean: float
    stdev: float
    cv: float
    p90: float | None
    p99: float | None
    min: float
    max: float
    outliers: int

    def interval(self) -> tuple[float, float] | None:
        """The median's 95 % interval, or None when n is too small to give one."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low, self.ci_high

    @property
    def ci_rel(self) -> float | None:
        """The interval's farther side as a share of the median; None without an interval (or a zero median)."""
        ci = self.interval()
        if ci is None or not self.median:
            return None
        return max(self.median - ci[0], ci[1] - self.median) / self.median


@dataclass(frozen=True)
class Ratio:
    """How many times faster a row is than its baseline: value, a 95 % range, and whether it is real."""

    value: float
    low: float
    high: float
    significant: bool  # the change passes the practical threshold and the interval lies beyond half of it
    rounds: int = 0  # interleaved rounds the ratio was paired over; 0: two rows timed apart, medians compared


@dataclass(frozen=True)
class OutputAccuracy:
    """One output of a variant against the same output of the reference, over every check feed."""

    name: str
    comparable: bool = True
    reason: str = ""  # why not comparable
    max_abs: float | None = None
    mean_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    agree: float | None = None  # share of items whose top-1 label matches; None unless class scores
    top_k: float | None = None  # share of items whose reference label is in the variant's top k
    nonfinite: int = 0  # NaN/Inf values where the reference is finite


@dataclass(frozen=True)
class TaskScores:
    """A model's task metrics on the labelled --eval samples; None where one does not apply: top-1 and top-5
    (shares of 1) for a classifier, top-5 only with 5 classes or more; MAE and RMSE for a regressor."""

    top1: float | None = None
    top5: float | None = None
    mae: float | None = None
    rmse: float | None = None


@dataclass(frozen=True)
class TaskAccuracy:
    """A row's task metrics on the --eval labels beside the reference's on the same samples, from one output.
    The changes are what the budget's task terms judge: drops in shares of 1 (0.005 is half a percentage
    point), rises relative to the reference's error (0.01 is 1 % more error)."""

    output: str  # the output judged: class scores, a predicted label, or a predicted value
    samples: int  # labelled items judged (a fixed batch may leave the last few out)
    scores: TaskScores
    reference: TaskScores

    @property
    def top1_drop(self) -> float | None:
        return _drop(self.reference.top1, self.scores.top1)

    @property
    def top5_drop(self) -> float | None:
        return _drop(self.reference.top5, self.scores.top5)

    @property
    def mae_rise(self) -> float | None:
        return _rise(self.reference.mae, self.scores.mae)

    @property
    def rmse_rise(self) -> float | None:
        return _rise(self.reference.rmse, self.scores.rmse)


def _drop(reference: float | None, value: float | None) -> float | None:
    return None if reference is None or value is None else reference - value


def _rise(reference: float | None, value: float | None) -> float | None:
    """The error's rise as a share of the reference's; a perfect reference makes any error an infinite rise."""
    if reference is None or value is None:
        return None
    if reference == 0:
        return 0.0 if value == 0 else float("inf")
    return (value - reference) / reference


@dataclass(frozen=True)
class OpTime:
    """One op type in a profile: mean time per call summed over its nodes, and where they ran."""

    op: str
    ns_per_call: float
    nodes: int
    provider: str  # the provider that ran these nodes ("CPU", "CUDA"); mixed ones are listed per provider


@dataclass(frozen=True)
class Environment:
    """The fingerprint recorded with every run: hardware, software, providers, commit."""

    cpu_model: str
    cpu_flags: tuple[str, ...]
    logical_cores: int
    physical_cores: int | None
    os: str
    python: str
    packages: dict[str, str] = field(default_factory=dict)
    providers: tuple[str, ...] = ()
    git_commit: str | None = None
    load_average: float | None = None  # 1-minute load when the run started: a busy machine times badly


@dataclass(frozen=True)
class Outputs:
    """A model's outputs on the check feeds: its output names, and per feed the list of its outputs in that
    order. The reference every variant is compared with, and each variant's own."""

    names: tuple[str, ...]
    per_feed: tuple[list[Any], ...]
    features: tuple[str, ...] = ()  # outputs the graph shows are features (a Tanh pooler): never class scores
