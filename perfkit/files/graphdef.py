"""A TensorFlow GraphDef (a frozen graph's .pb) read from its protobuf bytes without TensorFlow: its nodes'
names, ops and inputs, its Placeholders' types and shapes, and its ends — the tensors a conversion feeds and
fetches. Nothing is imported into TensorFlow and nothing runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from perfkit.core.errors import PerfkitError

VARINT, I64, LEN, I32 = 0, 1, 2, 5  # the protobuf wire types a GraphDef uses
# Ops that are no model output when nothing consumes them: they give no value (NoOp, Assert, the savers and
# assigners), or they are left over (a Const, a Placeholder nothing reads).
NO_VALUE_OPS = frozenset({
    "NoOp", "Const", "Assert", "PrintV2", "Placeholder", "PlaceholderWithDefault", "SaveV2", "RestoreV2",
    "MergeV2Checkpoints", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})  # what a graph holds until it is frozen
# tensorflow/core/framework/types.proto's DataType -> numpy-style names (the types an input may have)
DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 9: "int64",
          10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}
NODE_NAME = re.compile(rb"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*")  # TensorFlow's own rule for node names
OP_NAME = re.compile(rb"[A-Za-z0-9_>]+")
LISTED = 8  # candidates named in an error before "+N more"


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: str
    inputs: tuple[str, ...]  # "node", "node:1", or "^node" for a control edge
    dtype: str | None = None  # a Placeholder's element type
    shape: tuple[int | None, ...] | None = None  # a Placeholder's shape: None dims unknown; None: rank unknown


@dataclass(frozen=True)
class Graph:
    nodes: tuple[GraphNode, ...]
    producer: int  # the TensorFlow graph version that wrote it


@dataclass(frozen=True)
class Ends:
    """The tensors a frozen graph is fed and fetched by, as TensorFlow names them ("x:0"), in graph order or
    the order the user gave."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class _Damaged(Exception):
    pass


class _Cut(_Damaged):
    """The bytes end inside a field."""


def looks_like_graphdef(head: bytes) -> bool:
    """Whether a file's first bytes open a GraphDef: a node whose name and op are TensorFlow names. An ONNX
    ModelProto cannot: its field 1 is a number, never a message."""
    try:
        fields = _fields(memoryview(head), partial=True)
        field, node = next(fields)
        if field != 1 or not isinstance(node, memoryview):
            return False
        inner = _fields(node, partial=True)
        field, name = next(inner)
        if field != 1 or not isinstance(name, memoryview) or not NODE_NAME.fullmatch(bytes(name)):
            return False
        field, op = next(inner, (2, None))
        return field == 2 and (op is None or isinstance(op, memoryview) and OP_NAME.fullmatch(bytes(op)) is not None)
    except (_Damaged, StopIteration):
        return False


def read_graph(path: Path) -> Graph:
    return parse_graph(path.read_bytes(), str(path))


def parse_graph(data: bytes, subject: str) -> Graph:
    """The graph's nodes; one line when its bytes are damaged or cut short."""
    nodes: list[GraphNode] = []
    producer: int | None = None
    try:
        for field, value in _fields(memoryview(data)):
            if field == 1:
                nodes.append(_node(_message(value)))
            elif field == 4:
                found = next((v for f, v in _fields(_message(value)) if f == 1), 0)
                producer = found if isinstance(found, int) else 0
            elif field == 3:  # the version number graphs carried before VersionDef
                producer = value if isinstance(value, int) else 0
    except (_Damaged, UnicodeDecodeError):
        raise PerfkitError(subject, "a damaged TensorFlow GraphDef (its protobuf does not parse: cut short or "
                           "corrupted)", "copy the file again, or write the graph again with "
                           "tf.io.write_graph(graph_def, folder, name, as_text=False)") from None
    if producer is None:  # TensorFlow writes the versions record after every node
        raise PerfkitError(subject, "a TensorFlow GraphDef cut short (it ends before its versions record)",
                           "copy the file again, or write the graph again with tf.io.write_graph")
    return Graph(tuple(nodes), producer)


def graph_ends(graph: Graph, input_names: tuple[str, ...] = (), output_names: tuple[str, ...] = (),
               subject: str = "") -> Ends:
    """The outputs: the nodes nothing consumes (no-value ops aside), or --output-names; the inputs: the
    Placeholders they depend on, or --input-names. One line asking for the names where the graph is ambiguous."""
    held = [n.name for n in graph.nodes if n.op in VARIABLE_OPS]
    if held:
        raise PerfkitError(subject, f"the graph holds variables ({listed(held)}): it is not frozen",
                           "freeze it (convert_variables_to_constants_v2) and write it again")
    names = {n.name for n in graph.nodes}
    outputs = [_tensor(n, names, subject, "--output-names", unconsumed(graph)) for n in output_names]
    if not outputs:
        outputs = _sinks(graph, subject)
    placeholders = _placeholders(graph, outputs)
    inputs = [_tensor(n, names, subject, "--input-names", placeholders) for n in input_names]
    if not inputs and not placeholders:
        raise PerfkitError(subject, f"no Placeholder feeds {listed([clean_name(t) for t in outputs])}",
                           "pass --input-names with the tensors to feed")
    return Ends(tuple(inputs or (f"{p}:0" for p in placeholders)), tuple(outputs))


