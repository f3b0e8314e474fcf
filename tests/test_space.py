"""The search space: thread counts per machine, the session settings each phase tries, int8 repairs."""

from __future__ import annotations

from perfkit.core.spec import Target
from perfkit.space import detail_settings, gpu_settings, int8_repairs, thread_counts, thread_settings, with_excluded
from perfkit.transforms import parse_chain


def labels(chains):
    return ["+".join(s.label for s in c) for c in chains]


def test_thread_counts_double_up_to_the_physical_cores_and_respect_the_limit():
    assert thread_counts(2, 2, None) == (1, 2)
    assert thread_counts(16, 8, None) == (1, 2, 4, 8, 16)
    assert thread_counts(16, 8, 4) == (1, 2, 4)


def test_a_second_pool_is_only_tried_where_cores_are_left_for_it():
    settings = thread_settings(Target(), logical=2, physical=2, limit=None)
    texts = [t.session_text for t in settings]
    assert texts == ["1 thread", "1 thread, spin off", "1 thread, parallel execution, 2 inter-op threads",
                     "1 thread, parallel execution, 2 inter-op threads, spin off", "2 threads", "2 threads, spin off"]


def test_details_skip_the_session_level_for_a_file_optimized_offline():
    base = Target(threads=2)
    assert [t.session_text for t in detail_settings(base, offline_optimized=True)] == \
        ["2 threads, arena off", "2 threads, mem pattern off", "2 threads, denormals as zero"]
    assert "2 threads, level basic" in [t.session_text for t in detail_settings(base, offline_optimized=False)]


def test_gpu_targets_search_iobinding_graphs_and_conv_algorithms():
    found = gpu_settings(Target(device="cuda"))
    assert [t.label for t in found] == ["ort:cuda", "ort:cuda,iobinding", "ort:cuda,cuda-graph,iobinding,"
                                        "enable_cuda_graph=1", "ort:cuda,cudnn_conv_algo_search=HEURISTIC",
                                        "ort:cuda,cudnn_conv_algo_search=DEFAULT"]
    trt = [t.label for t in gpu_settings(Target(device="tensorrt"))]
    assert "ort:tensorrt,trt_fp16_enable=1" in trt and "ort:tensorrt,trt_int8_enable=1" in trt


def test_int8_repairs_move_toward_float_one_option_at_a_time():
    assert labels(int8_repairs(parse_chain("int8-static:qdq,u8s8"))) == [
        "int8-static:u8s8,per-channel", "int8-static:u8s8,per-channel,entropy",
        "int8-static:u8s8,per-channel,percentile", "int8-static:u8s8,per-channel,reduce-range"]
    assert labels(int8_repairs(parse_chain("fusion+int8-dynamic"))) == [
        "fusion+int8-dynamic:per-channel", "fusion+int8-dynamic:per-channel,reduce-range"]
    assert int8_repairs(parse_chain("ort-opt:all")) == []


def test_excluded_nodes_enter_the_chain_and_its_label():
    chain = with_excluded(parse_chain("int8-static:qdq,u8s8,per-channel"), ("/layer1/Conv", "Conv_2"))
    assert labels([chain]) == ["int8-static:u8s8,per-channel,exclude=/layer1/Conv,exclude=Conv_2"]
    assert dict(chain[0].options)["format"] == "qdq"


def test_a_per_channel_int8_file_inside_the_budget_is_also_tried_per_tensor():
    from perfkit.space import int8_trades

    assert labels(int8_trades(parse_chain("int8-static:qdq,u8s8,per-channel"))) == ["int8-static:u8s8"]
    assert labels(int8_trades(parse_chain("fusion+int8-dynamic:per-channel"))) == ["fusion+int8-dynamic"]
    assert int8_trades(parse_chain("int8-static:qdq,u8s8")) == [] and int8_trades(parse_chain("fusion")) == []
