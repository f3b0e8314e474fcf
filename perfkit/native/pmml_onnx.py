"""A Score as an ONNX model, built with onnx.helper: one float input X [batch, n_features], computed in float64
as JPMML computes (trees by ai.onnx.ml 3's TreeEnsembleRegressor / TreeEnsembleClassifier on double inputs,
coefficients by MatMul), and the outputs of perfkit's scikit-learn conversions: `variable` [batch, 1] for a
regression; `label` [batch] and `probabilities` [batch, classes] for a classification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perfkit.native.pmml_score import LEAF, Score, Tree

ML_OPSET = 3  # TreeEnsemble*'s *_as_tensor attributes (double thresholds and weights) came in ai.onnx.ml 3
REGRESSION_OUTPUTS, CLASSIFICATION_OUTPUTS = ("variable",), ("label", "probabilities")


@dataclass(frozen=True)
class Head:
    """What the Score's outputs are: a regression's value, or a classifier's categories (as int64 labels for an
    integer target, else strings)."""

    function: str  # regression or classification
    classes: tuple[str, ...] = ()
    label_type: str = "string"


def build(score: Score, head: Head, n_features: int, opset: int) -> Any:
    """The ONNX ModelProto; checked by onnx.checker."""
    import onnx
    from onnx import TensorProto, helper

    graph = _Graph()
    graph.add("Cast", ["X"], ["X_double"], to=TensorProto.DOUBLE)
    if head.function == "classification" and score.trees and score.affine and not score.linear:
        graph.add("TreeEnsembleClassifier", ["X_double"], list(CLASSIFICATION_OUTPUTS), domain="ai.onnx.ml",
                  **_classifier(score, head))
    else:
        summed = _summed(graph, score, n_features)
        if head.function == "regression":
            graph.add("Cast", [summed], ["variable"], to=TensorProto.FLOAT)
        else:
            _classify(graph, _normalized(graph, score, summed), head)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    proto = helper.make_model(
        helper.make_graph(graph.nodes, "pmml", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                              ["batch", n_features])],
                          _outputs(head), initializer=graph.constants),
        opset_imports=opsets, producer_name="perfkit", doc_string="converted from PMML by perfkit",
        ir_version=helper.find_min_ir_version_for(opsets))  # the oldest onnxruntime that runs these opsets
    onnx.checker.check_model(proto)
    return proto


def _outputs(head: Head) -> list[Any]:
    from onnx import TensorProto, helper

    if head.function == "regression":
        return [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["batch", 1])]
    label = TensorProto.INT64 if head.label_type == "int64" else TensorProto.STRING
    return [helper.make_tensor_value_info("label", label, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(head.classes)])]


class _Graph:
    """Nodes and constants with names of their own."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.constants: list[Any] = []

    def add(self, op: str, inputs: list[str], outputs: list[str], domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}", domain=domain,
                                           **attrs))
        return outputs[0]

    def constant(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        self.constants.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def temp(self, stem: str) -> str:
        return f"{stem}_{len(self.nodes)}"


def _summed(graph: _Graph, score: Score, n_features: int) -> str:
    """The raw scores [batch, width] in float64: the trees' sum (bias as their base values), plus the inputs
    times the coefficients."""
    from onnx import TensorProto

    width = score.width
    bias = np.asarray(score.bias, dtype=np.float64)
    at = None
    if score.trees:
        floats = graph.add("TreeEnsembleRegressor", ["X_double"], [graph.temp("trees")], domain="ai.onnx.ml",
                           **_regressor(score))
        at = graph.add("Cast", [floats], [graph.temp("trees_double")], to=TensorProto.DOUBLE)
    if score.linear or at is None:
        weights = np.asarray(score.linear, dtype=np.float64).T if score.linear else np.zeros((n_features, width))
        product = graph.add("MatMul", ["X_double", graph.constant("coefficients", weights)], [graph.temp("linear")])
        added = at or graph.constant("intercepts", bias.reshape(1, width))
        at = graph.add("Add", [product, added], [graph.temp("summed")])
    return at


def _normalized(graph: _Graph, score: Score, summed: str) -> str:
    """Probabilities [batch, classes] in float64 from the raw scores."""
    if score.normalization == "softmax":
        return graph.add("Softmax", [summed], [graph.temp("softmax")], axis=1)
    if score.normalization == "simplemax":
        sums = graph.add("ReduceSum", [summed, graph.constant("class_axis", np.array([1]))], [graph.temp("sums")],
                         keepdims=1)
        return graph.add("Div", [summed, sums], [graph.temp("simplemax")])
    if score.normalization == "logit":
        pivot = graph.add("Gather", [summed, graph.constant("pivot", np.array([score.pivot]))],
                          [graph.temp("pivot")], axis=1)
        sigmoid = graph.add("Sigmoid", [pivot], [graph.temp("sigmoid")])
        rest = graph.add("Sub", [graph.constant("one", np.array(1.0)), sigmoid], [graph.temp("rest")])
        parts = [sigmoid, rest] if score.pivot == 0 else [rest, sigmoid]
        return graph.add("Concat", parts, [graph.temp("logit")], axis=1)
    return summed


def _classify(graph: _Graph, probabilities: str, head: Head) -> None:
    from onnx import TensorProto

    graph.add("Cast", [probabilities], ["probabilities"], to=TensorProto.FLOAT)
    index = graph.add("ArgMax", [probabilities], [graph.temp("argmax")], axis=1, keepdims=0)
    graph.add("Gather", [graph.constant("classes", _labels(head)), index], ["label"], axis=0)


def _labels(head: Head) -> Any:
    if head.label_type == "int64":
        return np.asarray([int(float(c)) for c in head.classes], dtype=np.int64)
    return np.asarray(head.classes, dtype=object)


def _nodes(trees: tuple[Tree, ...]) -> dict[str, Any]:
    """The node attributes both tree ensembles share, every tree in one flat list."""
    from onnx import numpy_helper

    ids = [(t, k) for t, tree in enumerate(trees) for k in range(len(tree.modes))]
    return {"nodes_treeids": [t for t, _ in ids], "nodes_nodeids": [k for _, k in ids],
            "nodes_modes": [m for tree in trees for m in tree.modes],
            "nodes_featureids": [f for tree in trees for f in tree.features],
            "nodes_values_as_tensor": numpy_helper.from_array(
                np.asarray([v for tree in trees for v in tree.thresholds], dtype=np.float64), "nodes_values"),
            "nodes_truenodeids": [i for tree in trees for i in tree.true_ids],
            "nodes_falsenodeids": [i for tree in trees for i in tree.false_ids],
            "nodes_missing_value_tracks_true": [0] * len(ids)}


def _leaves(trees: tuple[Tree, ...]) -> tuple[list[int], list[int], list[int], list[float]]:
    """(tree ids, node ids, output ids, weights): every leaf's every value, zeros too, so that each output (each
    class) has weights and onnxruntime never takes a two-class ensemble for its one-weight binary form."""
    tree_ids, node_ids, targets, weights = [], [], [], []
    for t, tree in enumerate(trees):
        for k, (mode, leaf) in enumerate(zip(tree.modes, tree.leaves, strict=True)):
            if mode != LEAF:
                continue
            for target, value in enumerate(leaf):
                tree_ids.append(t)
                node_ids.append(k)
                targets.append(target)
                weights.append(value)
    return tree_ids, node_ids, targets, weights


def _regressor(score: Score) -> dict[str, Any]:
    from onnx import numpy_helper

    tree_ids, node_ids, targets, weights = _leaves(score.trees)
    return {**_nodes(score.trees), "n_targets": score.width, "aggregate_function": "SUM", "post_transform": "NONE",
            "target_treeids": tree_ids, "target_nodeids": node_ids, "target_ids": targets,
            "target_weights_as_tensor": numpy_helper.from_array(np.asarray(weights, dtype=np.float64),
                                                                "target_weights"),
            "base_values_as_tensor": numpy_helper.from_array(np.asarray(score.bias, dtype=np.float64),
                                                             "base_values")}


def _classifier(score: Score, head: Head) -> dict[str, Any]:
    from onnx import numpy_helper

    tree_ids, node_ids, targets, weights = _leaves(score.trees)
    labels = _labels(head)
    named = {"classlabels_int64s": labels.tolist()} if head.label_type == "int64" else \
        {"classlabels_strings": [str(c) for c in labels]}
    return {**_nodes(score.trees), **named, "post_transform": "NONE",
            "class_treeids": tree_ids, "class_nodeids": node_ids, "class_ids": targets,
            "class_weights_as_tensor": numpy_helper.from_array(np.asarray(weights, dtype=np.float64),
                                                               "class_weights"),
            "base_values_as_tensor": numpy_helper.from_array(np.asarray(score.bias, dtype=np.float64),
                                                             "base_values")}