def unconsumed(graph: Graph) -> list[str]:
    """Nodes whose value no other node takes, no-value ops aside: the graph's outputs, if there is one."""
    consumed = {node_of(i) for n in graph.nodes for i in n.inputs}
    return [n.name for n in graph.nodes if n.name not in consumed and n.op not in NO_VALUE_OPS]


def node_of(tensor: str) -> str:
    """The node a tensor or an edge comes from: "x:1" and "^x" are both x's."""
    return re.sub(r":\d+$", "", tensor.lstrip("^"))


def clean_name(tensor: str) -> str:
    """The name a tensor carries in the ONNX file: its node's, where it is the node's first output."""
    return tensor[:-2] if tensor.endswith(":0") else tensor


def listed(names: list[str]) -> str:
    more = f" (+{len(names) - LISTED} more)" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def _sinks(graph: Graph, subject: str) -> list[str]:
    found = unconsumed(graph)
    if len(found) == 1:
        return [f"{found[0]}:0"]
    if not found:
        raise PerfkitError(subject, "every node's value is consumed by another: the graph has no clear output",
                           "pass --output-names with the model's output ops")
    raise PerfkitError(subject, f"{len(found)} nodes are consumed by none: {listed(found)}",
                       "pass --output-names with the model's outputs (op names, comma-separated)")


def _placeholders(graph: Graph, outputs: list[str]) -> list[str]:
    """The Placeholders the outputs depend on (through data and control edges), in graph order."""
    by_name = {n.name: n for n in graph.nodes}
    seen: set[str] = set()
    todo = [node_of(t) for t in outputs]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(node_of(i) for i in by_name[name].inputs)
    return [n.name for n in graph.nodes if n.op == "Placeholder" and n.name in seen]


def _tensor(given: str, names: set[str], subject: str, option: str, choices: list[str]) -> str:
    node = node_of(given)
    if node not in names:
        raise PerfkitError(subject, f"{option}: the graph has no node {node}",
                           f"name one of its nodes{': ' + listed(choices) if choices else ''}")
    return given if given != node else f"{node}:0"


# ---- the protobuf wire format ------------------------------------------------------------------------------

def _node(buf: memoryview) -> GraphNode:
    name = op = ""
    inputs: list[str] = []
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    for field, value in _fields(buf):
        if field == 1:
            name = _text(value)
        elif field == 2:
            op = _text(value)
        elif field == 3:
            inputs.append(_text(value))
        elif field == 5 and op == "Placeholder":  # attr: map<string, AttrValue>, op written before it
            entry = dict(_fields(_message(value)))
            key, attr = _text(entry.get(1, b"")), dict(_fields(_message(entry.get(2, b""))))
            enum = attr.get(6)
            if key == "dtype" and isinstance(enum, int):
                dtype = DTYPES.get(enum, f"DT_{enum}")
            elif key == "shape" and 7 in attr:
                shape = _shape(_message(attr[7]))
    if not name or not op:
        raise _Damaged
    return GraphNode(name, op, tuple(inputs), dtype, shape)


def _shape(buf: memoryview) -> tuple[int | None, ...] | None:
    dims: list[int | None] = []
    for field, value in _fields(buf):
        if field == 3 and value:  # unknown_rank
            return None
        if field == 2:
            size = next((v for f, v in _fields(_message(value)) if f == 1), 0)
            size = size - (1 << 64) if isinstance(size, int) and size >= 1 << 63 else size
            dims.append(None if not isinstance(size, int) or size < 0 else size)
    return tuple(dims)


def _fields(buf: memoryview, partial: bool = False) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one message: a number, or the bytes of a string or message. `partial`: the
    message may go on past `buf` (a file's head), so its last field is cut to what is there."""
    pos = 0
    try:
        while pos < len(buf):
            key, pos = _varint(buf, pos)
            field, wire = key >> 3, key & 7
            if field == 0:
                raise _Damaged
            if wire == VARINT:
                value, pos = _varint(buf, pos)
                yield field, value
            elif wire == LEN:
                size, pos = _varint(buf, pos)
                if pos + size > len(buf) and not partial:
                    raise _Cut
                yield field, buf[pos:pos + size]
                pos += size
            elif wire in (I64, I32):
                pos += 8 if wire == I64 else 4
                if pos > len(buf) and not partial:
                    raise _Cut
                yield field, 0
            else:  # groups: no GraphDef has them
                raise _Damaged
    except _Cut:
        if not partial:
            raise


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _Cut
        if shift > 63:
            raise _Damaged
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _message(value: int | memoryview | bytes) -> memoryview:
    if isinstance(value, int):
        raise _Damaged
    return memoryview(value)


def _text(value: int | memoryview | bytes) -> str:
    return bytes(_message(value)).decode()
