"""User-facing options -> a checked BenchSpec."""

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec


def test_batch_sweep_makes_one_workload_per_size():
    spec = make_spec("m.onnx", batch=(1, 8), dims=("seq=16",))
    assert [w.batch for w in spec.workloads] == [1, 8]
    assert all(w.dims == (("seq", 16),) for w in spec.workloads)


def test_batch_cannot_resize_user_data():
    with pytest.raises(PerfkitError, match="--batch cannot resize"):
        make_spec("m.onnx", batch=(1, 8), inputs="data.npz")
