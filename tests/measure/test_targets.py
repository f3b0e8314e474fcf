"""Which targets this machine runs: a missing GPU makes skipped rows beside a target that runs; anything else
missing is the user's error (on the fake backend, which has only a CPU)."""

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.files.onnx_file import open_onnx
from perfkit.measure.targets import check_targets
from perfkit.options import make_spec
from tests.conftest import FAST


@pytest.fixture
def model(fake_backend, tmp_path):
    return fake_backend.write_model(tmp_path / "m.onnx", latency_ns=1000)


def targets(model, *names, **options):
    return check_targets(open_onnx(model)[0], make_spec(model, targets=names, plan=FAST, **options))


def test_every_target_there_is_checked_and_none_skipped(model):
    assert targets(model, "ort:cpu") == {}


def test_a_missing_gpu_beside_a_cpu_target_is_skipped_with_the_reason(model):
    assert targets(model, "ort:cpu", "ort:cuda") == {
        "ort:cuda": "the fake backend has no cuda device — no GPU row is measured here, and none pretends"}


def test_only_missing_gpus_is_an_error_that_says_how_to_get_one(model):
    with pytest.raises(PerfkitError, match=r"--target ort:cuda: the fake backend has no cuda device — install "
                                           r"perfkit\[gpu\] on a machine with an NVIDIA GPU"):
        targets(model, "ort:cuda")


def test_a_missing_cpu_side_provider_is_an_error(model):
    with pytest.raises(PerfkitError, match="--target ort:openvino: the fake backend has no openvino device — pick"):
        targets(model, "ort:cpu", "ort:openvino")


def test_allow_fallback_runs_on_what_is_there(model):
    assert targets(model, "ort:openvino", allow_fallback=True) == {}
