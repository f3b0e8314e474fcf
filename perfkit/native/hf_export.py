"""A Hugging Face folder -> ONNX: optimum's exporter where it is installed and fits the user's transformers (the
ecosystem's own, with its per-architecture input lists, GPT-2's position_ids among them); else torch's exporter
on the task wrapper the native row runs, with the free axes named `batch` and `sequence` as optimum names them."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, root_cause
from perfkit.core.model import NativeModel, Port
from perfkit.native.exporters import DEFAULT_OPSET, EXAMPLE_BATCH, _onnx_outputs, _register_symbolics

EXAMPLE_SEQUENCE = 8  # traced at 8 tokens: not 0 or 1, which torch.export would specialise
EXTERNAL_DATA_BYTES = 1_800_000_000  # past this the weights go to a .data file beside the model (protobuf's 2 GB)


def export_onnx(job, hb) -> tuple[NativeModel, tuple[str, ...]]:
    native = job.native
    wrapped = hb.load(native, attention="eager")  # see _torch_export; the native row keeps the default
    notes: list[str] = []
    optimum_error = _optimum(job, wrapped.task.name) if _has_optimum() else "not installed"
    if optimum_error is None:
        notes.append(f"optimum ONNX exporter, task {wrapped.task.name}, opset {job.opset or DEFAULT_OPSET}")
        ports = _onnx_ports(job.dst)
    else:
        ports = hb.input_ports(wrapped, native, job.shapes)
        how = _torch_export(job, wrapped, ports)
        notes.append(f"{how}, task {wrapped.task.name}, opset {job.opset or DEFAULT_OPSET}"
                     + ("" if optimum_error == "not installed" else f" (optimum failed: {optimum_error})"))
    name_axes(job.dst, [p.name for p in ports])
    return replace(native, inputs=ports, outputs=_onnx_outputs(job.dst)), tuple(notes)


def _has_optimum() -> bool:
    from importlib.util import find_spec

    try:
        return find_spec("optimum.exporters.onnx") is not None
    except ModuleNotFoundError:
        return False


def _optimum(job, task: str) -> str | None:
    """optimum's main_export into a scratch folder, the model moved to job.dst; None on success, else why not
    (an optimum that does not import beside this transformers, an architecture it lacks)."""
    scratch = Path(tempfile.mkdtemp(prefix="optimum-", dir=Path(job.dst).parent))
    try:
        with silenced(2), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from optimum.exporters.onnx import main_export

            main_export(job.native.path, output=scratch, task=task, opset=job.opset or DEFAULT_OPSET,
                        device="cpu", local_files_only=True, no_post_process=True, do_validation=False,
                        trust_remote_code=job.native.trusted)
        files = sorted(scratch.glob("*.onnx"))
        if len(files) != 1:
            return f"it wrote {len(files)} ONNX files"
        for data in scratch.glob("*.onnx_data"):
            shutil.move(str(data), str(Path(job.dst).parent / data.name))
        shutil.move(str(files[0]), job.dst)
        return None
    except Exception as exc:
        return root_cause(exc, 160)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _onnx_ports(path: str) -> tuple[Port, ...]:
    import onnx

    from perfkit.files.onnx_file import read_signature

    signature = read_signature(onnx.load(path, load_external_data=False))
    return tuple(Port(t.name, t.dtype, t.shape) for t in signature.inputs)


def _torch_export(job, wrapped: Any, ports: tuple[Port, ...]) -> str:
    """The TorchScript exporter on the model built with eager attention, as optimum exports it: its MatMul and
    Softmax are what onnxruntime's attention fusions match (an SDPA or dynamo graph fuses only LayerNorm and
    GELU); the dynamo exporter where that fails. Either with the batch and sequence axes free."""
    import torch

    examples = _examples(wrapped, ports)
    names, outputs = [p.name for p in ports], list(wrapped.task.outputs)
    opset = job.opset or DEFAULT_OPSET
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    axes = {p.name: {0: "batch", 1: "sequence"} if p.dtype == "int64" else {0: "batch"} for p in ports}
    text = any(p.dtype == "int64" for p in ports)
    axes.update({o: {0: "batch", 1: "sequence"} if text and wrapped.task.per_token else {0: "batch"}
                 for o in outputs})
    try:
        with silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _register_symbolics()
            torch.onnx.export(wrapped, examples, job.dst, dynamo=False, input_names=names,
                              output_names=outputs, dynamic_axes=axes, opset_version=opset)
        return "TorchScript exporter, eager attention"
    except Exception as exc:
        legacy_error = root_cause(exc, 160)
    external = sum(t.numel() * t.element_size() for t in wrapped.parameters()) > EXTERNAL_DATA_BYTES
    try:
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        dynamic = tuple({0: batch, 1: sequence} if p.dtype == "int64" else {0: batch} for p in ports)
        with silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapped, examples, dynamo=True, input_names=names, output_names=outputs,
                                        dynamic_shapes=(dynamic,), opset_version=opset, verbose=False,
                                        external_data=external)
            if program is None:  # None only from the TorchScript path, not asked for here
                raise RuntimeError("torch.onnx.export returned no program")
            program.save(job.dst, external_data=external)
    except Exception as exc:
        raise PerfkitError(job.native.source or job.native.path,
                           f"torch.onnx could not export it: {root_cause(exc)} (the TorchScript exporter said: "
                           f"{legacy_error})", "try another --opset or --task, or export it with "
                           "optimum-cli export onnx and bench the .onnx") from None
    return f"torch.onnx dynamo exporter (the TorchScript exporter failed: {legacy_error})"


def _examples(wrapped: Any, ports: tuple[Port, ...]) -> tuple[Any, ...]:
    """Seeded example inputs at batch 2, sequence 8: ids inside the vocabulary, segment ids 0 or 1, the mask
    all ones."""
    import numpy as np
    import torch

    vocab = int(getattr(wrapped.model.config, "vocab_size", 2) or 2)
    rng = np.random.default_rng(0)
    examples = []
    for p in ports:
        if p.name == "attention_mask":
            examples.append(torch.ones((EXAMPLE_BATCH, EXAMPLE_SEQUENCE), dtype=torch.int64))
        elif p.name == "position_ids":
            examples.append(torch.arange(EXAMPLE_SEQUENCE).repeat(EXAMPLE_BATCH, 1))
        elif p.dtype == "int64":
            high = 2 if p.name == "token_type_ids" else min(vocab, 1000)
            examples.append(torch.from_numpy(rng.integers(0, high, (EXAMPLE_BATCH, EXAMPLE_SEQUENCE))))
        else:
            dims = tuple(int(d) for d in (p.shape or (None,))[1:] if isinstance(d, int))
            examples.append(torch.from_numpy(rng.random((EXAMPLE_BATCH, *dims), dtype=np.float32)))
    return tuple(examples)


def name_axes(path: str, inputs: list[str]) -> None:
    """The first axis of every input `batch`, the second of token inputs `sequence`, wherever those dims appear
    (exporters call them s0, s1 or unk__6)."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    renames: dict[str, str] = {}
    for value in proto.graph.input:
        if value.name not in inputs:
            continue
        dims = value.type.tensor_type.shape.dim
        token = value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        for axis, name in ((0, "batch"), (1, "sequence")):
            if len(dims) > axis and dims[axis].dim_param and (axis == 0 or token):
                renames.setdefault(dims[axis].dim_param, name)
    if all(old == new for old, new in renames.items()):
        return
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]
    onnx.save(proto, path)
