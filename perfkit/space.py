"""The search space of `perfkit tune`: per target, the session settings worth trying, and for int8 the
quantization options that trade accuracy for speed — each dimension with why it moves latency.

The dimensions are searched in the order of how much they usually move a model's latency, each stage on the
winners of the one before (a coordinate search, halving inside each stage): the model file, then the settings
that decide how its threads work, then memory and numerics. A full grid on two cores is 1,500 sessions; this is
about thirty, and the stages that matter most get the most time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from perfkit.core.spec import Target
from perfkit.transforms import Step, parse_chain


@dataclass(frozen=True)
class Dimension:
    """One knob of the search: its values and why it matters."""

    name: str
    values: tuple[str, ...]
    why: str


CPU_DIMENSIONS = (
    Dimension("intra-op threads", ("1", "2", "4", "…", "cores"),
              "a small model's call is shorter than the cost of waking threads; a large one scales with cores, "
              "until threads share a core (SMT) or another process takes one"),
    Dimension("execution", ("sequential", "parallel, 2 inter-op threads"),
              "branches of a graph (Inception, multi-head towers) can run at once; a chain gains nothing and "
              "pays for the second pool"),
    Dimension("session.intra_op.allow_spinning", ("1", "0"),
              "spinning threads answer the next op sooner but take cores from anything else running: on a "
              "busy or small machine, off is often faster"),
    Dimension("graph_optimization_level", ("all", "extended", "basic"),
              "for files not optimized offline: some fusions and layout changes are slower on some models"),
    Dimension("enable_cpu_mem_arena / enable_mem_pattern", ("on", "off"),
              "the arena and planned buffers save allocations per call; with varying shapes they can cost more "
              "than they save"),
    Dimension("session.set_denormal_as_zero", ("0", "1"),
              "denormal floats take a slow path on x86; flushing them is faster and can change outputs — "
              "judged against the budget like any candidate"),
)
GPU_DIMENSIONS = (
    Dimension("IOBinding", ("off", "on"), "inputs and outputs stay on the device: no copies per call"),
    Dimension("CUDA graph", ("off", "on"), "the whole run replayed as one graph: no kernel launch costs"),
    Dimension("cudnn_conv_algo_search", ("EXHAUSTIVE", "HEURISTIC", "DEFAULT"),
              "the exhaustive search finds the fastest conv kernel once, at load; heuristic loads faster"),
    Dimension("tunable_op_enable / tunable_op_tuning_enable", ("0", "1"),
              "onnxruntime tries several GEMM kernels per shape and keeps the fastest"),
    Dimension("trt_fp16_enable / trt_int8_enable", ("0", "1"), "TensorRT builds half-precision or int8 engines"),
)


def dimensions(target: Target) -> tuple[Dimension, ...]:
    return GPU_DIMENSIONS if target.gpu else CPU_DIMENSIONS


def thread_counts(logical: int, physical: int | None, limit: int | None) -> tuple[int, ...]:
    """1, 2, 4, … up to the physical cores, plus the physical and logical counts; none above `limit`."""
    top = physical or logical
    counts = {top, logical}
    k = 1
    while k < top:
        counts.add(k)
        k *= 2
    return tuple(sorted(c for c in counts if limit is None or c <= limit))


def thread_settings(target: Target, logical: int, physical: int | None, limit: int | None) -> list[Target]:
    """How the session's threads work: intra-op threads × sequential or parallel execution × spinning."""
    if target.gpu:
        return gpu_settings(target)
    out = []
    for threads in thread_counts(logical, physical, limit):
        modes: list[tuple[tuple[str, str], ...]] = [()]
        if 2 * threads <= logical:  # a second pool only has cores to run on when the first leaves some
            modes.append((("execution_mode", "ORT_PARALLEL"), ("inter_op_num_threads", "2")))
        for mode in modes:
            for spin in ((), (("session.intra_op.allow_spinning", "0"),)):
                out.append(replace(target, threads=threads, session_options=mode, session_config=spin))
    return out


def detail_settings(target: Target, offline_optimized: bool) -> list[Target]:
    """Memory and numerics, one at a time on the best thread setting; the session's graph optimization level
    only for a file that was not optimized offline (an `ort-opt` file runs with the session's level off)."""
    if target.gpu:
        return gpu_details(target)
    out = [_with(target, options=(("enable_cpu_mem_arena", "0"),)),
           _with(target, options=(("enable_mem_pattern", "0"),)),
           _with(target, config=(("session.set_denormal_as_zero", "1"),))]
    if not offline_optimized:
        out += [replace(target, opt_level=level) for level in ("extended", "basic")]
    return out


