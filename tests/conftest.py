"""Tiny real models built with onnx.helper, and a timing plan fast enough for unit tests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from perfkit.core.spec import Plan

# Unit tests check behaviour, not speed: the fewest calls that still exercise every code path.
FAST = Plan(warmup_calls=2, warmup_time_s=0.0, warmup_max_s=1.0, min_rounds=8, min_time_s=0.0,
            max_time_s=0.2, max_rounds=60, timeout_s=60, isolate=False)


def graph_model(nodes, inputs, outputs, initializers=(), opset=17, domains=()) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domains]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=imports)
    model.ir_version = 10 if opset >= 21 else 8
    return model


def tensor(name, dtype=TensorProto.FLOAT, shape=("batch", 4)):
    return helper.make_tensor_value_info(name, dtype, None if shape is None else list(shape))


@pytest.fixture
def save(tmp_path):
    """save(model, name) -> path of the model written into the test's folder."""
    def _save(model: onnx.ModelProto, name: str = "model.onnx", **kw) -> str:
        path = tmp_path / name
        onnx.save_model(model, path, **kw)
        return str(path)
    return _save


@pytest.fixture
def relu_model(save) -> str:
    return save(graph_model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x")], [tensor("y")]))


@pytest.fixture
def nan_model(save) -> str:
    """x - x = 0, then 0 / 0: every output is NaN."""
    nodes = [helper.make_node("Sub", ["x", "x"], ["z"]), helper.make_node("Div", ["z", "z"], ["y"])]
    return save(graph_model(nodes, [tensor("x")], [tensor("y")]), "nan.onnx")


@pytest.fixture
def no_input_model(save) -> str:
    const = helper.make_tensor("c", TensorProto.FLOAT, [2], [1.0, 2.0])
    return save(graph_model([helper.make_node("Constant", [], ["y"], value=const)], [], [tensor("y", shape=[2])]),
                "const.onnx")


@pytest.fixture
def no_kernel_model(save) -> str:
    """Valid ONNX (Acos on float64) that onnxruntime's CPU provider has no kernel for."""
    return save(graph_model([helper.make_node("Acos", ["x"], ["y"])], [tensor("x", TensorProto.DOUBLE, [3])],
                            [tensor("y", TensorProto.DOUBLE, [3])]), "nokernel.onnx")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def plugins(monkeypatch):
    """plugins("name=module:function;…"): transforms from tests/workers.py, registered through
    PERFKIT_TRANSFORMS (spawned workers inherit it) and removed from the registry afterwards."""
    from perfkit.transforms import TRANSFORMS, register_plugins

    before = set(TRANSFORMS)

    def _register(text: str) -> None:
        monkeypatch.setenv("PERFKIT_TRANSFORMS", text)
        register_plugins()

    yield _register
    for name in set(TRANSFORMS) - before:
        del TRANSFORMS[name]


@pytest.fixture
def fake_backend(monkeypatch, plugins):
    """perfkit's onnxruntime backend replaced by the deterministic one in tests/fakes.py, its variants registered
    as transforms (fast, wrong, same, slow10, broken), and `import onnxruntime` made to fail for the test: what passes
    here needs no onnxruntime."""
    import sys

    from perfkit import backends
    from tests import fakes

    fakes.MACHINE.reset()
    monkeypatch.setitem(backends.REGISTRY, "ort", "tests.fakes:FakeBackend")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    plugins(fakes.TRANSFORMS)
    return fakes
