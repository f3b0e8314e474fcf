import numpy as np
import onnxruntime as ort

from perfkit.examples import BUILDERS, write


def test_examples_are_valid_and_batch_dynamic(tmp_path):
    for name in BUILDERS:
        session = ort.InferenceSession(str(write(name, tmp_path)))
        (inp,) = session.get_inputs()
        shape = [3 if isinstance(d, str) else d for d in inp.shape]
        (out,) = session.run(None, {inp.name: np.random.default_rng(0).random(shape, np.float32)})
        assert out.shape[0] == 3 and np.isfinite(out).all()
