import numpy as np
import onnx
import onnxruntime as ort

from perfkit.files.onnx_file import op_histogram, open_onnx
from perfkit.transforms import BuildContext, parse_chain
from perfkit.transforms.cache import build_chain
from tests import models


def build(path, chain, tmp_path):
    return build_chain(open_onnx(path)[0], parse_chain(chain), BuildContext(), str(tmp_path / "c"), 120,
                       isolate=False)


def test_levels_write_what_onnxruntime_optimized(save, tmp_path):
    path = save(models.conv(), "conv.onnx")
    basic = build(path, "ort-opt:basic", tmp_path)
    everything = build(path, "ort-opt:all", tmp_path)
    assert basic.notes == ()
    assert "machine that runs it" in everything.notes[0]  # `all` is specific to this CPU
    ops = op_histogram(onnx.load(everything.model.path))
    assert any(op.startswith("com.microsoft") for op in ops)  # fused Conv+Relu / NCHWc kernels
    x = {"image": np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)}
    want = ort.InferenceSession(path).run(None, x)[0]
    for variant in (basic, everything):
        np.testing.assert_allclose(ort.InferenceSession(variant.model.path).run(None, x)[0], want, rtol=1e-4,
                                   atol=1e-5)
