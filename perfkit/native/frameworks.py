"""The native frameworks perfkit runs: their names, the suffixes their files carry, the extra that installs
each, and its backend module, or one line saying what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from perfkit.core.errors import PerfkitError

FRAMEWORK_NAMES = {"sklearn": "scikit-learn", "torch": "PyTorch", "keras": "Keras/TensorFlow",
                   "hf": "Hugging Face transformers", "tfgraph": "TensorFlow", "spark": "Spark ML",
                   "pmml": "PMML (JPMML)"}
EXTRAS = {"sklearn": "perfkit[sklearn]", "torch": "perfkit[torch]", "keras": "perfkit[tensorflow]",
          "hf": "perfkit[hf]", "tfgraph": "perfkit[tensorflow]", "spark": "perfkit[spark]", "pmml": "perfkit[pmml]"}
NEEDS = {"sklearn": ("sklearn", "skl2onnx"), "torch": ("torch",), "keras": ("keras", "tensorflow", "tf2onnx"),
         "hf": ("torch", "transformers", "onnxscript"), "tfgraph": ("tensorflow", "tf2onnx"),
         "spark": ("pyspark", "onnxmltools"), "pmml": ("jpmml_evaluator",)}
# What opening a session costs before its first call: said on the progress line that waits for it.
STARTUP = {"spark": "starting a local Spark session (30–45 s)"}
SKLEARN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".skops")
TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".bin")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def backend_module(framework: str, subject: str) -> ModuleType:
    """The framework's backend module, or one line saying which extra to install."""
    module = importlib.import_module(f"perfkit.backends.{framework}")
    missing = module.missing()
    if missing:
        raise PerfkitError(subject, f"a {FRAMEWORK_NAMES[framework]} model needs {missing}, which is not installed",
                           f"pip install '{EXTRAS[framework]}'")
    return module


def installed(framework: str) -> tuple[bool, str]:
    """(every package `perfkit inspect` needs for it is importable, the missing ones), found without importing."""
    from importlib.util import find_spec

    missing = [m for m in NEEDS[framework] if find_spec(m) is None]
    return not missing, ", ".join(missing)


def startup_note(framework: str | None) -> str:
    """What a progress line adds for a framework slow to open (the JVM of Spark), else nothing."""
    return f" — {STARTUP[framework]}" if framework in STARTUP else ""
