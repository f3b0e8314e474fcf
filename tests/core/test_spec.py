import pytest

from perfkit.core.errors import PerfkitError
from perfkit.core.spec import InputShape, Target, parse_batches, parse_dim, parse_shape, parse_target


def test_target_with_provider_options():
    t = parse_target("ort:cuda,device_id=0,cudnn_conv_algo_search=HEURISTIC", threads=2, opt_level="basic")
    assert t == Target("ort", "cuda", (("device_id", "0"), ("cudnn_conv_algo_search", "HEURISTIC")), 2, "basic")
    assert t.label == "ort:cuda,device_id=0,cudnn_conv_algo_search=HEURISTIC"


def test_bare_device_means_onnxruntime():
    assert parse_target("cpu") == Target("ort", "cpu")


@pytest.mark.parametrize("text", ["ort:", "ORT:cpu", "ort:cuda,fast", "ort:cpu,=3", ":cpu", "ort:cuda,devcie_id=0",
                                  "ort:cpu,cuda-graph", "torch:cuda,iobinding", "ort:tensorrt,trt_fp32_enable=1"])
def test_bad_targets(text):
    with pytest.raises(PerfkitError, match="--target"):
        parse_target(text)


def test_modes_and_provider_options_of_gpu_targets():
    bound = parse_target("ort:cuda,iobinding,device_id=1,cudnn_conv_algo_search=EXHAUSTIVE")
    assert bound.modes == ("iobinding",) and bound.gpu and dict(bound.provider_options)["device_id"] == "1"
    assert bound.label == "ort:cuda,iobinding,device_id=1,cudnn_conv_algo_search=EXHAUSTIVE"
    graph = parse_target("ort:cuda,cuda-graph")
    assert graph.modes == ("cuda-graph", "iobinding")  # a CUDA graph replays bound buffers
    assert ("enable_cuda_graph", "1") in graph.provider_options
    trt = parse_target("ort:tensorrt,trt_fp16_enable=1,trt_engine_cache_enable=1,trt_engine_cache_path=/tmp/e")
    assert trt.gpu and len(trt.provider_options) == 3
    assert parse_target("ort:cpu,iobinding").modes == ("iobinding",) and not parse_target("ort:cpu").gpu


def test_unknown_opt_level():
    with pytest.raises(PerfkitError, match="use one of disable, basic, extended, all"):
        parse_target("ort:cpu", opt_level="max")


def test_dim_shape_batch_parsers():
    assert parse_dim("batch=8") == ("batch", 8)
    assert parse_shape("pixel_values=1x3x224x224") == InputShape("pixel_values", (1, 3, 224, 224))
    assert parse_shape("scalar=") == InputShape("scalar", ())
    assert parse_batches("1, 8,32") == (1, 8, 32)


def test_a_shape_may_give_its_element_type():
    assert parse_shape("input_ids=1x128:int64") == InputShape("input_ids", (1, 128), "int64")
    with pytest.raises(PerfkitError, match="'long' is not an element type perfkit feeds — use one of float32"):
        parse_shape("input_ids=1x128:long")


@pytest.mark.parametrize("parser,text", [(parse_dim, "batch"), (parse_dim, "batch=-1"), (parse_shape, "x=1x?x3"),
                                         (parse_shape, "1x3"), (parse_batches, "1,x"), (parse_batches, "")])
def test_parsers_reject_malformed_text(parser, text):
    with pytest.raises(PerfkitError, match="not"):
        parser(text)
