import numpy as np

from perfkit.analysis.verdict import profile_diff
from perfkit.core.records import OpTime
from perfkit.core.spec import Target
from perfkit.measure.profile import profile_ort, summarize_profile
from tests import models


def test_real_profile_sums_kernel_time_by_op_type(save):
    path = save(models.conv(), "conv.onnx")
    ops = profile_ort(path, Target(opt_level="disable"), {"image": np.ones((1, 3, 8, 8), np.float32)}, calls=5)
    by_op = {o.op: o for o in ops}
    assert by_op["Conv"].nodes == 2 and by_op["Conv"].provider == "CPU" and by_op["Conv"].ns_per_call > 0
    assert {"Relu", "Gemm", "GlobalAveragePool"} <= set(by_op)
    assert list(ops) == sorted(ops, key=lambda o: -o.ns_per_call)


def test_warm_up_runs_are_left_out():
    def run(ts):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 10}

    def kernel(ts, dur):
        return {"cat": "Node", "name": "n0_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": "Conv", "provider": "CPUExecutionProvider"}}

    events = [run(0), kernel(1, 1000), run(100), kernel(101, 5), run(200), kernel(201, 7)]
    (conv,) = summarize_profile(events, skip_runs=1)
    assert conv == OpTime("Conv", 6000.0, 1, "CPU")  # (5 + 7) µs over two runs, in ns
    assert summarize_profile(events, skip_runs=3) == ()


def test_diff_orders_by_size_of_change():
    a = (OpTime("Conv", 1000, 2, "CPU"), OpTime("Relu", 50, 2, "CPU"))
    b = (OpTime("QLinearConv", 300, 2, "CPU"), OpTime("Relu", 60, 2, "CPU"))
    assert profile_diff(a, b) == [("Conv", -1000), ("QLinearConv", 300), ("Relu", 10)]
