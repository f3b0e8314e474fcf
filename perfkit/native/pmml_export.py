"""PMML -> ONNX, perfkit's own converter (no maintained one exists): the document read by `files.pmml`, checked
for what perfkit converts (TreeModel, MiningModel of trees, RegressionModel, on numeric fields), folded into a
Score (`pmml_trees`, `pmml_linear`) and written by `pmml_onnx`. The input X holds the active fields as columns,
in DataDictionary order, which the JPMML backend feeds the same way."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError
from perfkit.core.model import NativeModel, Port
from perfkit.files.pmml import PmmlSchema, model_element, parse, read_schema
from perfkit.native.exporters import DEFAULT_OPSET, ExportJob
from perfkit.native.pmml_onnx import CLASSIFICATION_OUTPUTS, ML_OPSET, REGRESSION_OUTPUTS, Head, build
from perfkit.native.pmml_score import UNSUPPORTED_FIX, Context
from perfkit.native.pmml_trees import model_score

CONVERTED = ("TreeModel", "MiningModel", "RegressionModel")
NUMERIC = ("double", "float", "integer")


def export_onnx(job: ExportJob, backend: Any) -> tuple[NativeModel, tuple[str, ...]]:
    native = job.native
    subject = native.source or native.path
    root = parse(native.path)
    schema = read_schema(root, subject)
    opset = job.opset or DEFAULT_OPSET
    proto = convert_document(root, schema, subject, opset)
    Path(job.dst).write_bytes(proto.SerializeToString())
    outputs = REGRESSION_OUTPUTS if schema.function == "regression" else CLASSIFICATION_OUTPUTS
    ports = (Port("X", "float32", (None, len(schema.inputs))),)
    return replace(native, inputs=ports, outputs=outputs), notes(root, schema, proto, opset)


def convert_document(root: ET.Element, schema: PmmlSchema, subject: str, opset: int) -> Any:
    """The ONNX ModelProto of a parsed PMML document, or a PerfkitError naming what perfkit does not convert."""
    check(schema, subject)
    ctx = Context(subject, {f.name: k for k, f in enumerate(schema.inputs)},
                  frozenset(f.name for f in schema.inputs if f.data_type == "float"), schema.classes)
    try:
        score = model_score(model_element(root, subject), ctx)
    except ValueError as exc:  # an attribute that should be a number (a score, threshold, coefficient) is not
        raise PerfkitError(subject, f"the PMML holds a number that does not read as one ({exc})",
                           "write the file again with a PMML exporter (sklearn2pmml, r2pmml, jpmml-*)") from None
    return build(score, Head(schema.function, schema.classes, schema.label_type), len(schema.inputs), opset)


def check(schema: PmmlSchema, subject: str) -> None:
    """What perfkit converts, refused up front with one line."""
    def refuse(what: str) -> PerfkitError:
        return PerfkitError(subject, what, UNSUPPORTED_FIX)

    if schema.model_type not in CONVERTED:
        raise refuse(f"the PMML holds a {schema.model_type}, which perfkit does not convert")
    if schema.function not in ("regression", "classification"):
        raise refuse(f"the PMML holds a {schema.model_type} for {schema.function or 'no function'}, which perfkit "
                     "does not convert (regression and classification only)")
    if not schema.inputs:
        raise refuse("the PMML's model has no active input fields")
    for f in schema.inputs:
        if f.data_type not in NUMERIC:
            what = "is not in its DataDictionary" if not f.data_type else f"is of type {f.data_type}"
            raise refuse(f"its input field {f.name!r} {what}, which perfkit does not convert (numeric fields only)")
    if schema.function == "classification" and not schema.classes:
        raise refuse("a classification whose target's categories it does not list")
    if schema.label_type == "int64" and not all(_integral(c) for c in schema.classes):
        raise refuse(f"an integer target with the categories {', '.join(schema.classes)}")


def _integral(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def notes(root: ET.Element, schema: PmmlSchema, proto: Any, opset: int) -> tuple[str, ...]:
    """What was converted into what, the columns of X, and what the conversion does not do as JPMML does."""
    ops = sorted({n.op_type for n in proto.graph.node if n.domain == "ai.onnx.ml"}) or ["MatMul"]
    trees = sum(1 for e in root.iter() if e.tag == "TreeModel")
    what = schema.model_type + (f" of {trees} TreeModels" if schema.model_type == "MiningModel" else "")
    out = [f"perfkit's PMML converter: {what} → {', '.join(ops)}, opset {opset}, ai.onnx.ml {ML_OPSET}",
           f"X columns: {', '.join(f.name for f in schema.inputs)}"]
    if any(e.get("missingValueStrategy") not in (None, "none") or e.get("missingValueReplacement") is not None
           for e in root.iter()):
        out.append("missing values (NaN) are not handled as the PMML's missing-value strategy says: feed complete "
                   "rows")
    if any(e.get("x-mathContext") == "float" for e in root.iter()):
        out.append("JPMML computes this model in float32 (x-mathContext), the conversion in float64")
    if schema.function == "regression":
        out.append("variable is float32: JPMML's float64 values are rounded to it (a relative 6e-8 at most)")
    integers = [f.name for f in schema.inputs if f.data_type == "integer"]
    if integers:
        out.append(f"integer fields ({', '.join(integers)}) are fed as floats: give whole numbers with --inputs")
    return tuple(out)
