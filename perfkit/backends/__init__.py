"""Backends by name, imported only when used: `get_backend("ort")`. A backend opens a session on a model; a
session is a context manager (open, run, close), as Polygraphy's runners are."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from perfkit.core.errors import PerfkitError
from perfkit.core.spec import Target

REGISTRY = {"ort": "perfkit.backends.ort:OrtBackend", "sklearn": "perfkit.backends.sklearn:SklearnBackend",
            "torch": "perfkit.backends.torch:TorchBackend", "keras": "perfkit.backends.keras:KerasBackend",
            "hf": "perfkit.backends.hf:HfBackend", "tfgraph": "perfkit.backends.tfgraph:TfGraphBackend",
            "spark": "perfkit.backends.spark:SparkBackend", "pmml": "perfkit.backends.pmml:PmmlBackend"}
Clock = Callable[[], int]


class Session(Protocol):
    """An open model. `run` returns only when the work is finished, so timing from outside is right."""

    providers: tuple[str, ...]  # what actually runs, in priority order
    settings: dict[str, str]  # session settings as the backend applied them
    output_names: tuple[str, ...]

    def prepare(self, feed: dict[str, Any]) -> Any: ...
    def run(self, prepared: Any) -> list[Any]: ...
    def bind(self, prepared: Any) -> Callable[[], Any]: ...  # run(prepared) with the least cost per call
    def close(self) -> None: ...
    def __enter__(self) -> Session: ...
    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class Backend(Protocol):
    clock: Clock  # what its calls are timed with: time.perf_counter_ns, or a fake backend's simulated time

    def unavailable(self, target: Target) -> str | None: ...
    def open(self, model: Any, target: Target) -> Session: ...  # a path (ort) or a NativeModel (the others)


class Closing:
    """The context-manager half every session shares: `with backend.open(model, target) as session:` closes
    the session however the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def get_backend(name: str) -> Backend:
    if name not in REGISTRY:
        raise PerfkitError(f"--target {name}:…", "unknown backend", f"use one of: {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend
