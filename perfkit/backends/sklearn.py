"""scikit-learn (and LightGBM / XGBoost estimators in it): load a pickle, joblib or skops file, find its
input signature, and run it on the feeds made for its ONNX conversion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from perfkit.backends import Closing
from perfkit.core.errors import PerfkitError
from perfkit.core.model import NativeModel, Port
from perfkit.core.spec import Target
from perfkit.files.trust import require_trust, trusted, user_code_importable


def missing() -> str | None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "scikit-learn"
    return None


def load(native: NativeModel) -> Any:
    if native.format == "skops":
        return _load_skops(native)
    require_trust(native.path, native.trusted, "this scikit-learn file", native.source or None)
    import joblib

    user_code_importable()
    try:
        est = joblib.load(native.path)  # reads plain pickles too
    except ModuleNotFoundError as exc:
        raise PerfkitError(native.path, f"the pickle needs the package '{exc.name}', which is not installed",
                           "install the package (and version) that saved the model") from None
    except Exception as exc:
        raise PerfkitError(native.path, f"could not be unpickled ({type(exc).__name__}: {exc})",
                           "save it again with joblib.dump in this environment's versions") from None
    return _estimator(est, native)


def _estimator(est: Any, native: NativeModel) -> Any:
    if not hasattr(est, "fit") or not any(hasattr(est, m) for m in ("predict", "transform")):
        raise PerfkitError(native.source or native.path, f"holds a {type(est).__name__}, not a fitted scikit-learn "
                           "estimator", "save the fitted estimator or pipeline itself with joblib.dump")
    return est


def _load_skops(native: NativeModel) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise PerfkitError(native.path, "a .skops file needs the skops package", "pip install skops") from None
    try:
        untrusted = sio.get_untrusted_types(file=native.path)
    except Exception as exc:
        raise PerfkitError(native.path, f"not a readable skops file ({type(exc).__name__})",
                           "save it again with skops.io.dump") from None
    if untrusted and not trusted(native.trusted):
        raise PerfkitError(native.source or native.path,
                           f"the skops file holds types skops does not trust by default: {', '.join(untrusted)}",
                           "pass --trust (or PERFKIT_TRUST=1) only if you trust where the file came from")
    return _estimator(sio.load(native.path, trusted=untrusted or None), native)


def estimator_kind(est: Any) -> str:
    from sklearn.base import is_classifier, is_outlier_detector, is_regressor

    if is_classifier(est):
        return "classifier"
    if is_regressor(est):
        return "regressor"
    if is_outlier_detector(est):
        return "outlier"  # IsolationForest: a label (-1/1) and its score, no transform
    if hasattr(est, "predict") and hasattr(est, "transform"):
        return "clusterer"  # KMeans: a label and the distances
    if hasattr(est, "predict") and hasattr(est, "predict_proba"):
        return "mixture"  # GaussianMixture: a component and each component's probability, no transform
    return "transformer"


# Outlier detectors whose skl2onnx converter writes label and score as (N,), where the others write (N, 1).
FLAT_OUTLIERS = ("SGDOneClassSVM",)


def final_step(est: Any) -> Any:
    """The estimator at the end of a pipeline (the estimator itself when it is none)."""
    while getattr(est, "steps", None):
        est = est.steps[-1][1]
    return est


def steps(est: Any) -> list[Any]:
    """Every estimator inside pipelines, column transformers and unions, the outer one first."""
    out, todo = [], [est]
    while todo:
        e = todo.pop(0)
        out.append(e)
        for attr in ("steps", "transformer_list"):
            todo += [s for _, s in getattr(e, attr, ()) if hasattr(s, "fit")]
        for _, s, *_ in getattr(e, "transformers_", getattr(e, "transformers", ())):
            if hasattr(s, "fit"):
                todo.append(s)
    return out


def input_ports(est: Any, data: Any | None, subject: str) -> tuple[tuple[Port, ...], bool]:
    """(ONNX inputs, fed as DataFrame columns?). A model fitted on a DataFrame whose steps pick columns by
    name gets one input per column, typed from the user's data (or float32 without it); otherwise one
    float32 input X of n_features_in_ columns."""
    import numpy as np

    found = getattr(est, "feature_names_in_", None)
    names: list[Any] = [] if found is None else list(found)
    needs_columns = found is not None and any(type(s).__name__ == "ColumnTransformer" for s in steps(est))
    if data is not None and hasattr(data, "columns") and needs_columns:
        return tuple(Port(str(c), _column_dtype(data[c]), (None, 1)) for c in names), True
    if needs_columns:
        encoders = [type(s).__name__ for s in steps(est) if "Encoder" in type(s).__name__]
        if encoders:
            raise PerfkitError(subject, f"its columns are picked by name and encoded ({', '.join(encoders)}), "
                               "so their types cannot be guessed",
                               "give a sample of real rows with --inputs data.csv (or .parquet)")
        return tuple(Port(str(c), "float32", (None, 1)) for c in names), True
    n = getattr(est, "n_features_in_", None)
    if n is None and data is not None:
        n = np.asarray(data).shape[1]
    if n is None:
        raise PerfkitError(subject, "the model does not say how many features it takes (no n_features_in_)",
                           "give a sample with --inputs data.npz or --shape X=1xN")
    return (Port("X", "float32", (None, int(n))),), False


def _column_dtype(column: Any) -> str:
    kind = column.dtype.kind
    if kind == "f":
        return "float32"
    if kind in "iub":
        return "int64"
    return "string"


def output_methods(est: Any, count: int) -> list[str]:
    """The native method behind each ONNX output, in order: skl2onnx writes label then probabilities for a
    classifier, one `variable` for a regressor or transformer, label then scores for a clusterer."""
    kind = estimator_kind(est)
    if kind == "classifier":
        return ["predict", "predict_proba" if hasattr(est, "predict_proba") else "decision_function"][:count]
    if kind == "mixture":
        return ["predict", "predict_proba"][:count]
    if kind == "clusterer":
        return ["predict", "transform"][:count]
    if kind == "outlier":
        return ["predict", "decision_function"][:count]
    return ["predict" if kind == "regressor" else "transform"][:count]


class SklearnBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if target.device != "cpu":
            return f"scikit-learn runs on the CPU only, not {target.device}"
        return f"{missing()} is not installed — pip install 'perfkit[sklearn]'" if missing() else None

    def open(self, native: NativeModel, target: Target) -> SklearnSession:
        return SklearnSession(load(native), native, target)


class SklearnSession(Closing):
    def __init__(self, est: Any, native: NativeModel, target: Target) -> None:
        import sklearn

        self._est, self._native = est, native
        self._methods = [getattr(est, m) for m in output_methods(est, len(native.outputs))]
        self.output_names = native.outputs[:len(self._methods)]
        self.providers = ("sklearn",)
        names = [m.__name__ for m in self._methods]
        self._one_pass = names == ["predict", "predict_proba"]
        self._kind = estimator_kind(est)
        # Which outputs stay (N,) as skl2onnx writes them; the others are (N, k), a column vector when k is 1.
        self._flat = [(m.__name__ == "predict" and self._kind in ("classifier", "clusterer")) or
                      type(final_step(est)).__name__ in FLAT_OUTLIERS for m in self._methods]
        self._dtype: Any = None  # what float rows are fed as: float64 (sklearn's own), or what it was fitted on
        self.settings = {"requested": "sklearn", "scikit-learn": sklearn.__version__,
                         "threads": "estimator's own (n_jobs)",
                         "timed": "predict_proba + argmax" if self._one_pass else " + ".join(names)}
        if target.threads is not None:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(target.threads)  # BLAS and OpenMP inside the estimators
            self.settings["threads"] = str(target.threads)

    def prepare(self, feed: dict[str, Any]) -> Any:
        """The same values the ONNX model gets, as the native model takes them: float64 rows (sklearn's own
        precision) or a DataFrame of the columns."""
        import numpy as np

        if self._native.columns:
            import pandas as pd

            return pd.DataFrame({p.name: _column(feed[p.name]) for p in self._native.inputs})
        x = feed[self._native.inputs[0].name]
        if x.dtype != np.float32:
            return x
        if self._dtype is None:  # fitted on float32 (KMeans keeps its centers so): its Cython wants float32 back
            try:
                self._methods[0](x[:1].astype(np.float64))
                self._dtype = np.float64
            except ValueError as exc:
                if "dtype" not in str(exc):
                    raise
                self._dtype = np.float32
        return x.astype(self._dtype)

    def run(self, prepared: Any) -> list[Any]:
        """Each output as the ONNX model gives it: a classifier's or clusterer's labels (N,), probabilities and
        transforms (N, k) (a sparse transform dense), a regressor's values, a mixture's component and an outlier
        detector's label and score (N, 1), except where its converter writes (N,) (FLAT_OUTLIERS)."""
        import numpy as np

        out = []
        for method, flat in zip(self._methods, self._flat, strict=True):
            value = method(prepared)
            value = np.asarray(value.toarray() if hasattr(value, "toarray") else value)  # sparse: as ONNX, dense
            out.append(value.reshape(len(value), -1) if value.ndim == 1 and not flat else value)
        return out

    def bind(self, prepared: Any) -> Callable[[], Any]:
        """The timed call: one pass, as the ONNX model makes one. A classifier's probabilities, with labels by
        argmax — not predict() and predict_proba() one after the other, which would count the work twice."""
        methods = self._methods
        if self._one_pass:
            # a mixture's components are numbered, a classifier's classes named
            proba, classes = methods[1], getattr(self._est, "classes_", None)

            def one_pass() -> Any:
                p = proba(prepared)
                best = p.argmax(axis=1)
                return (best if classes is None else classes.take(best)), p

            return one_pass

        def call() -> Any:
            return [m(prepared) for m in methods]

        return call

    def close(self) -> None:
        self._est, self._methods = None, []
        limits = getattr(self, "_limits", None)
        if limits is not None:
            limits.unregister()


def _column(values: Any) -> Any:
    import numpy as np

    flat = np.asarray(values).reshape(-1)
    return flat.astype(object) if flat.dtype.kind in "OSU" else flat
