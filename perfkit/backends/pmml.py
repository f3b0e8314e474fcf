"""PMML run by JPMML (the `jpmml_evaluator` package: its jars run on the machine's Java through JPype, else
PyJNIus): a batch scored by evaluateAll, its columns mapped to the outputs of perfkit's conversion — `variable`
for a regression, `label` and `probabilities` (in the conversion's class order) for a classification."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfkit.backends import Closing
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel
from perfkit.core.spec import Target
from perfkit.files.pmml import PmmlSchema, parse_bytes, read_schema, with_probability_outputs

NO_JAVA = ("no Java runtime found, which JPMML needs", "install one (e.g. openjdk-17-jre-headless) or set JAVA_HOME")
NO_BRIDGE = ("neither JPype nor PyJNIus is installed, which JPMML needs", "pip install 'perfkit[pmml]'")
BRIDGES = ("jpype", "pyjnius")  # the jpmml_evaluator backends that run the jars in this process, in preference


def missing() -> str | None:
    try:
        import jpmml_evaluator  # noqa: F401
    except ImportError:
        return "jpmml_evaluator"
    return None


def bridge() -> str | None:
    """The Python-Java bridge to use: JPype where installed, else PyJNIus."""
    from importlib.util import find_spec

    return next((b for b, module in zip(BRIDGES, ("jpype", "jnius"), strict=True) if find_spec(module)), None)


def java_missing() -> tuple[str, str] | None:
    """(why no JVM can start here, what to do), found without starting one; None where one can."""
    which = bridge()
    if which is None:
        return NO_BRIDGE
    if which == "jpype":
        import jpype

        try:
            jpype.getDefaultJVMPath()
        except Exception:  # JVMNotFoundException, or a JAVA_HOME that points at no JVM
            return NO_JAVA
        return None
    return None if os.environ.get("JAVA_HOME") or shutil.which("java") else NO_JAVA


def load(native: NativeModel) -> tuple[Any, PmmlSchema]:
    """(the JPMML evaluator, the document's schema). Classes whose probability the document does not ask for
    are added to its outputs, so that every probability the conversion gives is compared."""
    subject = native.source or native.path
    reason = java_missing()
    if reason:
        raise PerfkitError(subject, *reason)
    from jpmml_evaluator import make_evaluator

    if bridge() == "jpype":
        import jpmml_evaluator.jpype  # noqa: F401  (installs JPype's import hook, narrowed next)

        _narrow_java_imports()
    data = Path(native.path).read_bytes()
    schema = read_schema(parse_bytes(data, subject), subject)
    try:
        evaluator = make_evaluator(with_probability_outputs(data, schema, subject), backend=bridge() or "jpype")
        evaluator.verify()
    except Exception as exc:
        raise PerfkitError(subject, f"JPMML could not load it ({brief(exc)})",
                           "check the file with JPMML's own tools, or export the model to PMML again") from None
    return evaluator, schema


JAVA_ROOTS = ("java", "org")  # the packages jpmml_evaluator loads its classes from, by Python import


class _JavaImportsOnly:
    """JPype's import hook answering for java.* and org.* only."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.partition(".")[0] not in JAVA_ROOTS:
            return None
        return self.hook.find_spec(name, path, target)


def _narrow_java_imports() -> None:
    """JPype's import hook (jpmml_evaluator's JPype backend installs it) turns any top-level import Python cannot
    find into a Java package where the JVM has one of that name, so an optional `import dill` anywhere else in
    the process gets a Java package instead of an ImportError."""
    for k, finder in enumerate(sys.meta_path):
        if type(finder).__name__ == "_JImportLoader":
            sys.meta_path[k] = _JavaImportsOnly(finder)


class PmmlBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if target.device != "cpu":
            return f"JPMML runs on the CPU only, not {target.device}"
        if missing():
            return f"{missing()} is not installed — pip install 'perfkit[pmml]'"
        reason = java_missing()
        return " — ".join(reason) if reason else None

    def open(self, native: NativeModel, target: Target) -> PmmlSession:
        evaluator, schema = load(native)
        return PmmlSession(evaluator, schema, native, target)


class PmmlSession(Closing):
    def __init__(self, evaluator: Any, schema: PmmlSchema, native: NativeModel, target: Target) -> None:
        from importlib.metadata import version

        self._evaluator, self._schema = evaluator, schema
        self._columns = [f.name for f in schema.inputs]
        self._input = native.inputs[0].name if native.inputs else "X"
        self._target = evaluator.getTargetFields()[0].getName()
        self._labels = _label_lookup(schema) if schema.function == "classification" else {}
        self._parallelism = target.threads or -1  # -1: JPMML's default, a parallel stream on the common pool
        self.output_names = native.outputs
        self.providers = ("jpmml:cpu",)
        self.settings = {"requested": "jpmml:cpu", "jpmml_evaluator": version("jpmml_evaluator"),
                         "bridge": bridge() or "", "threads": str(target.threads) if target.threads
                         else "JPMML's own (Java's common fork-join pool)",
                         "timed": "evaluateAll on a DataFrame, outputs to arrays"}

    def prepare(self, feed: dict[str, Any]) -> Any:
        """The rows of X as a DataFrame of the active fields, float64 (the values the ONNX model gets)."""
        import numpy as np
        import pandas as pd

        x = np.asarray(feed[self._input], dtype=np.float64)
        return pd.DataFrame(x, columns=self._columns)

    def run(self, prepared: Any) -> list[Any]:
        import numpy as np

        results = self._evaluator.evaluateAll(prepared, parallelism=self._parallelism)
        errors = results.get("errors")
        if errors is not None and errors.notna().any():
            raise RuntimeError(f"JPMML could not score a row: {errors[errors.notna()].iloc[0]}")
        target = results[self._target]
        if self._schema.function == "regression":
            return [np.asarray(target, dtype=np.float64).reshape(-1, 1)]
        labels = [self._labels.get(_key(v), str(v)) for v in target]
        label = np.asarray([int(float(v)) for v in labels], dtype=np.int64) \
            if self._schema.label_type == "int64" else np.asarray(labels, dtype=object)
        probabilities = np.stack([np.asarray(results[c], dtype=np.float64) for c in self._schema.probability_columns],
                                 axis=1)
        return [label, probabilities][:len(self.output_names)]

    def bind(self, prepared: Any) -> Callable[[], Any]:
        def call() -> Any:
            return self.run(prepared)

        return call

    def close(self) -> None:
        self._evaluator = None  # the JVM stays: JPype cannot start a second one in this process


def _label_lookup(schema: PmmlSchema) -> dict[Any, str]:
    """JPMML's label values (int, float, bool, str) -> the category as the document spells it."""
    return {_key(c): c for c in schema.classes}


def _key(value: Any) -> Any:
    """One key for a category however it comes: 1, 1.0 and "1" alike; True and "true" alike."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    text = str(value)
    try:
        return float(text)
    except ValueError:
        return text.lower() if text.lower() in ("true", "false") else text
