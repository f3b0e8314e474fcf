"""scikit-learn models: loaded (trusted), converted with skl2onnx, run natively beside the conversion."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402
from perfkit.native.conversion import convert
from perfkit.native.detect import prepare_native


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.random((200, 5))
    return x, (x[:, 0] + x[:, 1] > 1).astype(int)


@pytest.fixture
def classifier(tmp_path, data) -> str:
    path = tmp_path / "clf.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(*data), path)
    return str(path)


def test_a_pipeline_classifier_converts_with_labels_and_plain_probabilities(tmp_path, classifier):
    lines, parity = run_convert(classifier, str(tmp_path / "clf.onnx"), trust=True, batch=32,
                                cache_dir=str(tmp_path / "c"), isolate=False)
    import onnx

    proto = onnx.load(str(tmp_path / "clf.onnx"))
    assert [o.name for o in proto.graph.output] == ["label", "probabilities"]
    assert "ZipMap" not in {n.op_type for n in proto.graph.node}  # tensors, not a list of maps
    assert parity.ok, lines
    by_name = {a.name: a for a in parity.outputs}
    assert by_name["label"].agree == 1.0
    assert by_name["probabilities"].max_abs <= 1e-5
    assert parity.rows == 4 * 32
    assert any(line.startswith("parity: ok") for line in lines)


def test_a_regressor_gives_one_column_per_item(tmp_path, data):
    path = tmp_path / "reg.pkl"
    joblib.dump(RandomForestRegressor(n_estimators=4, random_state=0).fit(data[0], data[0][:, 2]), path)
    _, parity = run_convert(str(path), str(tmp_path / "reg.onnx"), trust=True, cache_dir=str(tmp_path / "c"),
                            isolate=False)
    (out,) = parity.outputs
    assert out.name == "variable" and out.comparable and out.max_abs < 1e-5


def test_a_dataframe_pipeline_takes_one_input_per_column_typed_from_the_sample(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"age": rng.random(80) * 80, "city": rng.choice(["oslo", "rome", "lima"], 80)})
    labels = (frame["age"] > 40).astype(int)
    model = Pipeline([("columns", ColumnTransformer([("num", StandardScaler(), ["age"]),
                                                     ("cat", OneHotEncoder(), ["city"])])),
                      ("clf", LogisticRegression())]).fit(frame, labels)
    joblib.dump(model, tmp_path / "df.joblib")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(PerfkitError, match="cannot be guessed"):  # strings cannot be synthesised
        run_convert(str(tmp_path / "df.joblib"), str(tmp_path / "x.onnx"), trust=True, isolate=False,
                    cache_dir=str(tmp_path / "c"))
    lines, parity = run_convert(str(tmp_path / "df.joblib"), str(tmp_path / "df.onnx"), trust=True,
                                inputs=str(tmp_path / "rows.csv"), cache_dir=str(tmp_path / "c"), isolate=False)
    assert "age float32 [N, 1], city string [N, 1]" in lines[1]
    assert parity.ok and parity.rows == 80


def test_an_untrusted_pickle_is_refused_naming_its_imports(tmp_path, classifier, monkeypatch):
    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    with pytest.raises(PerfkitError) as err:
        prepare_native(classifier, False, None)
    assert "sklearn.linear_model._logistic.LogisticRegression" in err.value.what
    assert "--trust" in err.value.fix


def test_skops_files_load_without_trust_when_every_type_is_trusted_by_skops(tmp_path, data):
    sio = pytest.importorskip("skops.io")
    sio.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(*data), tmp_path / "m.skops")
    _, parity = run_convert(str(tmp_path / "m.skops"), str(tmp_path / "m.onnx"), cache_dir=str(tmp_path / "c"),
                            isolate=False)
    assert parity.ok


def test_an_estimator_without_a_converter_is_named(tmp_path, data):
    from tests.sk_custom import Majority

    joblib.dump(Majority().fit(*data), tmp_path / "custom.pkl")
    with pytest.raises(PerfkitError) as err:
        run_convert(str(tmp_path / "custom.pkl"), str(tmp_path / "c.onnx"), trust=True, isolate=False,
                    cache_dir=str(tmp_path / "c"))
    assert "no converter for Majority" in err.value.what
    assert "update_registered_converter" in err.value.fix
    assert not (tmp_path / "c.onnx").exists()  # nothing half-written


def test_float64_to_float32_changes_are_warned_with_the_step_that_causes_them(tmp_path):
    rng = np.random.default_rng(2)
    # Features around 1e7 with unit spread: float32 keeps no digits after the point, so (x - mean) / scale
    # loses about one unit in float32; scikit-learn in float64 does not.
    x = 1e7 + rng.standard_normal((100, 3))
    joblib.dump(StandardScaler().fit(x), tmp_path / "scaler.pkl")
    np.savez(tmp_path / "rows.npz", X=(1e7 + rng.standard_normal((64, 3))).astype(np.float32))
    lines, parity = run_convert(str(tmp_path / "scaler.pkl"), str(tmp_path / "s.onnx"), trust=True,
                                inputs=str(tmp_path / "rows.npz"), cache_dir=str(tmp_path / "c"), isolate=False)
    assert not parity.ok
    assert parity.warnings and "StandardScaler (divides by the feature's scale)" in parity.warnings[0]
    assert any(line.startswith("parity: OFF") for line in lines)
    # Keeping float64 in the ONNX model removes the difference.
    np.savez(tmp_path / "rows64.npz", X=np.load(tmp_path / "rows.npz")["X"].astype(np.float64))
    _, exact = run_convert(str(tmp_path / "scaler.pkl"), str(tmp_path / "s64.onnx"), trust=True, float64=True,
                           inputs=str(tmp_path / "rows64.npz"), cache_dir=str(tmp_path / "c"), isolate=False)
    assert exact.ok, exact.outputs


def test_the_conversion_is_cached_by_content_and_options(tmp_path, classifier):
    native = prepare_native(classifier, True, None)
    first = convert(native, cache_dir=str(tmp_path / "c"), isolate=False)
    again = convert(native, cache_dir=str(tmp_path / "c"), isolate=False)
    other = convert(native, cache_dir=str(tmp_path / "c"), opset=17, isolate=False)
    assert not first.cached and again.cached and not other.cached
    assert again.onnx_path == first.onnx_path != other.onnx_path
    assert again.native.outputs == ("label", "probabilities")


def test_the_timed_call_is_one_pass_of_predict_proba_with_the_same_labels(tmp_path, data):
    from perfkit.backends.sklearn import SklearnBackend
    from perfkit.core.spec import Target

    path = tmp_path / "rf.joblib"
    from sklearn.ensemble import RandomForestClassifier

    joblib.dump(RandomForestClassifier(n_estimators=5, random_state=0).fit(*data), path)
    native = convert(prepare_native(str(path), True, None), cache_dir=str(tmp_path / "c"), isolate=False).native
    session = SklearnBackend().open(native, Target("sklearn", "cpu", threads=1))
    feed = {"X": data[0][:20].astype(np.float32)}
    prepared = session.prepare(feed)
    labels, proba = session.bind(prepared)()
    expected_labels, expected_proba = session.run(prepared)
    assert session.settings["timed"] == "predict_proba + argmax" and session.settings["threads"] == "1"
    assert (labels == expected_labels).all() and np.allclose(proba, expected_proba)
    session.close()


def test_a_single_array_sample_names_the_input(tmp_path, classifier, data):
    np.savez(tmp_path / "rows.npz", features=data[0][:10].astype(np.float32))
    lines, parity = run_convert(classifier, str(tmp_path / "m.onnx"), trust=True, inputs=str(tmp_path / "rows.npz"),
                                cache_dir=str(tmp_path / "c"), isolate=False)
    assert "features float32 [N, 5]" in lines[1] and parity.ok


@pytest.mark.parametrize("content, what", [(b"\x80\x04K\x01.", "not a readable"), (b"a,b\n1,2\n", "the model wants")])
def test_bad_samples_get_one_line(tmp_path, classifier, content, what):
    name = "rows.npy" if content.startswith(b"\x80") else "rows.csv"
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PerfkitError, match=what):
        run_convert(classifier, str(tmp_path / "m.onnx"), trust=True, inputs=str(tmp_path / name),
                    cache_dir=str(tmp_path / "c"), isolate=False)
    assert not (tmp_path / "m.onnx").exists()


def test_a_single_npy_sample_feeds_the_one_input(tmp_path, classifier, data):
    np.save(tmp_path / "rows.npy", data[0][:12].astype(np.float32))
    _, parity = run_convert(classifier, str(tmp_path / "m.onnx"), trust=True, inputs=str(tmp_path / "rows.npy"),
                            cache_dir=str(tmp_path / "c"), isolate=False)
    assert parity.ok and parity.rows == 12


def test_a_pickle_that_is_not_an_estimator_says_so(tmp_path):
    import pickle

    (tmp_path / "d.pkl").write_bytes(pickle.dumps({"coef": [1.0, 2.0]}))
    with pytest.raises(PerfkitError, match="holds a dict, not a fitted scikit-learn estimator"):
        run_convert(str(tmp_path / "d.pkl"), str(tmp_path / "d.onnx"), trust=True, isolate=False,
                    cache_dir=str(tmp_path / "c"))


@pytest.mark.parametrize("booster", ["lightgbm", "xgboost"])
def test_boosters_in_a_pipeline_convert_through_onnxmltools(tmp_path, data, booster):
    pytest.importorskip("onnxmltools")
    if booster == "lightgbm":
        lightgbm = pytest.importorskip("lightgbm")
        model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1)
    else:
        xgboost = pytest.importorskip("xgboost")
        model = xgboost.XGBClassifier(n_estimators=10)
    x = data[0].astype(np.float32)  # the booster sees float32 values, as the ONNX model will
    joblib.dump(make_pipeline(model).fit(x, data[1]), tmp_path / "b.joblib")
    np.savez(tmp_path / "rows.npz", X=x)
    lines, parity = run_convert(str(tmp_path / "b.joblib"), str(tmp_path / "b.onnx"), trust=True,
                                inputs=str(tmp_path / "rows.npz"), cache_dir=str(tmp_path / "c"), isolate=False)
    assert parity.ok, lines
    assert {a.name: a for a in parity.outputs}["label"].agree == 1.0 and parity.rows == 200


def test_a_converter_that_cannot_do_float64_is_refused_before_caching_and_not_suggested(tmp_path, data):
    xgboost = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    joblib.dump(make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=10)).fit(*data),
                tmp_path / "b.joblib")
    np.savez(tmp_path / "rows.npz", X=data[0].astype(np.float32))
    lines, parity = run_convert(str(tmp_path / "b.joblib"), str(tmp_path / "b.onnx"), trust=True,
                                inputs=str(tmp_path / "rows.npz"), cache_dir=str(tmp_path / "c"), isolate=False)
    # The scaler's float32 rounding moves an item or two across a split: said, naming the cause, with no false fix.
    assert not parity.ok and {a.name: a for a in parity.outputs}["label"].agree >= 0.95
    assert "StandardScaler" in parity.warnings[0] and "--float64 cannot help" in parity.warnings[0]
    np.savez(tmp_path / "rows64.npz", X=data[0])
    with pytest.raises(PerfkitError, match="does not load in onnxruntime") as err:
        run_convert(str(tmp_path / "b.joblib"), str(tmp_path / "b64.onnx"), trust=True, float64=True,
                    inputs=str(tmp_path / "rows64.npz"), cache_dir=str(tmp_path / "c"), isolate=False)
    assert "without --float64" in err.value.fix and err.value.subject.endswith("b.joblib")
    assert not list((tmp_path / "c" / "exports").glob("*/model.onnx"))[1:]  # only the float32 entry is cached


def test_a_clusterer_fitted_on_float32_and_an_outlier_detector_run_natively_with_parity(tmp_path):
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest

    x = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)  # KMeans keeps float32 centers
    joblib.dump(make_pipeline(StandardScaler(), KMeans(4, n_init=2, random_state=0)).fit(x), tmp_path / "km.joblib")
    joblib.dump(IsolationForest(n_estimators=20, random_state=0).fit(x), tmp_path / "iso.joblib")
    for name in ("km", "iso"):
        lines, parity = run_convert(str(tmp_path / f"{name}.joblib"), str(tmp_path / f"{name}.onnx"), trust=True,
                                    cache_dir=str(tmp_path / "c"), isolate=False)
        assert parity.ok, lines
    _, iso = run_convert(str(tmp_path / "iso.joblib"), str(tmp_path / "iso2.onnx"), trust=True,
                         cache_dir=str(tmp_path / "c"), isolate=False)
    assert [o.name for o in iso.outputs] == ["label", "scores"] and iso.outputs[0].max_abs == 0


@pytest.mark.parametrize(("make", "message"), [
    (lambda: __import__("sklearn.ensemble", fromlist=["VotingClassifier"]).VotingClassifier(
        [("a", LogisticRegression()), ("b", LogisticRegression(C=0.5))], voting="soft"),
     r"skl2onnx could not convert VotingClassifier: .*flatten_transform.* "
     r"— a soft VotingClassifier converts only with flatten_transform=False"),
    (lambda: __import__("sklearn.gaussian_process", fromlist=["x"]).GaussianProcessClassifier(),
     r"skl2onnx could not convert GaussianProcessClassifier: .*binary.* — its converter does binary classification"),
])
def test_a_refused_estimator_is_named_with_the_fix(tmp_path, make, message):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    joblib.dump(make().fit(x, y), tmp_path / "m.joblib")
    with pytest.raises(PerfkitError, match=message):
        run_convert(str(tmp_path / "m.joblib"), str(tmp_path / "m.onnx"), trust=True, cache_dir=str(tmp_path / "c"),
                    isolate=False)


def _converted(tmp_path, name, est, **options):
    joblib.dump(est, tmp_path / f"{name}.joblib")
    return run_convert(str(tmp_path / f"{name}.joblib"), str(tmp_path / f"{name}.onnx"), trust=True, batch=16,
                       cache_dir=str(tmp_path / "c"), isolate=False, **options)


def _timed(tmp_path, name) -> str:
    """What the native row times for a converted model: its session's methods."""
    from perfkit.backends.sklearn import SklearnBackend
    from perfkit.core.spec import Target

    native = convert(prepare_native(str(tmp_path / f"{name}.joblib"), True, None), cache_dir=str(tmp_path / "c"),
                     isolate=False).native
    with SklearnBackend().open(native, Target("sklearn", "cpu")) as session:
        return session.settings["timed"]