def gpu_settings(target: Target) -> list[Target]:
    """IOBinding and CUDA graphs on CUDA; conv algorithm search; TensorRT's precisions."""
    out = [target, replace(target, modes=tuple(sorted({*target.modes, "iobinding"})))]
    if target.device == "cuda":
        out.append(_provider(replace(target, modes=("cuda-graph", "iobinding")), enable_cuda_graph="1"))
        out += [_provider(target, cudnn_conv_algo_search=algo) for algo in ("HEURISTIC", "DEFAULT")]
    if target.device == "tensorrt":
        out += [_provider(target, trt_fp16_enable="1"), _provider(target, trt_int8_enable="1")]
    return out


def gpu_details(target: Target) -> list[Target]:
    if target.device == "cuda":
        return [_provider(target, tunable_op_enable="1", tunable_op_tuning_enable="1"),
                _provider(target, prefer_nhwc="1")]
    return []


def _provider(target: Target, **options: str) -> Target:
    kept = tuple((k, v) for k, v in target.provider_options if k not in options)
    return replace(target, provider_options=kept + tuple(options.items()))


def _with(target: Target, options: tuple[tuple[str, str], ...] = (),
          config: tuple[tuple[str, str], ...] = ()) -> Target:
    return replace(target, session_options=target.session_options + options,
                   session_config=target.session_config + config)


# When an int8 chain misses the accuracy budget, the options tried in turn, each closer to float: finer scales,
# then calibration that ignores outliers (Entropy, Percentile), then 7-bit weights that cannot saturate on
# CPUs without VNNI; the last resort keeps the most sensitive nodes in float (tune's job: it needs outputs).
INT8_REPAIRS = ({"per_channel": "true"}, {"calibrate": "entropy"}, {"calibrate": "percentile"},
                {"reduce_range": "true"})


def int8_repairs(chain: tuple[Step, ...]) -> list[tuple[Step, ...]]:
    """The chain again with its int8 step's options moved toward float, one candidate per repair: per-channel
    first and kept (a finer scale never costs accuracy), then each other calibration, then 7-bit weights.
    Repairs a step lacks (dynamic int8 has no calibration) or already has are left out."""
    k = next((i for i, s in enumerate(chain) if s.name.startswith("int8")), None)
    if k is None:
        return []
    current, out = dict(chain[k].options), list[tuple[Step, ...]]()
    for repair in INT8_REPAIRS:
        if any(key not in current for key in repair):
            continue
        changed = {**current, **repair}
        if changed != current and not any(c[k].options == _rebuilt(chain, k, changed)[k].options for c in out):
            out.append(_rebuilt(chain, k, changed))
        if "per_channel" in repair:
            current = changed
    return out


def int8_trades(chain: tuple[Step, ...]) -> list[tuple[Step, ...]]:
    """The chain with its int8 step moved away from float, for a file inside the budget with room to spare:
    per-tensor scales instead of per-channel (fewer scales to apply per output channel). Empty when there is
    nothing to give up."""
    k = next((i for i, s in enumerate(chain) if s.name.startswith("int8")), None)
    if k is None or dict(chain[k].options).get("per_channel") != "true":
        return []
    return [_rebuilt(chain, k, {**dict(chain[k].options), "per_channel": "false"})]


def with_excluded(chain: tuple[Step, ...], nodes: tuple[str, ...]) -> tuple[Step, ...] | None:
    """The chain with its int8 step keeping `nodes` in float; None when it has no int8 step."""
    k = next((i for i, s in enumerate(chain) if s.name.startswith("int8")), None)
    if k is None:
        return None
    options = [*chain[k].options, *(("exclude", n) for n in nodes)]
    return _rebuilt(chain, k, options)


def _rebuilt(chain: tuple[Step, ...], k: int, options: dict[str, str] | list[tuple[str, str]]) -> tuple[Step, ...]:
    """The chain with step k's options replaced, written and parsed again so its label and key are canonical."""
    pairs = list(options.items()) if isinstance(options, dict) else options
    step = chain[k]
    given = [token for key, value in pairs if (token := _token(step.name, key, value))]
    text = "+".join(s.label if i != k else f"{s.name}:{','.join(given)}" if given else s.name
                    for i, s in enumerate(chain))
    return parse_chain(text)


def _token(name: str, key: str, value: str) -> str:
    """How an option is written in a label: nothing for its default, `per-channel` for a flag, `entropy` for a
    value only one option has, else `key=value`."""
    from perfkit.transforms import BOOL, TRANSFORMS

    options = TRANSFORMS[name].options
    option = next(o for o in options if o.key == key)
    if not option.repeat and value == option.default or option.repeat and not value:
        return ""
    if option.choices == BOOL:
        return key.replace("_", "-") if value == "true" else f"{key}=false"
    if option.choices and sum(value in o.choices for o in options) == 1:
        return value
    return f"{key}={value}"
