"""Backends by name, imported only when used: `get_backend("ort")`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from perfkit.errors import PerfkitError
from perfkit.spec import Target

REGISTRY = {"ort": "perfkit.backends.ort:OrtBackend", "sklearn": "perfkit.backends.sklearn:SklearnBackend",
            "torch": "perfkit.backends.torch:TorchBackend", "keras": "perfkit.backends.keras:KerasBackend"}


class Session(Protocol):
    """An open model. `run` returns only when the work is finished, so timing from outside is right."""

    providers: tuple[str, ...]  # what actually runs, in priority order
    settings: dict[str, str]  # session settings as the backend applied them
    output_names: tuple[str, ...]

    def prepare(self, feed: dict[str, Any]) -> Any: ...
    def run(self, prepared: Any) -> list[Any]: ...
    def bind(self, prepared: Any) -> Callable[[], Any]: ...  # run(prepared) with the least cost per call
    def close(self) -> None: ...


class Backend(Protocol):
    def unavailable(self, target: Target) -> str | None: ...
    def open(self, model: Any, target: Target) -> Session: ...  # a path (ort) or a NativeModel (the others)


def get_backend(name: str) -> Backend:
    if name not in REGISTRY:
        raise PerfkitError(f"--target {name}:…", "unknown backend", f"use one of: {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
