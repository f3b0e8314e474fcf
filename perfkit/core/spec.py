"""What to benchmark: BenchSpec, Target, Workload, Plan, and the parsers for their command-line forms.

`perfkit.options.make_spec` is where user-facing options become a checked BenchSpec."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from perfkit.core.errors import PerfkitError
from perfkit.core.model import NativeHints

# cos: int8 usually keeps logits above 0.99; below it, answers visibly change. agree: cos alone let through an
# int8 ViT that changed 7 labels in 8 (close scores keep their direction while their order flips); on outputs
# that are class scores the label must stay put on 99 items in 100.
DEFAULT_BUDGET = "cos>=0.99,agree>=0.99"

OPT_LEVELS = ("disable", "basic", "extended", "all")
# perfkit's own run modes, written as flags after the target: ort:cuda,iobinding
MODES = {"iobinding": "inputs placed on the device once, outputs bound there: the figure is compute, not copies",
         "cuda-graph": "the whole run captured as one CUDA graph and replayed (implies iobinding)"}
# The provider options perfkit knows to be valid, so a typo is an error here, not silently ignored there.
PROVIDER_OPTIONS = {
    "cuda": ("device_id", "cudnn_conv_algo_search", "gpu_mem_limit", "arena_extend_strategy",
             "do_copy_in_default_stream", "cudnn_conv_use_max_workspace", "cudnn_conv1d_pad_to_nc1d",
             "enable_cuda_graph", "use_tf32", "prefer_nhwc", "enable_skip_layer_norm_strict_mode",
             "use_ep_level_unified_stream", "tunable_op_enable", "tunable_op_tuning_enable"),
    "tensorrt": ("device_id", "trt_fp16_enable", "trt_int8_enable", "trt_int8_calibration_table_name",
                 "trt_engine_cache_enable", "trt_engine_cache_path", "trt_timing_cache_enable",
                 "trt_timing_cache_path", "trt_max_workspace_size", "trt_builder_optimization_level",
                 "trt_max_partition_iterations", "trt_min_subgraph_size", "trt_dla_enable", "trt_dla_core",
                 "trt_dump_subgraphs", "trt_force_sequential_engine_build", "trt_sparsity_enable",
                 "trt_profile_min_shapes", "trt_profile_max_shapes", "trt_profile_opt_shapes",
                 "trt_cuda_graph_enable", "trt_detailed_build_log"),
}
# onnxruntime's own names: its execution providers by perfkit's device names, its optimization levels.
PROVIDERS = {
    "cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider", "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider", "migraphx": "MIGraphXExecutionProvider", "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider", "cann": "CANNExecutionProvider", "webgpu": "WebGpuExecutionProvider",
    "nnapi": "NnapiExecutionProvider", "acl": "ACLExecutionProvider", "armnn": "ArmNNExecutionProvider",
    "azure": "AzureExecutionProvider", "dnnl": "DnnlExecutionProvider", "vitisai": "VitisAIExecutionProvider",
}
OPT_LEVEL_NAMES = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                   "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
# SessionOptions attributes a target may set, with the values each takes ("int": a count).
SESSION_OPTIONS = {"inter_op_num_threads": "int", "execution_mode": ("ORT_SEQUENTIAL", "ORT_PARALLEL"),
                   "enable_cpu_mem_arena": ("0", "1"), "enable_mem_pattern": ("0", "1"),
                   "enable_mem_reuse": ("0", "1")}
# Session config entries (onnxruntime's keys) a target may set, with their values.
SESSION_CONFIG = {"session.intra_op.allow_spinning": ("0", "1"), "session.inter_op.allow_spinning": ("0", "1"),
                  "session.set_denormal_as_zero": ("0", "1"), "session.disable_prepacking": ("0", "1")}
SESSION_WORDS = {("execution_mode", "ORT_PARALLEL"): "parallel execution",
                 ("execution_mode", "ORT_SEQUENTIAL"): "sequential execution",
                 ("enable_cpu_mem_arena", "0"): "arena off", ("enable_mem_pattern", "0"): "mem pattern off",
                 ("session.intra_op.allow_spinning", "0"): "spin off",
                 ("session.inter_op.allow_spinning", "0"): "inter-op spin off",
                 ("session.set_denormal_as_zero", "1"): "denormals as zero"}
GPU_DEVICES = ("cuda", "tensorrt", "rocm", "migraphx", "dml")
# The element types --shape NAME=…:DTYPE takes: those a PyTorch example input and a synthetic feed can have.
SHAPE_DTYPES = ("float32", "float16", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


@dataclass(frozen=True)
class Target:
    """Where a model runs: a backend, a device on it, and the session options that change speed."""

    backend: str = "ort"
    device: str = "cpu"
    provider_options: tuple[tuple[str, str], ...] = ()
    threads: int | None = None  # None: the backend's own default (onnxruntime: one per physical core)
    opt_level: str = "all"  # onnxruntime's own default graph optimization level
    modes: tuple[str, ...] = ()  # iobinding, cuda-graph
    # More of onnxruntime's session, under its own names (a tuned configuration): SessionOptions attributes
    # (inter_op_num_threads, execution_mode, enable_cpu_mem_arena, …) and session config entries
    # (session.intra_op.allow_spinning, …). Not in the label: rows on one target compare, however tuned.
    session_options: tuple[tuple[str, str], ...] = ()
    session_config: tuple[tuple[str, str], ...] = ()
    compare_as: str = ""  # a tuned row's provider options or modes change its label: the target it is judged on

    @property
    def group(self) -> str:
        """The label of the rows this one is compared with (its own, unless it is a tuned row of another)."""
        return self.compare_as or self.label

    @property
    def label(self) -> str:
        flags = "".join(f",{m}" for m in self.modes)
        opts = "".join(f",{k}={v}" for k, v in self.provider_options)
        return f"{self.backend}:{self.device}{flags}{opts}"

    @property
    def session_text(self) -> str:
        """The session settings that differ from onnxruntime's defaults, briefly: "2 threads, spin off"; ""
        for a plain target."""
        parts = [f"{self.threads} thread{'s' if self.threads != 1 else ''}"] if self.threads else []
        if self.opt_level != "all":
            parts.append(f"level {self.opt_level}")
        return ", ".join([*parts, *([self.tuning_text] if self.tuning_text else [])])

    @property
    def tuning_text(self) -> str:
        """The SessionOptions attributes and config entries alone, briefly: "parallel execution, spin off"."""
        parts = []
        for key, value in (*self.session_options, *self.session_config):
            words = f"{value} inter-op threads" if key == "inter_op_num_threads" else f"{key}={value}"
            parts.append(SESSION_WORDS.get((key, value), words))
        return ", ".join(parts)

    @property
    def gpu(self) -> bool:
        return self.device in GPU_DEVICES


@dataclass(frozen=True)
class InputShape:
    """One --shape: an input's whole shape, and its element type when the user gave one."""

    name: str
    dims: tuple[int, ...]
    dtype: str | None = None  # `:int64`; None: the model's own type (a PyTorch module has none: guessed by name)


