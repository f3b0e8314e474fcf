"""Keras 3 (.keras, .h5) and TensorFlow SavedModel folders: load without running Python code from the file
(Keras' safe mode) unless trusted, convert with tf2onnx, run a batch through the compiled predict function."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfkit.backends import Closing
from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel, Port
from perfkit.core.spec import InputShape, Target
from perfkit.files.trust import trusted

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up banners are not perfkit's output


def missing() -> str | None:
    try:
        frameworks()
    except ImportError as exc:
        return exc.name or "tensorflow"
    return None


def frameworks():
    """(keras, tensorflow), imported quietly, and without leaving a ~/.keras/keras.json behind: Keras writes one
    on import where none exists, so perfkit points it at its cache folder then (a user's own is kept)."""
    if "KERAS_HOME" not in os.environ and not (Path.home() / ".keras" / "keras.json").exists():
        os.environ["KERAS_HOME"] = str(Path(os.environ.get("PERFKIT_CACHE") or ".perfkit-cache").resolve() / "keras")
    with silenced(2):
        import keras
        import tensorflow

    return keras, tensorflow


def load(native: NativeModel) -> Any:
    subject = native.source or native.path
    keras, tf = frameworks()
    if native.format == "savedmodel":
        try:
            loaded = tf.saved_model.load(native.path)
        except Exception as exc:
            raise PerfkitError(subject, f"not a loadable SavedModel ({brief(exc)})",
                               "save it again with tf.saved_model.save or model.export(path)") from None
        if "serving_default" not in getattr(loaded, "signatures", {}):
            raise PerfkitError(subject, "the SavedModel has no serving_default signature",
                               "save it with a signature: tf.saved_model.save(obj, path, signatures=fn)")
        return loaded
    safe = not trusted(native.trusted)
    try:
        return keras.saving.load_model(native.path, compile=False, safe_mode=safe)
    except Exception as exc:
        text = brief(exc)
        if safe and ("safe_mode" in text or "lambda" in text.lower()):
            raise PerfkitError(subject, "the model holds Python code (a Lambda layer) that Keras runs only "
                               "outside safe mode", "pass --trust (or PERFKIT_TRUST=1) only if you trust where "
                               "the file came from") from None
        raise PerfkitError(subject, f"Keras could not load it ({text})",
                           "save it again with model.save('model.keras') in Keras 3") from None



def _signature(loaded: Any) -> Any:
    return loaded.signatures["serving_default"]


def input_ports(model: Any, native: NativeModel, shapes: tuple[InputShape, ...]) -> tuple[Port, ...]:
    """Keras inputs (names, dtypes, shapes with a free batch) or the SavedModel's serving signature."""
    given = {s.name: s.dims for s in shapes}
    if native.format == "savedmodel":
        specs = _signature(model).structured_input_signature[1]
        return tuple(Port(k, s.dtype.name, _dims(given.get(k), s.shape)) for k, s in sorted(specs.items()))
    ports = []
    for i, t in enumerate(model.inputs):
        name = (t.name or f"input_{i}").split(":")[0]
        ports.append(Port(name, str(t.dtype), _dims(given.get(name), t.shape)))
    return tuple(ports)


def _dims(given: tuple[int, ...] | None, shape: Any) -> tuple[int | None, ...]:
    dims = tuple(None if d is None else int(d) for d in shape)
    if given and len(given) == len(dims):
        dims = tuple(g if d is None else d for d, g in zip(dims, given, strict=True))
    return (None, *dims[1:])


def export_onnx(model: Any, native: NativeModel, ports: tuple[Port, ...], dst: str, opset: int) -> None:
    _, tf = frameworks()

    specs = [tf.TensorSpec(p.shape, p.dtype, name=p.name) for p in ports]
    if native.format == "savedmodel":
        with silenced(2):
            import tf2onnx

        sig = _signature(model)

        @tf.function(input_signature=specs)
        def serve(*args):
            return sig(**{p.name: a for p, a in zip(ports, args, strict=True)})

        with silenced(2):
            tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset, output_path=dst)
        return
    with silenced(2):
        model.export(dst, format="onnx", verbose=False, opset_version=opset,
                     input_signature=[specs] if len(specs) > 1 else specs)
    if not _extra_inputs(dst, ports):
        return
    # Keras' export made some layers' constants (a Normalization's mean and variance) into inputs, which
    # would then be fed made-up values; tf2onnx's own Keras path keeps them as weights.
    with silenced(2):
        import tf2onnx

        tf2onnx.convert.from_keras(model, input_signature=specs, opset=opset, output_path=dst)
    if extra := _extra_inputs(dst, ports):
        raise PerfkitError(native.source or native.path, f"its ONNX export takes inputs the model does not have: "
                           f"{', '.join(extra)} (a layer's constants)",
                           "export it yourself with tf2onnx and bench the .onnx file")


def _extra_inputs(dst: str, ports: tuple[Port, ...]) -> list[str]:
    import onnx

    graph = onnx.load(dst, load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in weights][len(ports):]


class KerasBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if missing():
            return f"{missing()} is not installed — pip install 'perfkit[tensorflow]'"
        if target.device != "cpu":
            return f"perfkit runs Keras on the CPU only, not {target.device}"
        return None

    def open(self, native: NativeModel, target: Target) -> KerasSession:
        _, tf = frameworks()

        if target.threads is not None:
            # Already initialised in this process: the setting stays, and the row reports what it is.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(target.threads)
        with tf.device("/CPU:0"):
            return KerasSession(load(native), native, tf)


class KerasSession(Closing):
    def __init__(self, model: Any, native: NativeModel, tf) -> None:
        keras, _ = frameworks()

        self._native = native
        self.output_names = native.outputs
        self.providers = ("keras:cpu",)
        self.settings = {"requested": "keras:cpu", "keras": keras.__version__, "tensorflow": tf.__version__,
                         "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads() or
                                                 "default"), "format": native.format}
        if native.format == "savedmodel":
            sig = _signature(model)

            def call(args: tuple[Any, ...]) -> Any:
                out = sig(**{p.name: a for p, a in zip(native.inputs, args, strict=True)})
                return [out[k] for k in sorted(out)]
        else:
            # predict_on_batch: Keras' compiled predict step on one batch, without predict()'s data pipeline.
            def call(args: tuple[Any, ...]) -> Any:
                return model.predict_on_batch(args[0] if len(args) == 1 else list(args))
        self._call = call
        self._tf = tf

    def prepare(self, feed: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(feed[p.name] for p in self._native.inputs)

    def run(self, prepared: tuple[Any, ...]) -> list[Any]:
        import numpy as np

        out = self._call(prepared)
        leaves = out if isinstance(out, list | tuple) else list(out.values()) if isinstance(out, dict) else [out]
        return [np.asarray(v) for v in leaves]

    def bind(self, prepared: tuple[Any, ...]) -> Callable[[], Any]:
        fn = self._call

        def call() -> Any:
            return fn(prepared)

        return call

    def close(self) -> None:
        self._call = _closed  # lets the model go; a call after close says so


def _closed(args: tuple[Any, ...]) -> Any:
    raise RuntimeError("the Keras session is closed")
