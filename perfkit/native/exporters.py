"""Native -> ONNX: the dispatch to each framework's exporter (scikit-learn, Hugging Face, TensorFlow graphs,
Spark and PMML in modules of their own, listed in EXPORTERS), and here PyTorch through the dynamo exporter (the
TorchScript exporter when dynamo cannot), Keras and TensorFlow through Keras 3's export or tf2onnx. The batch
axis stays free.

`export` runs in a worker: loading a trusted pickle, or a framework crashing, stays out of the parent.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, brief, root_cause
from perfkit.core.model import NativeModel
from perfkit.core.spec import InputShape
from perfkit.files.data import read_sample
from perfkit.native.frameworks import backend_module

# Frameworks whose exporter is a module of its own: export_onnx(job, backend_module) -> (native, notes).
EXPORTERS = {"sklearn": "perfkit.native.sklearn_export", "hf": "perfkit.native.hf_export",
             "tfgraph": "perfkit.native.tf_graph", "spark": "perfkit.native.spark_export",
             "pmml": "perfkit.native.pmml_export"}
DEFAULT_OPSET = 18  # supported by every converter here and by onnxruntime ≥ 1.14
EXAMPLE_BATCH = 2  # torch.export specialises a dim traced at 0 or 1: trace the batch at 2 to keep it free


@dataclass(frozen=True)
class ExportJob:
    native: NativeModel
    dst: str
    opset: int | None = None
    shapes: tuple[InputShape, ...] = ()  # --shape: input names, example shapes, element types
    data: str | None = None  # --inputs: a sample of real inputs (.npz, .csv, .parquet)
    float64: bool = False  # scikit-learn: keep float64 arithmetic in the ONNX model (--float64)


def export(job: ExportJob) -> tuple[NativeModel, tuple[str, ...]]:
    """Write the ONNX file; the native model with its input/output names filled, and notes. A file that
    onnxruntime will not load is refused here, before it is cached."""
    native = job.native
    module = backend_module(native.framework, native.source or native.path)
    if native.framework in EXPORTERS:
        convert = importlib.import_module(EXPORTERS[native.framework]).export_onnx
    else:
        convert = _torch if native.framework == "torch" else _keras
    filled, notes = convert(job, module)
    _check_loads(job)
    return filled, notes


def _check_loads(job: ExportJob) -> None:
    from perfkit.backends.ort import OrtBackend
    from perfkit.core.spec import Target

    try:
        with OrtBackend().open(job.dst, Target(opt_level="disable")):
            pass
    except PerfkitError as exc:
        hint = "convert without --float64: a converter here writes float32 where float64 was asked for" \
            if job.float64 else "try another --opset, or report it to the converter's project"
        raise PerfkitError(job.native.source or job.native.path,
                           f"the ONNX conversion does not load in onnxruntime ({exc.what})", hint) from None


def _onnx_outputs(path: str) -> tuple[str, ...]:
    import onnx

    return tuple(o.name for o in onnx.load(path, load_external_data=False).graph.output)


# ---- PyTorch --------------------------------------------------------------------------------------------

def _torch(job: ExportJob, tb) -> tuple[NativeModel, tuple[str, ...]]:
    import torch

    native = job.native
    model = tb.load(native)
    sample = read_sample(job.data)
    ports = tb.input_ports(model, native, job.shapes, sample)
    runnable = model.module() if native.format == "exported-program" else model
    users = _user_arrays(native, ports, sample)
    arrays = users or tb.example_arrays(ports, _example_batch(native, job.shapes), tb.index_limits(runnable, ports))
    examples = tuple(torch.from_numpy(a) for a in arrays)
    given = users is not None
    outputs, flat = _probe(tb, runnable, examples, ports, native, given)
    if not flat:  # a dict, a ModelOutput or nested tuples: both exporters want a flat tuple of tensors
        model = runnable = _flattened(tb, runnable)
    opset = job.opset or DEFAULT_OPSET
    names = [p.name for p in ports]
    notes: list[str] = []
    dynamo_error: BaseException | None = None
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    if native.format != "torchscript":
        try:
            with silenced():
                _torch_dynamo(model, examples, names, outputs, job.dst, opset,
                              static=native.format == "exported-program", wrapped=not flat)
            notes.append(f"torch.onnx dynamo exporter, opset {opset}")
        except Exception as exc:
            dynamo_error = exc
    if not notes:
        try:
            with silenced():
                _torch_legacy(runnable, examples, names, outputs, job.dst, opset, traced=not flat)
        except Exception as exc:
            raise _torch_failure(native, exc, dynamo_error, _next_step(root_cause(exc), ports, tb, given)) from None
        notes.append(f"TorchScript exporter, opset {opset}" +
                     (f" (dynamo exporter failed: {root_cause(dynamo_error, 160)})" if dynamo_error else ""))
    name_batch_dim(job.dst)
    return replace(native, inputs=ports, outputs=_onnx_outputs(job.dst)), tuple(notes)


def _example_batch(native: NativeModel, shapes: tuple[InputShape, ...]) -> int:
    """EXAMPLE_BATCH, for the dynamo exporter; a TorchScript module goes to the TorchScript exporter only, which
    keeps the batch free whatever it traces at, and a traced module may run only at the batch it was traced
    with: the one --shape gives."""
    if native.format == "torchscript" and shapes and shapes[0].dims:
        return shapes[0].dims[0]
    return EXAMPLE_BATCH


def _user_arrays(native: NativeModel, ports, sample: Any) -> list[Any] | None:
    """The user's --inputs arrays as the export's examples, where the ports came from them: a traced module may
    run only at the batch and on the values it was traced with, which random batch-2 examples miss. A batch
    under EXAMPLE_BATCH is repeated up to it for the dynamo exporter, which would pin a batch of 1; a
    TorchScript module keeps the user's batch. None where the ports are not the sample's (a torch.export
    program's own, or no .npz)."""
    import numpy as np

    if not isinstance(sample, dict) or [p.name for p in ports] != list(sample) or native.format == "exported-program":
        return None
    arrays = [np.ascontiguousarray(sample[p.name]) for p in ports]
    batch = len(arrays[0]) if arrays and arrays[0].ndim else 0
    if native.format == "torchscript" or not 0 < batch < EXAMPLE_BATCH:
        return arrays
    rows = np.arange(EXAMPLE_BATCH) % batch
    return [a.take(rows, axis=0) if a.ndim and len(a) == batch else a for a in arrays]


def _probe(tb, model, examples, ports, native: NativeModel, given: bool) -> tuple[list[str], bool]:
    """One call on the example inputs: the outputs' names, and whether they are already flat. A model that
    fails here fails before either exporter runs, so its own error is the one to show."""
    import torch

    try:
        with torch.inference_mode():
            out = model(*examples)
    except Exception as exc:
        fed = ", ".join(f"{p.name} {p.dtype} [{'x'.join(map(str, e.shape))}]"
                        for p, e in zip(ports, examples, strict=True))
        why = root_cause(exc)
        what = "your --inputs" if given else "example inputs"
        raise PerfkitError(native.source or native.path, f"it fails on {what} ({fed}): {why}",
                           _next_step(why, ports, tb, given)) from None
    return [name for name, _ in tb.named_outputs(out)], tb.is_flat(out)


def _flattened(tb, model):
    """The module with its outputs as a flat tuple of tensors, in the order (and under the names) that
    `named_outputs` gives them."""
    import torch

    class Flattened(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args):
            return tuple(t for _, t in tb.named_outputs(self.inner(*args)))

    return Flattened()


UNEXPORTED_OP = (r"Exporting the operator '?([\w:.]+)'? to ONNX opset version \d+ is not supported",
                 r"unrecognized namespace ([\w.]+::\w+)", r"[Nn]o (?:decomposition|ONNX function)\w* (?:registered )?"
                 r"for (?:target )?'?([\w.]+::\w+)")
# A root cause that says an input has the wrong element type (an id fed as float, a mask as int).
WRONG_DTYPE = re.compile(r"[Ss]calar types?|dtype|\bLong\b|FloatTensor|[Ee]xpected .{0,60} but (?:found|got)")
# An input that indexes a table (an embedding's ids): int64 whatever else the error names.
WANTS_IDS = re.compile(r"indices|Long, Int|embedding", re.IGNORECASE)
# The element types torch names in its errors (`Double`, `torch.DoubleTensor`, `torch.float64`), as --shape types.
TORCH_TYPES = {"Double": "float64", "Float": "float32", "Half": "float16", "BFloat16": "bfloat16", "Long": "int64",
               "Int": "int32", "float64": "float64", "float32": "float32", "float16": "float16",
               "bfloat16": "bfloat16", "int64": "int64", "int32": "int32"}
NAMED_TYPE = re.compile(r"\b(?:torch\.)?(Double|Float|Half|BFloat16|Long|Int)(?:Tensor)?\b|"
                        r"\btorch\.(float64|float32|float16|bfloat16|int64|int32)\b")


def _next_step(root: str, ports, tb, given: bool = False) -> str:
    """What to try after a failure with this root cause; `given`: the examples were the user's --inputs, so
    asking for them again would not help."""
    if ports and WRONG_DTYPE.search(root):
        return _dtype_step(root, ports, tb, given)
    if "index out of range" in root:
        return ("check the ids in your --inputs against the tables they index" if given else
                "give real inputs with --inputs data.npz (the example ids overran a table)")
    if given:
        return ("check the --inputs arrays against what forward takes (one per input, in its order, at the batch "
                "a traced module was traced with), or export it yourself with torch.onnx.export and bench the .onnx")
    return ("check --shape against what forward takes (one per input, in its order), give real inputs with "
            "--inputs data.npz, or export it yourself with torch.onnx.export and bench the .onnx")


def _dtype_step(root: str, ports, tb, given: bool) -> str:
    """An input fed the wrong element type: int64 for ids an embedding indexes, else the type the error names
    that was not fed (`Float and Double` for a float32 input to a float64 module is float64)."""
    fed = {p.dtype for p in ports}
    if WANTS_IDS.search(root):
        wanted: str | None = "int64"
    else:
        named = [TORCH_TYPES[a or b] for a, b in NAMED_TYPE.findall(root)]
        wanted = next((t for t in named if t not in fed), None)
    example = next((p for p in ports if tb.guessed_dtype(p.name) == "int64"), ports[0]) if wanted == "int64" \
        else next((p for p in ports if p.dtype != wanted), ports[0])
    if given:
        return (f"store {example.name} as {wanted} in the --inputs file" if wanted else
                "store each input in the --inputs file as the element type forward expects")
    dims = "x".join(str(d or 1) for d in example.shape or ())
    if wanted is None:
        return (f"give each input the element type forward expects, e.g. --shape {example.name}={dims}:DTYPE, or "
                "real inputs with --inputs data.npz")
    return (f"give each input its element type, e.g. --shape {example.name}={dims}:{wanted}, or real inputs with "
            "--inputs data.npz")


def _torch_failure(native: NativeModel, exc: BaseException, dynamo_error: BaseException | None,
                   next_step: str) -> PerfkitError:
    """One line that holds the root cause: the op that has no ONNX export when either exporter names it, else
    the first error behind what each exporter raised, and what to try next."""
    subject = native.source or native.path
    why = root_cause(exc)
    dynamo_why = root_cause(dynamo_error) if dynamo_error else ""
    for pattern in UNEXPORTED_OP:
        m = re.search(pattern, f"{why} {dynamo_why} {brief(exc, 10_000)}")
        if m:
            how = "register a symbolic for it (torch.onnx.register_custom_op_symbolic)"
            if dynamo_error:
                how += " or an ONNX translation (torch.onnx.export(..., dynamo=True, custom_translation_table=…))"
            return PerfkitError(subject, f"the op {m[1]} has no ONNX export",
                                f"replace it in the model, or {how}, export it yourself and bench the .onnx")
    said = f" (the dynamo exporter said: {dynamo_why})" if dynamo_why else ""
    return PerfkitError(subject, f"torch.onnx could not export it: {why}{said}",
                        f"try another --opset; {next_step}")


def _torch_dynamo(model, examples, names, outputs, dst: str, opset: int, *, static: bool, wrapped: bool) -> None:
    """The dynamo exporter, the batch free unless `static` (a torch.export program keeps the shapes it was
    exported with); `wrapped`: the flattening wrapper, which takes its inputs as *args."""
    import warnings

    import torch

    dynamic: Any = None if static else tuple({0: torch.export.Dim.DYNAMIC} for _ in examples)
    if dynamic and wrapped:
        dynamic = (dynamic,)  # one entry for the wrapper's *args, holding each input's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, examples, dynamo=True, input_names=names, output_names=outputs,
                                    dynamic_shapes=dynamic, opset_version=opset, verbose=False,
                                    external_data=False)
    if program is None:  # torch returns None only for its TorchScript path, never asked for here
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(dst)


