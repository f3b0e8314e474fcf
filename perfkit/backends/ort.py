"""onnxruntime: providers by device name, session options, load errors in words a user can act on."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from typing import Any

from perfkit.backends import Closing
from perfkit.core.errors import PerfkitError, Unsupported
from perfkit.core.spec import OPT_LEVEL_NAMES, PROVIDERS, Target

QUIET = 4  # onnxruntime's log level "fatal": its errors come back in the row's reason, its warnings are noise
NON_NUMPY = ("bfloat16", "float8")  # element types onnxruntime's numpy bridge cannot hand over directly
OLDEST_OPSET = 7  # the first opset onnxruntime has kernels for
# The opset --upgrade-opset upgrades an older model to. Any of 7-21 loads every one of the 34 onnx backend-test
# models onnxruntime refuses, with the same outputs; 13 is the first where QuantizeLinear takes a per-axis
# scale, so perfkit's int8 variants need no second, blind upgrade (onnxruntime's quantizer moves opset < 10 to
# 11 by itself), and the converter's chain of adapters stays as short as that allows.
UPGRADE_TO = 13
FLOAT32_MENDS = ("bfloat16", "float16", "float64")  # a kernel missing for these: the float32 model has it


def provider_name(target: Target) -> str:
    return PROVIDERS.get(target.device, target.device)


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise Unsupported("onnxruntime is not installed — pip install 'perfkit[cpu]' (or [gpu])") from None
    onnxruntime.set_default_logger_severity(QUIET)
    return onnxruntime


class OrtBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        try:
            ort = _ort()
        except Unsupported as exc:
            return str(exc)
        available = ort.get_available_providers()
        if provider_name(target) not in available:
            return f"{provider_name(target)} is not in this onnxruntime (available: {', '.join(available)})"
        return None

    def open(self, model_path: str, target: Target, profile_prefix: str | None = None) -> OrtSession:
        ort = _ort()
        options = ort.SessionOptions()
        options.log_severity_level = QUIET
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVEL_NAMES[target.opt_level])
        if target.threads is not None:
            options.intra_op_num_threads = target.threads
        apply_session(ort, options, target)
        provider = provider_name(target)
        try:
            with warnings.catch_warnings():  # its "provider not available" warning: fallback is reported per row
                warnings.simplefilter("ignore")
                session = ort.InferenceSession(model_path, options,
                                               providers=[(provider, dict(target.provider_options))])
        except Exception as exc:  # onnxruntime raises its own pybind classes for every load failure
            what, fix = explain_load_error(exc, provider, model_path)
            raise PerfkitError(model_path, what, fix) from None
        if "iobinding" in target.modes:
            return BoundOrtSession(ort, session, options, target)
        return OrtSession(ort, session, options, target)


def apply_session(ort: Any, options: Any, target: Target) -> None:
    """A target's SessionOptions attributes and session config entries, under onnxruntime's own names."""
    for key, value in target.session_options:
        if key == "execution_mode":
            options.execution_mode = getattr(ort.ExecutionMode, value)
        elif key == "inter_op_num_threads":
            options.inter_op_num_threads = int(value)
        else:
            setattr(options, key, value in ("1", "true", "True"))
    for key, value in target.session_config:
        options.add_session_config_entry(key, value)


def session_value(options: Any, key: str) -> str:
    """A SessionOptions attribute as a target writes it: ORT_PARALLEL, 2, 1/0."""
    value = getattr(options, key)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).rpartition(".")[2]


class OrtSession(Closing):
    def __init__(self, ort: Any, session: Any, options: Any, target: Target) -> None:
        self._ort, self._session = ort, session
        self.providers = tuple(session.get_providers())
        self.settings = {"requested": provider_name(target),
                         "intra_op_threads": str(options.intra_op_num_threads or "default"),
                         "opt_level": target.opt_level, "onnxruntime": ort.__version__,
                         "io": "host arrays: the latency includes copies to and from the device" if target.gpu
                         else "host arrays"}
        # What the session holds, read back from onnxruntime: a tuned row records what ran, not what was asked.
        for key, _ in target.session_options:
            self.settings[key] = session_value(options, key)
        for key, _ in target.session_config:
            self.settings[key] = options.get_session_config_entry(key)
        outputs = session.get_outputs()
        self.output_names = tuple(o.name for o in outputs)
        raw_outputs = any(t in o.type for o in outputs for t in NON_NUMPY)
        # Outputs numpy cannot hold stay OrtValues; the choice is made once, not per call.
        self._run = session.run_with_ort_values if raw_outputs else session.run
        self._inputs = {i.name: i.type for i in session.get_inputs()}

    def prepare(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Feeds in the session's own input types, once, outside the timed loop: float32 to float16 for an
        fp16 variant with fp16 inputs; bfloat16/float8 arrays as OrtValues."""
        from onnx import TensorProto

        out = {}
        for name, array in feed.items():
            kind = self._inputs.get(name, "")
            if kind == "tensor(float16)" and array.dtype.name == "float32":
                out[name] = array.astype("float16")  # an fp16 variant with fp16 inputs: same values, its dtype
            elif any(t in kind for t in NON_NUMPY):
                elem = getattr(TensorProto, kind[len("tensor("):-1].upper())
                raw = array.view(f"uint{8 * array.itemsize}")
                out[name] = self._ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, elem)
            else:
                out[name] = array
        return out

    def run(self, prepared: dict[str, Any]) -> list[Any]:
        return list(self._run(None, prepared))

    def bind(self, prepared: dict[str, Any]) -> Callable[[], Any]:
        """run(prepared) as one closure over onnxruntime's own method. Measured against a bare loop
        (benchmarks/test_overhead.py), this beat both self.run and a functools.partial of the same method."""
        run = self._run

        def call() -> Any:
            return run(None, prepared)

        return call

    def end_profiling(self) -> str:
        """Stop onnxruntime's profiler (sessions opened with a profile prefix); the trace file's path."""
        return self._session.end_profiling()

    def close(self) -> None:
        self._session = self._run = None  # _run holds the session too