@dataclass(frozen=True)
class Workload:
    """What to feed: values for free dims, whole shapes, a seed, or the user's own data."""

    batch: int | None = None  # fills each input's free first dim; None: the default of 1
    dims: tuple[tuple[str, int], ...] = ()
    shapes: tuple[InputShape, ...] = ()
    inputs: str | None = None  # .npz / .npy with the user's data
    seed: int = 0
    distinct_feeds: int = 1  # feeds cycled while timing; 1 keeps the loop as tight as a bare session.run


@dataclass(frozen=True)
class Plan:
    """How to time one case. Every default says why it is that number."""

    warmup_calls: int = 10  # enough for lazy allocations, thread-pool spin-up and caches to settle
    warmup_time_s: float = 1.0  # and long enough for CPU frequency scaling to reach a steady clock
    warmup_max_s: float = 10.0  # but a model slower than 1 s a call is not warmed for 10 calls
    min_rounds: int = 30  # the fewest samples that give a usable interval for the median
    min_time_s: float = 2.0  # measure across a couple of seconds so a brief stall cannot dominate
    max_time_s: float = 20.0  # a slow model stops here whatever its count
    max_rounds: int = 20_000  # 200 samples in the p99 tail; bounds the raw samples kept per row
    timeout_s: float = 300.0  # a case (load + warm-up + timing) taking longer is treated as hung
    isolate: bool = True  # each case in a spawned worker, so a crash or hang is one failed row
    interleave: bool = True  # rows timed in rounds of short blocks, so the machine's drift lands on all alike
    threshold: float = 0.02  # the smallest speed-up or slow-down called a difference, however significant
    block_s: float | None = None  # one interleaved block; None: a twentieth of min_time_s, within 5-200 ms
    workers: int = 2  # processes per interleaved case: two, so its interval holds how processes differ; a
    # search's short stages use one, as they rank candidates and a final A/B decides


