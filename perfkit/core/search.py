"""What `perfkit tune` searched: its candidates, each one's figures per stage of the halving, and the answer."""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.core.records import Environment, OutputAccuracy, Ratio
from perfkit.core.spec import Target


@dataclass(frozen=True)
class Candidate:
    """One configuration tried: a model file (a variant's lineage) and the session around it."""

    variant: str  # the model's label: "base", "int8-static:u8s8,per-channel"
    session: str  # the session settings that differ from onnxruntime's defaults; "" for the default session
    error: float | None = None  # 1 − the worst cosine over its outputs; None: not compared
    within: bool | None = None  # inside the accuracy budget; None: not judged
    size_bytes: int | None = None

    @property
    def label(self) -> str:
        return self.variant + (f" · {self.session}" if self.session else "")


@dataclass(frozen=True)
class Trial:
    """One candidate in one stage of one phase: its median and its score against the default timed in the
    same rounds (times better on the objective), and what became of it: kept, out, dropped."""

    candidate: int  # index into Search.candidates
    phase: str  # model, threads, details
    stage: int
    seconds: float
    median_ns: float | None
    score: float | None
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Search:
    """A tune run's search: what was tried and how it fared, the winner (None: the default stays) and why."""

    objective: str
    time_budget_s: float
    wall_s: float
    candidates: tuple[Candidate, ...]
    trials: tuple[Trial, ...]
    answer: str
    winner: int | None = None
    config: str = ""  # where perfkit-tuned.json was written
    notes: tuple[str, ...] = ()
    chosen_row: int = 0  # the report's row that is the answer: 0, the default, unless a configuration won


@dataclass(frozen=True, kw_only=True)
class TunedConfig:
    """perfkit-tuned.json as a record: the model file and the session to open it with, what they were
    measured to give, and where they were tuned."""

    model: str  # the model file; relative to the config's folder in the file, absolute once read
    model_digest: str
    lineage: tuple[str, ...]
    tuned_from: str  # the model the user gave tune
    tuned_from_digest: str
    target: Target
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    batch: int
    objective: str
    speedup: Ratio | None  # against onnxruntime's default session on the model as given, interleaved
    latency_ns: float | None  # the tuned configuration's median in that A/B
    default_latency_ns: float | None
    budget: str
    accuracy: tuple[OutputAccuracy, ...]
    environment: Environment
    perfkit_version: str
    created: str
    caveats: tuple[str, ...] = ()  # what the speed-up should be read with (it partly came from the load)
