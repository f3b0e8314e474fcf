"""Native -> ONNX: scikit-learn through skl2onnx (onnxmltools' converters for LightGBM and XGBoost),
PyTorch through the dynamo exporter (the TorchScript exporter when dynamo cannot), Keras and TensorFlow
through Keras 3's export or tf2onnx. The batch axis stays free; classifiers give plain probability tensors.

`export` runs in a worker: loading a trusted pickle, or a framework crashing, stays out of the parent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel, Port
from perfkit.files.data import read_sample
from perfkit.native.frameworks import backend_module

DEFAULT_OPSET = 18  # supported by every converter here and by onnxruntime ≥ 1.14
EXAMPLE_BATCH = 2  # torch.export specialises a dim traced at 0 or 1: trace the batch at 2 to keep it free


@dataclass(frozen=True)
class ExportJob:
    native: NativeModel
    dst: str
    opset: int | None = None
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --shape: input names and example shapes
    data: str | None = None  # --inputs: a sample of real inputs (.npz, .csv, .parquet)
    float64: bool = False  # scikit-learn: keep float64 arithmetic in the ONNX model (--float64)


def export(job: ExportJob) -> tuple[NativeModel, tuple[str, ...]]:
    """Write the ONNX file; the native model with its input/output names filled, and notes. A file that
    onnxruntime will not load is refused here, before it is cached."""
    native = job.native
    module = backend_module(native.framework, native.source or native.path)
    convert = {"sklearn": _sklearn, "torch": _torch}.get(native.framework, _keras)
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


# ---- scikit-learn ---------------------------------------------------------------------------------------

def _sklearn(job: ExportJob, sk) -> tuple[NativeModel, tuple[str, ...]]:
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import (
            DoubleTensorType,
            FloatTensorType,
            Int64TensorType,
            StringTensorType,
        )
    except ImportError:
        raise PerfkitError(job.native.path, "converting scikit-learn models needs skl2onnx",
                           "pip install 'perfkit[sklearn]'") from None
    from sklearn.base import is_classifier

    native = job.native
    est = sk.load(native)
    sample = read_sample(job.data)
    name = "X"
    if isinstance(sample, dict) and len(sample) == 1:
        (name, sample), = sample.items()  # one array: the input takes its name from the .npz
    ports, columns = sk.input_ports(est, sample, native.source or native.path)
    if not columns:
        ports = tuple(replace(p, name=name) for p in ports)
    if job.shapes and not columns:
        (name, shape), *_ = job.shapes
        ports = (Port(name, "float32", (None, *shape[1:])),)
    if job.float64:
        ports = tuple(replace(p, dtype="float64") if p.dtype == "float32" else p for p in ports)
    types = {"float32": FloatTensorType, "float64": DoubleTensorType, "int64": Int64TensorType,
             "string": StringTensorType}
    initial = [(p.name, types[p.dtype](list(p.shape or (None,)))) for p in ports]
    _register_boosters()
    options = {id(s): {"zipmap": False} for s in sk.steps(est) if is_classifier(s) and _has_zipmap(s)}
    opset = job.opset or DEFAULT_OPSET
    try:
        onx = convert_sklearn(est, initial_types=initial, options=options,
                              target_opset={"": opset, "ai.onnx.ml": 3})
    except Exception as exc:
        raise _sklearn_failure(native, exc) from None
    Path(job.dst).write_bytes(onx.SerializeToString())
    outputs = _onnx_outputs(job.dst)
    notes = (f"skl2onnx, opset {opset}" + (", float64" if job.float64 else ""),)
    return replace(native, inputs=ports, outputs=outputs, columns=columns), notes


def _has_zipmap(est: Any) -> bool:
    """Every classifier converter takes zipmap, except those of meta-estimators that pass it down."""
    return type(est).__name__ not in ("Pipeline",)


def _sklearn_failure(native: NativeModel, exc: Exception) -> PerfkitError:
    text = str(exc)
    m = re.search(r"(?:shape calculator|converter) for type '<class '([\w.]+)'>'", text) or \
        re.search(r"Unable to find a (?:shape calculator|converter) for model type '?([\w.]+)", text)
    if m:
        name = m[1].rsplit(".", 1)[-1]
        return PerfkitError(native.source or native.path, f"skl2onnx has no converter for {name}",
                            "replace that step with a supported one, or register a converter with "
                            "skl2onnx.update_registered_converter (see skl2onnx's list of supported models)")
    return PerfkitError(native.source or native.path, f"skl2onnx could not convert it: {brief(exc, 200)}",
                        "check the estimator against skl2onnx's supported list, or pass --debug")


def _register_boosters() -> None:
    """LightGBM and XGBoost estimators inside pipelines, with onnxmltools' converters, where installed."""
    try:
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
    except ImportError:
        return
    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor

        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm,
                                    options=classifier_options)
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor",
                                    calculate_linear_regressor_output_shapes, convert_lightgbm,
                                    options={"split": None})
    except ImportError:
        pass
    try:
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=classifier_options)
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)
    except ImportError:
        pass


