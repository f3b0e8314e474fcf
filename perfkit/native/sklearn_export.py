"""scikit-learn -> ONNX through skl2onnx, with onnxmltools' converters for LightGBM and XGBoost steps; classifiers
give plain probability tensors (no ZipMap), and a refusal names the estimator and what the user can do."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError, root_cause
from perfkit.core.model import NativeModel, Port
from perfkit.files.data import read_sample
from perfkit.native.exporters import DEFAULT_OPSET, ExportJob, _onnx_outputs


def export_onnx(job: ExportJob, sk) -> tuple[NativeModel, tuple[str, ...]]:
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
        first = job.shapes[0]
        ports = (Port(first.name, "float32", (None, *first.dims[1:])),)
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
        raise _sklearn_failure(native, exc, [type(s).__name__ for s in sk.steps(est)]) from None
    Path(job.dst).write_bytes(onx.SerializeToString())
    outputs = _onnx_outputs(job.dst)
    notes = (f"skl2onnx, opset {opset}" + (", float64" if job.float64 else ""),)
    return replace(native, inputs=ports, outputs=outputs, columns=columns), notes


def _has_zipmap(est: Any) -> bool:
    """Whether the estimator's skl2onnx converter takes the zipmap option (LinearSVC's does not, and refuses
    it); a Pipeline passes it down to its steps."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    alias = sklearn_operator_name_map.get(type(est))
    if alias is None:
        return type(est).__name__ != "Pipeline"
    return "zipmap" in (get_converter(alias).get_allowed_options() or {"zipmap": None})


# What skl2onnx's refusals mean for the estimators that meet them, with what the user can do.
SKLEARN_FIXES = (
    ("flatten_transform", "a soft VotingClassifier converts only with flatten_transform=False: set it and save "
                          "the model again"),
    ("Only binary classification", "its converter does binary classification only: train one model per class "
                                   "(OneVsRestClassifier), or use another classifier"),
    ("Expected an int, got a boolean", "this skl2onnx writes one of its attributes wrongly for this scikit-learn: "
                                       "upgrade skl2onnx, or train GradientBoosting* (supported) instead"),
)


def _sklearn_failure(native: NativeModel, exc: Exception, names: list[str] | None = None) -> PerfkitError:
    """One line naming the estimator skl2onnx refused (and the steps inside it) and why, with a fix where one is
    known."""
    text = str(exc)
    names = names or []
    which = names[0] if len(names) == 1 else f"{names[0]} ({', '.join(names[1:])})" if names else "it"
    fix = next((f for mark, f in SKLEARN_FIXES if mark in text or mark in root_cause(exc)), None)
    if fix:
        return PerfkitError(native.source or native.path, f"skl2onnx could not convert {which}: "
                            f"{root_cause(exc)}", fix)
    m = re.search(r"(?:shape calculator|converter) for type '<class '([\w.]+)'>'", text) or \
        re.search(r"Unable to find a (?:shape calculator|converter) for model type '?([\w.]+)", text)
    if m:
        name = m[1].rsplit(".", 1)[-1]
        return PerfkitError(native.source or native.path, f"skl2onnx has no converter for {name}",
                            "replace that step with a supported one, or register a converter with "
                            "skl2onnx.update_registered_converter (see skl2onnx's list of supported models)")
    return PerfkitError(native.source or native.path, f"skl2onnx could not convert {which}: {root_cause(exc)}",
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
