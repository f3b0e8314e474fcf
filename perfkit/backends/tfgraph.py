"""TensorFlow frozen graphs (a GraphDef .pb): the graph imported once into a wrapped function and pruned to its
ends (`files.graphdef`: the Placeholders and the nodes nothing consumes, or --input-names/--output-names), run
on the CPU."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfkit.backends import Closing
from perfkit.backends.keras import frameworks
from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel, Port
from perfkit.core.spec import InputShape, Target
from perfkit.files.graphdef import Ends, clean_name, graph_ends, node_of, parse_graph

UNKNOWN_OP = re.compile(r"Op type not registered '([^']+)'")


def missing() -> str | None:
    from importlib.util import find_spec

    try:
        frameworks()
    except ImportError as exc:
        return exc.name or "tensorflow"
    return None if find_spec("tf2onnx") else "tf2onnx"


@dataclass(frozen=True)
class FrozenGraph:
    graph_def: Any  # tf.compat.v1.GraphDef
    function: Any  # the graph imported into a wrapped function, once
    ends: Ends


def load(native: NativeModel) -> FrozenGraph:
    """The graph, checked and imported; one line when its bytes are damaged, its ends ambiguous, or an op
    unknown to this TensorFlow."""
    subject = native.source or native.path
    data = Path(native.path).read_bytes()
    ends = graph_ends(parse_graph(data, subject), native.hints.input_names, native.hints.output_names, subject)
    _, tf = frameworks()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    for node in graph_def.node:
        node.device = ""  # a graph frozen on a GPU machine names its devices; perfkit runs it on the CPU

    def imported() -> None:
        with tf.device("/CPU:0"):
            tf.compat.v1.import_graph_def(graph_def, name="")

    try:
        with silenced(2):
            function = tf.compat.v1.wrap_function(imported, [])
    except Exception as exc:
        raise _import_failure(subject, exc, tf.__version__) from None
    frozen = FrozenGraph(graph_def, function, ends)
    for tensors, option in ((ends.inputs, "--input-names"), (ends.outputs, "--output-names")):
        for tensor in tensors:
            _element(frozen, tensor, subject, option)  # "op:3" of an op with fewer outputs is refused here
    return frozen


def _import_failure(subject: str, exc: Exception, version: str) -> PerfkitError:
    if op := UNKNOWN_OP.search(str(exc)):
        return PerfkitError(subject, f"TensorFlow {version} does not know the op {op[1]}",
                            "load the library that defines it (tf.load_op_library), or convert the model to ONNX "
                            "where it was made")
    return PerfkitError(subject, f"TensorFlow could not import the graph ({brief(exc)})",
                        "write the graph again from the model it came from")


def input_ports(frozen: FrozenGraph, shapes: tuple[InputShape, ...], subject: str) -> tuple[Port, ...]:
    """Each input's name (its node's), element type and shape as the graph declares them."""
    given = {s.name: s.dims for s in shapes}
    ports = []
    for tensor in frozen.ends.inputs:
        t = _element(frozen, tensor, subject, "--input-names")
        name = clean_name(tensor)
        ports.append(Port(name, t.dtype.name, _dims(name, given.get(name), t.shape, subject)))
    return tuple(ports)


def _dims(name: str, given: tuple[int, ...] | None, shape: Any, subject: str) -> tuple[int | None, ...]:
    """The graph's dims, its unknown ones after the first filled from --shape; the batch dim stays as the graph
    has it (free stays free; a graph frozen at batch 1 runs at batch 1 only)."""
    if shape.rank is None:
        if not given:
            raise PerfkitError(subject, f"the graph does not say the rank of its input {name}",
                               f"pass --shape {name}=… with its dims (1x224x224x3)")
        return (None, *given[1:])
    dims = tuple(shape.as_list())
    if not given:
        return dims
    if len(given) != len(dims):
        wanted = "x".join("1" if d is None else str(d) for d in dims)
        raise PerfkitError(subject, f"--shape {name} has {len(given)} dims; the graph's {name} has {len(dims)}",
                           f"give them all: --shape {name}={wanted}")
    return (dims[0], *(g if d is None else d for d, g in zip(dims[1:], given[1:], strict=True)))


def pruned(frozen: FrozenGraph, inputs: tuple[str, ...], outputs: tuple[str, ...], subject: str) -> Any:
    """The graph cut to a function of `inputs` returning `outputs` (TensorFlow tensor names)."""
    feeds = [_element(frozen, t, subject, "--input-names") for t in inputs]
    fetches = [_element(frozen, t, subject, "--output-names") for t in outputs]
    with silenced(2):
        return frozen.function.prune(feeds=feeds, fetches=fetches)


def _element(frozen: FrozenGraph, tensor: str, subject: str, option: str) -> Any:
    graph = frozen.function.graph
    try:
        return graph.as_graph_element(tensor)
    except (KeyError, ValueError):
        pass
    outputs = [t.name for t in graph.get_operation_by_name(node_of(tensor)).outputs]  # the node is there
    raise PerfkitError(subject, f"{option}: the graph has no tensor {tensor}",
                       f"name one that {node_of(tensor)} has: {', '.join(outputs) or 'none (it gives no value)'}")


def in_order(tensors: tuple[str, ...], names: tuple[str, ...], subject: str) -> tuple[str, ...]:
    """The tensors in the order of `names`, the ONNX conversion's (each tensor's clean name)."""
    by_name = {clean_name(t): t for t in tensors}
    if not names:
        return tensors
    if unknown := [n for n in names if n not in by_name]:
        raise PerfkitError(subject, f"the conversion's {', '.join(unknown)} is not among the graph's ends "
                           f"({', '.join(by_name)})", "convert it again (perfkit convert), with the same "
                           "--input-names/--output-names")
    return tuple(by_name[n] for n in names)


class TfGraphBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if missing():
            return f"{missing()} is not installed — pip install 'perfkit[tensorflow]'"
        if target.device != "cpu":
            return f"perfkit runs TensorFlow graphs on the CPU only, not {target.device}"
        return None

    def open(self, native: NativeModel, target: Target) -> TfGraphSession:
        _, tf = frameworks()

        if target.threads is not None:
            # Already initialised in this process: the setting stays, and the row reports what it is.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(target.threads)
        return TfGraphSession(load(native), native, tf)


class TfGraphSession(Closing):
    """The pruned graph, fed the ONNX inputs by name and giving its outputs in the ONNX order."""

    def __init__(self, frozen: FrozenGraph, native: NativeModel, tf) -> None:
        subject = native.source or native.path
        inputs = in_order(frozen.ends.inputs, tuple(p.name for p in native.inputs), subject)
        outputs = in_order(frozen.ends.outputs, native.outputs, subject)
        self._names = tuple(clean_name(t) for t in inputs)
        self.output_names = tuple(clean_name(t) for t in outputs)
        self.providers = ("tensorflow:cpu",)
        self.settings = {"requested": "tensorflow:cpu", "tensorflow": tf.__version__, "format": native.format,
                         "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads() or
                                                 "default")}
        self._fn: Callable[..., Any] | None = pruned(frozen, inputs, outputs, subject)
        self._tf = tf

    def prepare(self, feed: dict[str, Any]) -> tuple[Any, ...]:
        with self._tf.device("/CPU:0"):
            return tuple(self._tf.convert_to_tensor(feed[n]) for n in self._names)

    def run(self, prepared: tuple[Any, ...]) -> list[Any]:
        return [v.numpy() for v in self._function()(*prepared)]

    def bind(self, prepared: tuple[Any, ...]) -> Callable[[], Any]:
        fn = self._function()

        def call() -> Any:
            return fn(*prepared)

        return call

    def _function(self) -> Callable[..., Any]:
        if self._fn is None:
            raise RuntimeError("the TensorFlow session is closed")
        return self._fn

    def close(self) -> None:
        self._fn = None  # lets the graph go
