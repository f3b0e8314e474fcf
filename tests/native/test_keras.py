"""Keras 3 (.keras, .h5) and TensorFlow SavedModel folders, converted through tf2onnx."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")

from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402


def two_input_model():
    """Two named inputs, two outputs: names, order and the free batch must survive the conversion."""
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    extra = keras.Input((4,), name="extra")
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3, activation="relu")(image))
    h = keras.layers.Concatenate()([h, extra])
    return keras.Model([image, extra], [keras.layers.Dense(3, activation="softmax", name="probs")(h),
                                        keras.layers.Dense(1, name="score")(h)])


def run(tmp_path, path, **kw):
    return run_convert(str(path), str(tmp_path / "out.onnx"), cache_dir=str(tmp_path / "c"), isolate=False,
                       batch=4, **kw)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_files_convert_with_their_inputs_and_match(tmp_path, suffix):
    two_input_model().save(tmp_path / f"m{suffix}")
    lines, parity = run(tmp_path, tmp_path / f"m{suffix}")
    assert parity.ok, lines
    assert "image float32 [N, 8, 8, 3], extra float32 [N, 4]" in lines[1]
    assert [a.name for a in parity.outputs] == ["output_0", "output_1"]
    assert parity.rows == 4 * 4


def test_a_savedmodel_folder_converts_from_its_serving_signature(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), name="features"), keras.layers.Dense(2)])
    model.export(str(tmp_path / "saved"), verbose=False)
    lines, parity = run(tmp_path, tmp_path / "saved")
    assert parity.ok, lines
    assert "features float32 [N, 5]" in lines[1] and "savedmodel" in lines[0]


def test_a_lambda_layer_runs_python_so_it_needs_trust(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(tmp_path / "lam.keras")
    with pytest.raises(PerfkitError, match="Lambda") as err:
        run(tmp_path, tmp_path / "lam.keras")
    assert "--trust" in err.value.fix
    _, parity = run(tmp_path, tmp_path / "lam.keras", trust=True)
    assert parity.ok


def test_the_keras_session_runs_the_compiled_predict_step(tmp_path):
    from perfkit.backends.keras import KerasBackend
    from perfkit.core.spec import Target
    from perfkit.native.conversion import convert
    from perfkit.native.detect import prepare_native

    two_input_model().save(tmp_path / "m.keras")
    native = convert(prepare_native(str(tmp_path / "m.keras"), False, None), cache_dir=str(tmp_path / "c"),
                     isolate=False).native
    session = KerasBackend().open(native, Target("keras", "cpu"))
    rng = np.random.default_rng(0)
    feed = {"image": rng.random((2, 8, 8, 3), dtype=np.float32), "extra": rng.random((2, 4), dtype=np.float32)}
    probs, score = session.run(session.prepare(feed))
    assert probs.shape == (2, 3) and score.shape == (2, 1)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    session.close()


def test_a_normalization_layer_keeps_its_constants_as_weights_not_inputs(tmp_path):
    """Keras' own export made EfficientNet's Normalization mean and variance into inputs fed made-up values."""
    import onnx

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051])(image)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(h))
    keras.Model(image, keras.layers.Dense(3, activation="softmax", name="probs")(h)).save(tmp_path / "n.keras")
    lines, parity = run(tmp_path, tmp_path / "n.keras")
    assert parity.ok and parity.outputs[0].max_abs < 1e-5, lines
    graph = onnx.load(str(tmp_path / "out.onnx")).graph
    weights = {t.name for t in graph.initializer}
    assert [i.name for i in graph.input if i.name not in weights] == ["image"]


@pytest.mark.slow  # TensorFlow imported in a fresh process: about 10 s
def test_importing_keras_leaves_no_keras_json_in_the_users_home(tmp_path):
    import os
    import subprocess
    import sys

    code = "from perfkit.backends.keras import frameworks; frameworks()"
    env = {**os.environ, "HOME": str(tmp_path), "PERFKIT_CACHE": str(tmp_path / "cache")}
    env.pop("KERAS_HOME", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)
    assert not (tmp_path / ".keras").exists() and (tmp_path / "cache" / "keras").is_dir()