# ---- PyTorch --------------------------------------------------------------------------------------------

def _torch(job: ExportJob, tb) -> tuple[NativeModel, tuple[str, ...]]:
    import torch

    native = job.native
    model = tb.load(native)
    ports = tb.input_ports(model, native, job.shapes, read_sample(job.data))
    examples = tuple(torch.from_numpy(a) for a in tb.example_arrays(ports, EXAMPLE_BATCH))
    opset = job.opset or DEFAULT_OPSET
    names = [p.name for p in ports]
    with torch.inference_mode():
        runnable = model.module() if native.format == "exported-program" else model
        count = len(torch.utils._pytree.tree_leaves(runnable(*examples)))
    outputs = ["output"] if count == 1 else [f"output_{i}" for i in range(count)]
    notes: list[str] = []
    dynamo_error = ""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    if native.format != "torchscript":
        try:
            with silenced():
                _torch_dynamo(model, examples, names, outputs, job.dst, opset)
            notes.append(f"torch.onnx dynamo exporter, opset {opset}")
        except Exception as exc:
            dynamo_error = brief(exc, 160)
    if not notes:
        if native.format == "exported-program":
            model = model.module()
        try:
            with silenced():
                _torch_legacy(model, examples, names, outputs, job.dst, opset)
        except Exception as exc:
            raise _torch_failure(native, brief(exc, 200), dynamo_error) from None
        notes.append(f"TorchScript exporter, opset {opset}" +
                     (f" (dynamo exporter failed: {dynamo_error})" if dynamo_error else ""))
    name_batch_dim(job.dst)
    return replace(native, inputs=ports, outputs=_onnx_outputs(job.dst)), tuple(notes)


UNEXPORTED_OP = (r"Exporting the operator '?([\w:.]+)'? to ONNX opset version \d+ is not supported",
                 r"unrecognized namespace ([\w.]+::\w+)", r"[Nn]o (?:decomposition|ONNX function)\w* (?:registered )?"
                 r"for (?:target )?'?([\w.]+::\w+)")


def _torch_failure(native: NativeModel, why: str, dynamo_error: str) -> PerfkitError:
    """One line: the op that has no ONNX export when either exporter names it, else what they said."""
    for pattern in UNEXPORTED_OP:
        m = re.search(pattern, f"{why} {dynamo_error}")
        if m:
            return PerfkitError(native.source or native.path, f"the op {m[1]} has no ONNX export",
                                "replace it in the model, or register an ONNX translation for it "
                                "(torch.onnx.export(..., custom_translation_table=…)) and export it yourself")
    return PerfkitError(native.source or native.path, f"torch.onnx could not export it: {why}",
                        "try another --opset, or replace the failing op" +
                        (f" (the dynamo exporter said: {dynamo_error})" if dynamo_error else ""))


def _torch_dynamo(model, examples, names, outputs, dst: str, opset: int) -> None:
    import warnings

    import torch

    static = getattr(model, "graph_signature", None) is not None  # an ExportedProgram keeps its own shapes
    dynamic = None if static else tuple({0: torch.export.Dim.DYNAMIC} for _ in examples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, examples, dynamo=True, input_names=names, output_names=outputs,
                                    dynamic_shapes=dynamic, opset_version=opset, verbose=False,
                                    external_data=False)
    if program is None:  # torch returns None only for its TorchScript path, never asked for here
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(dst)


def _torch_legacy(model, examples, names, outputs, dst: str, opset: int) -> None:
    import warnings

    import torch

    axes = {n: {0: "batch"} for n in [*names, *outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, examples, dst, dynamo=False, input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset)


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
        why = brief(exc, 200)
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
