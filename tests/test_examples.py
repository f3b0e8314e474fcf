import numpy as np
import onnxruntime as ort

from perfkit.examples import BUILDERS, write


def test_examples_are_valid_and_batch_dynamic(tmp_path):
    for name in BUILDERS:
        session = ort.InferenceSession(str(write(name, tmp_path)))
        feed = {}
        for inp in session.get_inputs():
            shape = [3 if i == 0 else 16 if isinstance(d, str) else d for i, d in enumerate(inp.shape)]
            feed[inp.name] = np.ones(shape, np.int64) if "int64" in inp.type else \
                np.random.default_rng(0).random(shape, np.float32)
        out = session.run(None, feed)[0]
        assert out.shape[0] == 3 and np.isfinite(out).all()


def test_the_scikit_learn_example_is_a_fitted_pipeline(tmp_path):
    pytest = __import__("pytest")
    pytest.importorskip("sklearn")
    import joblib

    path = write("sklearn-pipeline", tmp_path)
    model = joblib.load(path)  # perfkit's own file
    assert path.suffix == ".joblib" and model.n_features_in_ == 64 and len(model.classes_) == 10
