"""TensorFlow frozen graph (GraphDef .pb) → ONNX with tf2onnx's from_graph_def: the graph's ends as the
backend finds them, the ONNX inputs and outputs named after their ops (no `:0`), the free batch dim `batch`."""

from __future__ import annotations

from dataclasses import replace

from perfkit.backends.quiet import silenced
from perfkit.core.errors import PerfkitError, root_cause
from perfkit.core.model import NativeModel
from perfkit.files.graphdef import clean_name
from perfkit.native.exporters import DEFAULT_OPSET, ExportJob, _onnx_outputs, name_batch_dim


def export_onnx(job: ExportJob, tg) -> tuple[NativeModel, tuple[str, ...]]:
    native = job.native
    subject = native.source or native.path
    frozen = tg.load(native)
    ports = tg.input_ports(frozen, job.shapes, subject)
    ends = frozen.ends
    opset = job.opset or DEFAULT_OPSET
    with silenced(2):
        import tf2onnx
    try:
        with silenced(2):
            tf2onnx.convert.from_graph_def(
                frozen.graph_def, input_names=list(ends.inputs), output_names=list(ends.outputs), opset=opset,
                # --shape's dims reach the ONNX inputs; the graph itself is left as written
                shape_override={t: list(p.shape or ()) for t, p in zip(ends.inputs, ports, strict=True)},
                tensors_to_rename={t: clean_name(t) for t in (*ends.inputs, *ends.outputs)}, output_path=job.dst)
    except Exception as exc:
        raise PerfkitError(subject, f"tf2onnx could not convert it: {root_cause(exc)}",
                           "try another --opset, or check its ops against tf2onnx's supported list") from None
    name_batch_dim(job.dst)
    return replace(native, inputs=ports, outputs=_onnx_outputs(job.dst)), (f"tf2onnx from the GraphDef, opset {opset}",)