def kind_model(name, x):
    """One estimator of each kind that has no classifier's or regressor's outputs, fitted on x."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import SGDOneClassSVM
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KNeighborsTransformer, LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    return {"pca": lambda: make_pipeline(StandardScaler(), PCA(3)),
            "knn_graph": lambda: KNeighborsTransformer(n_neighbors=4),
            "lof": lambda: LocalOutlierFactor(novelty=True, n_neighbors=10),
            "ocsvm": lambda: OneClassSVM(gamma=0.5),
            "sgd_ocsvm": lambda: make_pipeline(StandardScaler(), SGDOneClassSVM(random_state=0)),
            "gmm": lambda: GaussianMixture(3, random_state=0)}[name]().fit(x)


@pytest.mark.parametrize(("name", "outputs", "timed"), [
    ("pca", ["variable"], "transform"),
    ("knn_graph", ["variable"], "transform"),  # a sparse transform, compared dense as the ONNX model gives it
    ("lof", ["label", "scores"], "predict + decision_function"),
    ("ocsvm", ["label", "scores"], "predict + decision_function"),
    ("sgd_ocsvm", ["label", "scores"], "predict + decision_function"),  # skl2onnx writes these (N,), not (N, 1)
    ("gmm", ["label", "probabilities"], "predict_proba + argmax"),  # a mixture: its components, one pass
])
def test_each_estimator_kind_times_the_methods_behind_its_onnx_outputs_with_parity(tmp_path, name, outputs, timed):
    lines, parity = _converted(tmp_path, name, kind_model(name, np.random.default_rng(0).standard_normal((120, 5))))
    assert parity.ok, lines
    assert [a.name for a in parity.outputs] == outputs
    assert _timed(tmp_path, name) == timed


@pytest.mark.parametrize("classes", [2, 3])
def test_a_classifier_without_predict_proba_converts_and_times_decision_function(tmp_path, classes):
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 5))
    y = (x[:, 0] * classes).astype(int) % classes
    lines, parity = _converted(tmp_path, "svc", LinearSVC().fit(x, y))  # skl2onnx refuses zipmap for it
    assert parity.ok, lines
    scores = {a.name: a for a in parity.outputs}["probabilities"]  # skl2onnx's name for decision_function's
    assert scores.comparable and scores.max_abs <= 1e-5
    assert _timed(tmp_path, "svc") == "predict + decision_function"


@pytest.mark.parametrize(("steps", "cause"), [
    (["KNeighborsRegressor"], "KNeighborsRegressor (nearest neighbours: distances that nearly tie"),
    (["Pipeline", "StandardScaler", "RandomForestClassifier"],
     "StandardScaler (divides by the feature's scale), RandomForestClassifier (float32 thresholds: a value on a "
     "split threshold goes the other way)"),
    (["GaussianProcessRegressor"], "GaussianProcessRegressor (kernel products and the solve"),
    (["SVR"], "SVR (kernel sums lose float32 precision)"),
    (["XGBClassifier"], "XGBClassifier (its trees' thresholds are float32"),
])
def test_the_likely_cause_of_other_answers_is_named_by_estimator_family(steps, cause):
    from perfkit.native.parity import likely_causes

    assert ", ".join(likely_causes(steps)).startswith(cause)
    assert likely_causes(["LinearSVR", "PCA"]) == []  # no family known to move: nothing claimed


# For a query at 1.0 the point 1.99999999 is nearer than 0.0 in float64; float32 rounds it to 2.0, a tie the
# converted graph breaks toward the first point: another neighbour, another answer.
TIES_TRAIN = (np.array([[0.0], [1.99999999], [10.0], [20.0]]), np.array([0.0, 100.0, 7.0, 9.0]))
TIES_QUERIES = np.array([[1.0], [10.2], [19.0]], np.float32)


def test_neighbours_that_tie_in_float32_are_parity_off_naming_the_cause_and_float64_mends_it(tmp_path):
    from sklearn.neighbors import KNeighborsRegressor

    np.savez(tmp_path / "q.npz", X=TIES_QUERIES)
    lines, parity = _converted(tmp_path, "knn", KNeighborsRegressor(n_neighbors=1).fit(*TIES_TRAIN),
                               inputs=str(tmp_path / "q.npz"))
    assert not parity.ok and parity.outputs[0].max_abs == 100
    assert parity.warnings == ("float64 → float32 changes answers (variable: max abs 1e+02); the likely cause: "
                               "KNeighborsRegressor (nearest neighbours: distances that nearly tie in float64 tie or "
                               "swap in float32, so another neighbour is picked) — compare on real data, or convert "
                               "with --float64 to keep scikit-learn's precision in the ONNX model",)
    np.savez(tmp_path / "q64.npz", X=TIES_QUERIES.astype(np.float64))
    _, exact = run_convert(str(tmp_path / "knn.joblib"), str(tmp_path / "knn64.onnx"), trust=True, float64=True,
                           inputs=str(tmp_path / "q64.npz"), cache_dir=str(tmp_path / "c"), isolate=False)
    assert exact.ok, exact.outputs
