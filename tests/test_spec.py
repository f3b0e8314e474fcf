import pytest

from perfkit.errors import PerfkitError
from perfkit.spec import Target, make_spec, parse_batches, parse_dim, parse_shape, parse_target


def test_target_with_provider_options():
    t = parse_target("ort:cuda,device_id=0,cudnn_conv_algo_search=HEURISTIC", threads=2, opt_level="basic")
    assert t == Target("ort", "cuda", (("device_id", "0"), ("cudnn_conv_algo_search", "HEURISTIC")), 2, "basic")
    assert t.label == "ort:cuda,device_id=0,cudnn_conv_algo_search=HEURISTIC"


def test_bare_device_means_onnxruntime():
    assert parse_target("cpu") == Target("ort", "cpu")


@pytest.mark.parametrize("text", ["ort:", "ORT:cpu", "ort:cuda,iobinding", "ort:cpu,=3", ":cpu"])
def test_bad_targets(text):
    with pytest.raises(PerfkitError, match="--target"):
        parse_target(text)


def test_unknown_opt_level():
    with pytest.raises(PerfkitError, match="use one of disable, basic, extended, all"):
        parse_target("ort:cpu", opt_level="max")


def test_dim_shape_batch_parsers():
    assert parse_dim("batch=8") == ("batch", 8)
    assert parse_shape("pixel_values=1x3x224x224") == ("pixel_values", (1, 3, 224, 224))
    assert parse_shape("scalar=") == ("scalar", ())
    assert parse_batches("1, 8,32") == (1, 8, 32)


@pytest.mark.parametrize("parser,text", [(parse_dim, "batch"), (parse_dim, "batch=-1"), (parse_shape, "x=1x?x3"),
                                         (parse_shape, "1x3"), (parse_batches, "1,x"), (parse_batches, "")])
def test_parsers_reject_malformed_text(parser, text):
    with pytest.raises(PerfkitError, match="not"):
        parser(text)


def test_batch_sweep_makes_one_workload_per_size():
    spec = make_spec("m.onnx", batch=(1, 8), dims=("seq=16",))
    assert [w.batch for w in spec.workloads] == [1, 8]
    assert all(w.dims == (("seq", 16),) for w in spec.workloads)


def test_batch_cannot_resize_user_data():
    with pytest.raises(PerfkitError, match="--batch cannot resize"):
        make_spec("m.onnx", batch=(1, 8), inputs="data.npz")