class BoundOrtSession(OrtSession):
    """IOBinding: each feed is copied to the device once, in prepare(), and outputs stay on the device, so the
    timed call is the device's compute. run_with_iobinding returns after onnxruntime synchronised the
    providers; synchronize_outputs() makes that explicit, so the clock stops when the device is done."""

    def __init__(self, ort: Any, session: Any, options: Any, target: Target) -> None:
        super().__init__(ort, session, options, target)
        self._device = "cuda" if target.device in ("cuda", "tensorrt") else target.device
        self._device_id = int(dict(target.provider_options).get("device_id", 0))
        self.settings["io"] = f"IOBinding on {self._device}:{self._device_id}" + \
            (" with a CUDA graph" if "cuda-graph" in target.modes else "")
        # A CUDA graph replays the buffers it captured: later feeds are copied into those, never rebound.
        self._graph = "cuda-graph" in target.modes
        self._captured: Any = None

    def prepare(self, feed: dict[str, Any]) -> Any:
        if self._graph and self._captured is not None:
            binding, keep = self._captured
            for value, array in zip(keep, super().prepare(feed).values(), strict=True):
                value.update_inplace(array)
            return self._captured
        binding = self._session.io_binding()
        keep = []  # the device copies must outlive the binding
        for name, value in super().prepare(feed).items():
            on_device = value if isinstance(value, self._ort.OrtValue) else \
                self._ort.OrtValue.ortvalue_from_numpy(value, self._device, self._device_id)
            keep.append(on_device)
            binding.bind_ortvalue_input(name, on_device)
        for name in self.output_names:
            binding.bind_output(name, self._device, self._device_id)
        if self._graph:
            self._captured = (binding, keep)
        return binding, keep

    def run(self, prepared: Any) -> list[Any]:
        binding, _ = prepared
        self._session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding.copy_outputs_to_cpu()

    def bind(self, prepared: Any) -> Callable[[], Any]:
        binding, _ = prepared
        run, sync = self._session.run_with_iobinding, binding.synchronize_outputs

        def call() -> Any:
            run(binding)
            sync()

        return call