def _torch_legacy(model, examples, names, outputs, dst: str, opset: int, traced: bool = False) -> None:
    """The TorchScript-based exporter; `traced`: trace the flattening wrapper first, since this exporter's own
    tracer refuses a ScriptModule called inside a plain module."""
    import warnings

    import torch

    axes = {n: {0: "batch"} for n in [*names, *outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if traced:
            model = torch.jit.trace(model, examples, strict=False, check_trace=False)
        _register_symbolics()
        torch.onnx.export(model, examples, dst, dynamo=False, input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset)


def _register_symbolics() -> None:
    """Two ops transformers' masks use, for the TorchScript exporter: aten::diff, which it lacks, and
    aten::cumsum of a bool, which it writes as a CumSum onnxruntime refuses (torch counts bools as int64).
    A causal LM (GPT-2, Llama) traced with input_ids alone takes both, in its packed-sequence check."""
    import torch

    try:
        from torch.onnx import symbolic_helper as sh
    except ImportError:  # a torch without the TorchScript exporter's helpers: its own symbolics stand
        return

    def constant(value: int) -> Any:
        return torch.tensor([value], dtype=torch.long)

    @sh.parse_args("v", "i", "i", "v", "v")
    def diff(g, x, n, dim, prepend, append):
        parts = [v for v in (prepend, x, append) if not sh._is_none(v)]
        if len(parts) > 1:
            x = g.op("Concat", *parts, axis_i=dim)
        axes = g.op("Constant", value_t=constant(dim))
        for _ in range(n):
            later = g.op("Slice", x, g.op("Constant", value_t=constant(1)),
                         g.op("Constant", value_t=constant(2**63 - 1)), axes)
            earlier = g.op("Slice", x, g.op("Constant", value_t=constant(0)), g.op("Constant", value_t=constant(-1)),
                           axes)
            x = g.op("Sub", later, earlier)
        return x

    @sh.parse_args("v", "i", "none")
    def cumsum(g, x, dim, dtype=None):
        types = sh._type_utils.JitScalarType
        if dtype is not None and not sh._is_none(dtype):
            x = g.op("Cast", x, to_i=types(sh._get_const(dtype, "i", "dtype")).onnx_type())
        elif x.type().scalarType() == "Bool":
            x = g.op("Cast", x, to_i=types.INT64.onnx_type())
        return g.op("CumSum", x, g.op("Constant", value_t=torch.tensor(dim, dtype=torch.long)))

    torch.onnx.register_custom_op_symbolic("aten::diff", diff, 11)  # 11: the opset CumSum and Slice's inputs came
    torch.onnx.register_custom_op_symbolic("aten::cumsum", cumsum, 11)


def name_batch_dim(path: str) -> None:
    """Exporters call the free batch dim `s77` or `unk__6`: call it `batch` wherever it appears first."""
    import onnx

    proto = onnx.load(path)
    ends = [*proto.graph.input, *proto.graph.output]
    firsts = {v.type.tensor_type.shape.dim[0].dim_param for v in ends if v.type.tensor_type.shape.dim}
    firsts.discard("")
    if not firsts or firsts == {"batch"}:
        return
    for value in [*ends, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in firsts:
                dim.dim_param = "batch"
    onnx.save(proto, path)


# ---- Keras / TensorFlow ---------------------------------------------------------------------------------

def _keras(job: ExportJob, kb) -> tuple[NativeModel, tuple[str, ...]]:
    native = job.native
    model = kb.load(native)
    ports = kb.input_ports(model, native, job.shapes)
    opset = job.opset or DEFAULT_OPSET
    try:
        kb.export_onnx(model, native, ports, job.dst, opset)
    except PerfkitError:
        raise
    except Exception as exc:
        why = root_cause(exc)
        raise PerfkitError(native.source or native.path, f"tf2onnx could not convert it: {why}",
                           "try another --opset, or check the layers against tf2onnx's supported ops") from None
    name_outputs(job.dst)
    name_batch_dim(job.dst)
    how = "tf2onnx from the serving signature" if native.format == "savedmodel" else "Keras export (tf2onnx)"
    return replace(native, inputs=ports, outputs=_onnx_outputs(job.dst)), (f"{how}, opset {opset}",)


def name_outputs(path: str) -> None:
    """tf2onnx names outputs after graph tensors (`Identity:0`): call them output, or output_0, output_1…"""
    import onnx

    proto = onnx.load(path)
    outs = proto.graph.output
    new = {o.name: "output" if len(outs) == 1 else f"output_{k}" for k, o in enumerate(outs)}
    taken = {n for node in proto.graph.node for n in node.output} | {i.name for i in proto.graph.input}
    if all(o.name == new[o.name] for o in outs) or any(n in taken - new.keys() for n in new.values()):
        return
    for node in proto.graph.node:
        node.output[:] = [new.get(n, n) for n in node.output]
        node.input[:] = [new.get(n, n) for n in node.input]
    for o in outs:
        o.name = new[o.name]
    onnx.save(proto, path)