QUICK_PLAN = Plan(warmup_calls=3, warmup_time_s=0.2, warmup_max_s=2.0, min_rounds=10,
                  min_time_s=0.3, max_time_s=3.0, max_rounds=5_000)


@dataclass(frozen=True, kw_only=True)
class BenchSpec:
    """One whole `perfkit bench`: a model, where to run it, what to feed, how to time, where to keep it."""

    model: str
    targets: tuple[Target, ...] = (Target(),)
    workloads: tuple[Workload, ...] = (Workload(),)
    plan: Plan = field(default_factory=Plan)
    allow_fallback: bool = False
    results_dir: str | None = "results"  # None: keep nothing
    variants: tuple[str, ...] = ()  # chains such as "ort-opt:all+int8-static:qdq", or "auto"
    accuracy_budget: str = DEFAULT_BUDGET  # the fastest variant inside it is marked
    calibration: str | None = None  # .npz for static quantization; None: synthetic, with a warning
    cache_dir: str = ".perfkit-cache"  # built variants, keyed by content hash and parameters
    check_feeds: int = 8  # feeds every variant is compared on: several, so one lucky input cannot pass
    profile: bool = False  # onnxruntime's per-op profile of every row, after its timing
    trust: bool = False  # the user allows loading pickle-based native models (--trust)
    factory: str | None = None  # package.module:function building the module a PyTorch state dict fills
    hints: NativeHints = NativeHints()  # --task, --input-names, --output-names for a native model
    opset: int | None = None  # opset of a native model's ONNX conversion; None: the exporter's default
    float64: bool = False  # scikit-learn: convert with float64 inputs, keeping its precision
    upgrade_opset: bool = False  # an ONNX model older than onnxruntime's opsets is upgraded and measured so
    store: str | None = None  # postgresql://… keeps the runs in that database; None: results_dir's SQLite
    fail_on_fallback: bool = False  # a GPU row whose compute ops ran on the CPU fails instead of warning
    config: str | None = None  # a perfkit-tuned.json: its model file and session measured beside the model
    eval: str | None = None  # --eval: labelled samples (.npz with `labels`, or a table), the check feeds of every row
    label_column: str | None = None  # --label-column: the labels' column when --eval is a .csv/.parquet table


