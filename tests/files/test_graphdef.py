"""A GraphDef read from its protobuf bytes without TensorFlow: the bytes are written here by hand, field by
field, as TensorFlow writes them."""

from __future__ import annotations

import pytest

from perfkit.core.errors import PerfkitError
from perfkit.files.graphdef import clean_name, graph_ends, looks_like_graphdef, parse_graph


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def node(name: str, op: str, *inputs: str, dtype: int | None = None, shape: tuple[int, ...] | None = None) -> bytes:
    out = field(1, name.encode()) + field(2, op.encode()) + b"".join(field(3, i.encode()) for i in inputs)
    if dtype is not None:
        out += field(5, field(1, b"dtype") + field(2, field(6, dtype)))
    if shape is not None:
        dims = b"".join(field(2, field(1, d)) for d in shape)
        out += field(5, field(1, b"shape") + field(2, field(7, dims)))
    return out


def graph(*nodes: bytes, versions: bool = True) -> bytes:
    return b"".join(field(1, n) for n in nodes) + (field(4, field(1, 2474)) if versions else b"")


MLP = graph(node("x", "Placeholder", dtype=1, shape=(-1, 8)), node("w", "Const"),
            node("unused", "Placeholder", dtype=9, shape=(-1,)), node("mm", "MatMul", "x", "w"),
            node("init", "NoOp", "^w"), node("out", "Identity", "mm", "^init"))


def test_a_graphdef_gives_its_placeholders_types_and_shapes():
    parsed = parse_graph(MLP, "m.pb")
    x = parsed.nodes[0]
    assert parsed.producer == 2474 and len(parsed.nodes) == 6
    assert (x.name, x.op, x.dtype, x.shape) == ("x", "Placeholder", "float32", (None, 8))
    assert parsed.nodes[3].inputs == ("x", "w")


def test_the_ends_are_the_placeholders_it_needs_and_the_node_nothing_consumes():
    ends = graph_ends(parse_graph(MLP, "m.pb"))
    assert ends.inputs == ("x:0",) and ends.outputs == ("out:0",)  # "unused" feeds nothing; NoOp is no output


def test_several_unconsumed_nodes_ask_for_output_names_naming_them():
    two = graph(node("x", "Placeholder", dtype=1, shape=(-1, 4)), node("a", "Relu", "x"), node("b", "Tanh", "x"),
                node("c", "Sigmoid", "x"))
    with pytest.raises(PerfkitError, match="3 nodes are consumed by none: a, b, c") as err:
        graph_ends(parse_graph(two, "m.pb"), subject="m.pb")
    assert "--output-names" in err.value.fix
    ends = graph_ends(parse_graph(two, "m.pb"), output_names=("c", "a:0"))
    assert ends.outputs == ("c:0", "a:0") and [clean_name(t) for t in ends.outputs] == ["c", "a"]


def test_names_the_graph_lacks_and_unfrozen_graphs_are_one_line():
    with pytest.raises(PerfkitError, match="--output-names: the graph has no node nope") as err:
        graph_ends(parse_graph(MLP, "m.pb"), output_names=("nope",))
    assert "out" in err.value.fix  # the candidate is named
    held = graph(node("x", "Placeholder", dtype=1), node("v", "VariableV2"), node("y", "Mul", "x", "v"))
    with pytest.raises(PerfkitError, match=r"holds variables \(v\): it is not frozen"):
        graph_ends(parse_graph(held, "m.pb"))


@pytest.mark.parametrize("cut, what", [
    (len(MLP) // 2, "a damaged TensorFlow GraphDef"),  # inside a node
    (len(MLP) - len(field(4, field(1, 2474))), "cut short"),  # between fields: protobuf alone cannot tell
])
def test_a_truncated_graph_is_named_so(cut, what):
    with pytest.raises(PerfkitError, match=what):
        parse_graph(MLP[:cut], "m.pb")


def test_a_graphdef_head_is_told_from_an_onnx_one():
    onnx_head = field(1, 8)[:2] + field(2, b"tf2onnx") + field(7, field(1, node("x", "Relu")))  # ir_version first
    assert looks_like_graphdef(MLP[:64]) and looks_like_graphdef(MLP[:5])
    assert not looks_like_graphdef(onnx_head[:64])
    assert not looks_like_graphdef(field(1, field(1, b"not a name!") + field(2, b"Op")))
