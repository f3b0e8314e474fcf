"""onnxruntime's offline graph optimization at a level, saved to a file."""

from __future__ import annotations

from pathlib import Path

from perfkit.transforms import BuildContext
from perfkit.transforms.cache import weights_beside

LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def graph_optimize(src: Path, dst: Path, options: dict, ctx: BuildContext) -> list[str]:
    """Let onnxruntime optimize the graph at `level` and save what it made (CPU provider)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[options["level"]])
    so.optimized_model_filepath = str(dst)
    if weights_beside(src):
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", dst.name + ".data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    if options["level"] == "all":
        return ["layouts (NCHWc) and kernels chosen for this CPU; rebuild the file on the machine that runs it"]
    return []