def missing_kernel(op: str, version: int, node: str | None, provider: str, model_path: str) -> tuple[str, str]:
    """A node no kernel runs with the types it is fed: the op, the types (read from the file) and the fix."""
    from perfkit.files.onnx_types import kernel_inputs

    types = kernel_inputs(model_path, op, node) if model_path and node is not None else ""
    if not types:
        return (f"no onnxruntime kernel for {op} (opset {version}) on {provider} with these types",
                "try another --target, or re-export with ops and types this provider supports")
    where = "CPU" if provider == "CPUExecutionProvider" else f"{provider} or CPU"
    named = f" node '{node}'" if node else ""
    what = f"{op}{named} (opset {version}) has no {where} kernel for {types}"
    if any(t in types for t in FLOAT32_MENDS):
        return what, (f"run the float32 model (or Cast {op}'s inputs to float32), or give a --target whose provider "
                      "has the kernel (ort:cuda)")
    return what, f"re-export with types {provider} takes for {op}, or try another --target"


_PREFIX = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : ")  # nested errors repeat it
# C++ source locations: "/…/graph_utils.cc:479 NodeArg& f(Graph&, …) " or "graph.cc:4164 AddInitializedOrtValue "
_SOURCE = re.compile(r"\S*\.(?:cc|h|cpp):\d+ (?:[^()\[]*\([^)]*\) |\w+ )")


def clean_message(exc: BaseException) -> str:
    """onnxruntime's message without its status prefix and C++ source location, on one line."""
    text = _SOURCE.sub("", _PREFIX.sub("", str(exc).strip()))
    return " ".join(text.split())


def explain_load_error(exc: BaseException, provider: str, model_path: str = "") -> tuple[str, str]:
    """(what is wrong, how to fix) for an exception from InferenceSession(); `model_path` lets a missing kernel
    name the types its node is fed."""
    msg = clean_message(exc)
    if m := re.search(r"Could not find an implementation for (\w+)\((\d+)\)(?: node with name '([^']*)')?", msg):
        if int(m[2]) < OLDEST_OPSET:
            return (f"no onnxruntime kernel for {m[1]} at opset {m[2]}: onnxruntime runs opset {OLDEST_OPSET} and "
                    f"later", f"pass --upgrade-opset (onnx.version_converter upgrades it to opset {UPGRADE_TO}, in "
                    f"perfkit's cache), or re-export it at opset {UPGRADE_TO} or later")
        return missing_kernel(m[1], int(m[2]), m[3], provider, model_path)
    if m := re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", msg):
        return (f"IR version {m[1]} is newer than this onnxruntime reads (≤ {m[2]})",
                f"upgrade onnxruntime, or set model.ir_version = {m[2]} and save it again if its ops allow")
    if m := re.search(r"(\S+:\w+)\(-?\d+\) is not a registered function/op", msg):
        return (f"op {m[1]} is unknown to onnxruntime",
                "register the custom-op library that defines it, or re-export without it")
    if m := re.search(r"Opset (\d+) is under development.*support for domain (\S+) is till opset (\d+)", msg):
        return (f"opset {m[1]} is newer than this onnxruntime supports for {m[2]} (≤ {m[3]})",
                f"upgrade onnxruntime, or re-export with opset ≤ {m[3]}")
    if "Unsupported model IR version" in msg or "IR version" in msg:
        return (f"IR version not supported: {msg[:160]}", "upgrade onnxruntime, or save with an older IR version")
    if "protobuf parsing failed" in msg:
        return "not a valid ONNX protobuf", "re-export the model"
    return f"onnxruntime could not load it: {msg[:200]}", "check the model with onnx.checker.check_model"