def parse_target(text: str, *, threads: int | None = None, opt_level: str = "all") -> Target:
    """`ort:cpu`, `ort:cuda,device_id=0`, `cuda` (backend ort implied)."""
    head, *opts = [p.strip() for p in text.split(",")]
    backend, colon, device = head.partition(":")
    if not colon:
        backend, device = "ort", backend
    if not re.fullmatch(r"[a-z][a-z0-9_]*", backend) or not re.fullmatch(r"[a-z][a-z0-9_-]*", device):
        raise PerfkitError(f"--target {text}", "not a target", "write BACKEND:DEVICE, e.g. ort:cpu or ort:cuda")
    pairs, modes = [], []
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq and key in MODES:
            modes.append(key)
            continue
        if not eq or not key:
            raise PerfkitError(f"--target {text}", f"option '{opt}' is neither KEY=VALUE nor a mode",
                               f"write provider options as ort:cuda,device_id=0; modes: {', '.join(MODES)}")
        known = PROVIDER_OPTIONS.get(device)
        if known and key.strip() not in known:
            raise PerfkitError(f"--target {text}", f"'{key}' is not an option of the {device} provider",
                               f"its options: {', '.join(known)}")
        pairs.append((key.strip(), value.strip()))
    if modes and (backend != "ort" or device == "cpu" and "cuda-graph" in modes):
        raise PerfkitError(f"--target {text}", f"{'/'.join(modes)} needs an onnxruntime GPU target",
                           "write e.g. ort:cuda,iobinding (iobinding also works on ort:cpu)")
    if "cuda-graph" in modes:
        if device not in ("cuda", "tensorrt"):
            raise PerfkitError(f"--target {text}", "CUDA graphs are a CUDA and TensorRT feature",
                               "use ort:cuda,cuda-graph")
        modes = sorted(set(modes) | {"iobinding"})
        option = "enable_cuda_graph" if device == "cuda" else "trt_cuda_graph_enable"
        pairs = [p for p in pairs if p[0] != option] + [(option, "1")]
    return Target(backend, device, tuple(pairs), threads, check_opt_level(opt_level), tuple(modes))


def check_opt_level(level: str) -> str:
    if level not in OPT_LEVELS:
        raise PerfkitError(f"--opt-level {level}", "unknown level", f"use one of {', '.join(OPT_LEVELS)}")
    return level


def parse_dim(text: str) -> tuple[str, int]:
    """`batch=8` -> ("batch", 8)."""
    name, eq, value = text.partition("=")
    if not eq or not name or not value.strip().isdigit():
        raise PerfkitError(f"--dim {text}", "not NAME=VALUE", "write e.g. --dim batch=8 --dim sequence=128")
    return name.strip(), int(value)


def parse_shape(text: str) -> InputShape:
    """`x=1x3x224x224` -> InputShape("x", (1, 3, 224, 224)); `input_ids=1x128:int64` also gives the element
    type; `x=` is a scalar."""
    name, eq, rest = text.rpartition("=")
    dims, colon, dtype = rest.partition(":")
    parts = dims.split("x") if dims else []
    if not eq or not name or not all(p.isdigit() for p in parts):
        raise PerfkitError(f"--shape {text}", "not INPUT=D1xD2x…[:DTYPE]",
                           "write e.g. --shape pixel_values=1x3x224x224 or --shape input_ids=1x128:int64")
    if colon and dtype not in SHAPE_DTYPES:
        raise PerfkitError(f"--shape {text}", f"'{dtype}' is not an element type perfkit feeds",
                           f"use one of {', '.join(SHAPE_DTYPES)}")
    return InputShape(name, tuple(int(p) for p in parts), dtype or None)


def parse_batches(text: str) -> tuple[int, ...]:
    """`1,8,32` -> (1, 8, 32)."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise PerfkitError(f"--batch {text}", "not a list of sizes", "write e.g. --batch 1,8,32")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True, kw_only=True)
class TuneSpec:
    """One whole `perfkit tune`: what bench would measure, plus what the search optimizes, its time and its
    memory cap, and where the tuned configuration goes."""

    bench: BenchSpec  # the model, target, workloads (--batch: the batches throughput may choose from), budget
    output_dir: str
    objective: str = "median"  # median latency, p99 latency, or throughput (items per second)
    time_budget_s: float = 300.0  # about what a ResNet-18-sized model needs on a 2-core machine
    max_memory: int | None = None  # bytes of peak RSS a candidate may use; None: no cap
