import numpy as np

from perfkit.accuracy import nonfinite


def test_nan_and_inf_are_counted_per_output():
    outs = [np.array([1.0, np.nan, np.inf, -np.inf], np.float32), np.array([1, 2]), np.array([0.5])]
    assert nonfinite(outs, ("a", "labels", "b")) == ("a: 1 NaN, 2 Inf of 4",)


def test_non_tensor_outputs_are_not_judged():
    assert nonfinite([[{"cat": 0.5}], np.array(["x"])], ("zipmap", "text")) == ()
