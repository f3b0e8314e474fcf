"""PMML trees and ensembles as a Score: a TreeModel's n-ary nodes as ONNX's binary trees, and a MiningModel's
segments (sum, weightedSum, average, weightedAverage, majorityVote, weightedMajorityVote, modelChain) folded into
one sum of trees. Pure: an element tree in, a Score out.

A node's children are tried in order and the first whose predicate holds is taken, so a node with children
C1…Cn becomes a chain of binary splits: C1's test, true → C1's subtree, false → C2's test, …, and past the last
the node's own score (noTrueChildStrategy returnLastPrediction) or no prediction (NaN). Not handled: missing
values (a NaN input goes down a split's false branch, where JPMML applies missingValueStrategy), surrogate
predicates beyond their first, set predicates, and segments chosen by predicates."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

import numpy as np

from perfkit.files.pmml import MODEL_TYPES
from perfkit.native.pmml_linear import regression_score
from perfkit.native.pmml_score import LEAF, Context, Score, Tree, targets, total, unsupported

PREDICATES = ("SimplePredicate", "CompoundPredicate", "SimpleSetPredicate", "True", "False")
MODES = {"lessThan": "BRANCH_LT", "lessOrEqual": "BRANCH_LEQ", "greaterThan": "BRANCH_GT",
         "greaterOrEqual": "BRANCH_GTE", "equal": "BRANCH_EQ", "notEqual": "BRANCH_NEQ"}
MAX_NODES = 20_000_000  # compound predicates copy subtrees: past this, the ONNX file would not be worth having


def model_score(model: ET.Element, ctx: Context) -> Score:
    """Any model perfkit converts, as a Score: TreeModel, MiningModel, RegressionModel."""
    if model.tag == "TreeModel":
        return tree_score(model, ctx)
    if model.tag == "MiningModel":
        return mining_score(model, ctx)
    if model.tag == "RegressionModel":
        return regression_score(model, ctx)
    raise unsupported(ctx, f"the PMML holds a {model.tag}, which perfkit does not convert")


# ---- TreeModel ------------------------------------------------------------------------------------------

def tree_score(model: ET.Element, ctx: Context, vote: bool = False) -> Score:
    """A TreeModel; `vote`: each leaf gives its class one vote (majorityVote) instead of its distribution."""
    function = model.get("functionName", "")
    if function not in ("regression", "classification"):
        raise unsupported(ctx, f"a TreeModel of function {function!r}, which perfkit does not convert")
    width = 1 if function == "regression" else len(ctx.classes)
    root = model.find("Node")
    if root is None:
        raise unsupported(ctx, "a TreeModel without a root Node")
    builder = _Builder(ctx, function, vote, width,
                       model.get("noTrueChildStrategy", "returnNullPrediction") == "returnLastPrediction")
    tree = builder.tree(builder.chain([root], None))
    return targets(model, Score(bias=(0.0,) * width, trees=(tree,)), ctx)


@dataclass
class _Builder:
    """A binary tree grown bottom-up in ONNX's flat layout; node 0 is the root once `tree` reorders it."""

    ctx: Context
    function: str
    vote: bool
    width: int
    last_prediction: bool
    modes: list[str] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    leaves: list[tuple[float, ...]] = field(default_factory=list)
    used: set[int] = field(default_factory=set)  # ids some split points to: a second use takes a copy

    def chain(self, children: list[ET.Element], parent: ET.Element | None) -> int:
        """The first child whose predicate holds, else the parent's fallback; bottom-up, so the false branch of
        each test is the rest of the chain."""
        tried = []
        for child in children:
            predicate = _predicate(child, self.ctx)
            if predicate.tag == "False":
                continue
            tried.append((child, predicate))
            if predicate.tag == "True":
                break
        at = self.node(tried.pop()[0]) if tried and tried[-1][1].tag == "True" else self.fallback(parent)
        for child, predicate in reversed(tried):
            at = self.test(predicate, self.node(child), at)
        return at

    def node(self, element: ET.Element) -> int:
        children = element.findall("Node")
        if not children:
            return self.leaf(self.values(element))
        return self.chain(children, element)

    def fallback(self, parent: ET.Element | None) -> int:
        if parent is not None and self.last_prediction:
            return self.leaf(self.values(parent))
        return self.leaf((math.nan,) * self.width)  # JPMML returns no prediction: NaN here

    def test(self, predicate: ET.Element, yes: int, no: int) -> int:
        """A split sending rows that pass `predicate` to `yes`, the others to `no`."""
        if predicate.tag == "SimplePredicate":
            return self.split(*self.simple(predicate), yes, no)
        if predicate.tag == "True":
            return yes
        if predicate.tag == "False":
            return no
        if predicate.tag != "CompoundPredicate":
            raise unsupported(self.ctx, f"its tree tests a {predicate.tag}, which perfkit does not convert")
        operator = predicate.get("booleanOperator", "")
        parts = [p for p in predicate if p.tag in PREDICATES]
        if operator == "surrogate" and parts:  # the first decides wherever its field is present
            return self.test(parts[0], yes, no)
        if operator not in ("and", "or") or not parts:
            raise unsupported(self.ctx, f"its tree tests a CompoundPredicate {operator!r}, which perfkit "
                              "does not convert")
        at = yes if operator == "and" else no
        for part in reversed(parts):  # and: each part's failure goes to `no`; or: each part's pass to `yes`
            at = self.test(part, at, no) if operator == "and" else self.test(part, yes, at)
        return at

    def simple(self, predicate: ET.Element) -> tuple[int, str, float]:
        name, operator = predicate.get("field", ""), predicate.get("operator", "")
        if name not in self.ctx.columns:
            raise unsupported(self.ctx, f"its tree splits on {name!r}, which is not one of its input fields (a "
                              "derived field?)")
        if operator not in MODES:
            raise unsupported(self.ctx, f"its tree tests {name} {operator}, which perfkit does not convert "
                              "(missing values are not handled)")
        try:
            value = float(predicate.get("value", ""))
        except ValueError:
            raise unsupported(self.ctx, f"its tree compares {name} to {predicate.get('value')!r}, not a number "
                              "(categorical fields are not handled)") from None
        if name in self.ctx.float32:
            value = float(np.float32(value))
        return self.ctx.columns[name], MODES[operator], value

    def split(self, feature: int, mode: str, value: float, yes: int, no: int) -> int:
        return self.add(mode, feature, value, self.claim(yes), self.claim(no), ())

    def leaf(self, values: tuple[float, ...]) -> int:
        return self.add(LEAF, 0, 0.0, 0, 0, values)

    def add(self, mode: str, feature: int, value: float, yes: int, no: int, leaf: tuple[float, ...]) -> int:
        if len(self.modes) >= MAX_NODES:
            raise unsupported(self.ctx, f"its trees unfold to more than {MAX_NODES:,} binary nodes")
        self.modes.append(mode)
        self.features.append(feature)
        self.thresholds.append(value)
        self.true_ids.append(yes)
        self.false_ids.append(no)
        self.leaves.append(leaf)
        return len(self.modes) - 1

    def claim(self, at: int) -> int:
        """`at` as a split's child; a copy once it is some split's child already (a tree, not a graph)."""
        if at in self.used:
            at = self.copy(at)
        self.used.add(at)
        return at

    def copy(self, at: int) -> int:
        """A deep copy of the subtree at `at`, its nodes its own."""
        if self.modes[at] == LEAF:
            return self.leaf(self.leaves[at])
        yes, no = self.copy(self.true_ids[at]), self.copy(self.false_ids[at])
        self.used.update((yes, no))
        return self.add(self.modes[at], self.features[at], self.thresholds[at], yes, no, ())

    def values(self, element: ET.Element) -> tuple[float, ...]:
        if self.function == "regression":
            score = element.get("score")
            return (math.nan if score is None else float(score),)
        return self.distribution(element)

    def distribution(self, element: ET.Element) -> tuple[float, ...]:
        """The class probabilities at a node: its ScoreDistribution (probability=, else recordCount= shares);
        one-hot on its score without one, or when voting."""
        classes, score = self.ctx.classes, element.get("score")
        dist = element.findall("ScoreDistribution")
        if dist and not (self.vote and score is not None):
            probabilities = [d.get("probability") for d in dist]
            if all(p is not None for p in probabilities):
                weights = [float(p or 0) for p in probabilities]
            else:
                counts = [float(d.get("recordCount", 0)) for d in dist]
                weights = [c / sum(counts) if sum(counts) else math.nan for c in counts]
            out = [0.0] * len(classes)
            for d, w in zip(dist, weights, strict=True):
                out[self.category(d.get("value", ""))] += w
            if self.vote:
                out = [1.0 if k == int(np.argmax(out)) else 0.0 for k in range(len(out))]
            return tuple(out)
        if score is None:
            return (math.nan,) * len(classes)
        index = self.category(score)
        return tuple(1.0 if k == index else 0.0 for k in range(len(classes)))

    def category(self, value: str) -> int:
        if value not in self.ctx.classes:
            raise unsupported(self.ctx, f"its tree scores the category {value!r}, which is not among its target's "
                              f"values ({', '.join(self.ctx.classes)})")
        return self.ctx.classes.index(value)

    def tree(self, root: int) -> Tree:
        """The nodes renumbered so that the root is node 0, as ONNX's ensembles expect, and any node no split
        reaches dropped."""
        order, todo = [], [root]
        while todo:
            at = todo.pop()
            order.append(at)
            if self.modes[at] != LEAF:
                todo += [self.false_ids[at], self.true_ids[at]]
        new = {old: k for k, old in enumerate(order)}
        return Tree(modes=tuple(self.modes[o] for o in order), features=tuple(self.features[o] for o in order),
                    thresholds=tuple(self.thresholds[o] for o in order),
                    true_ids=tuple(new.get(self.true_ids[o], 0) if self.modes[o] != LEAF else 0 for o in order),
                    false_ids=tuple(new.get(self.false_ids[o], 0) if self.modes[o] != LEAF else 0 for o in order),
                    leaves=tuple(self.leaves[o] for o in order))


def _predicate(element: ET.Element, ctx: Context) -> ET.Element:
    found = next((c for c in element if c.tag in PREDICATES), None)
    if found is None:
        raise unsupported(ctx, f"a {element.tag} without a predicate")
    return found


# ---- MiningModel ----------------------------------------------------------------------------------------

def mining_score(model: ET.Element, ctx: Context) -> Score:
    segmentation = model.find("Segmentation")
    if segmentation is None:
        raise unsupported(ctx, "a MiningModel without a Segmentation")
    method = segmentation.get("multipleModelMethod", "")
    segments = [_segment(s, ctx) for s in segmentation.findall("Segment")]
    if not segments:
        raise unsupported(ctx, "a MiningModel without segments")
    if method == "modelChain":
        return targets(model, chain_score(segments, ctx), ctx)
    function = model.get("functionName", "")
    weights = [w for w, _ in segments]
    shares = {"sum": [1.0] * len(weights), "weightedSum": weights,
              "average": [1 / len(weights)] * len(weights),
              "weightedAverage": [w / sum(weights) for w in weights]}
    if function == "classification":
        shares = {"average": shares["average"], "weightedAverage": shares["weightedAverage"],
                  "majorityVote": shares["average"], "weightedMajorityVote": shares["weightedAverage"]}
    if function not in ("regression", "classification") or method not in shares:
        raise unsupported(ctx, f"a MiningModel of function {function!r} that combines its segments by "
                          f"{method!r}, which perfkit does not convert")
    vote = method in ("majorityVote", "weightedMajorityVote")
    width = 1 if function == "regression" else len(ctx.classes)
    scores = [_segment_score(m, ctx, vote).scaled(share) for (_, m), share in zip(segments, shares[method],
                                                                                   strict=True)]
    return targets(model, total(scores, width), ctx)


def _segment(segment: ET.Element, ctx: Context) -> tuple[float, ET.Element]:
    if _predicate(segment, ctx).tag != "True":
        raise unsupported(ctx, "a MiningModel whose segments are chosen by predicates, which perfkit does not "
                          "convert")
    model = next((c for c in segment if c.tag in MODEL_TYPES), None)
    if model is None:
        raise unsupported(ctx, "a Segment without a model")
    return float(segment.get("weight", 1)), model


def _segment_score(model: ET.Element, ctx: Context, vote: bool) -> Score:
    if vote and model.tag != "TreeModel":
        raise unsupported(ctx, f"a majority vote of {model.tag}s: perfkit converts votes of TreeModels only")
    score = tree_score(model, ctx, vote=True) if vote else model_score(model, ctx)
    if not score.affine:
        raise unsupported(ctx, f"a MiningModel averaging a {model.tag} normalized by {score.normalization}, "
                          "which perfkit does not convert")
    return score


def chain_score(segments: list[tuple[float, ET.Element]], ctx: Context) -> Score:
    """A modelChain: each segment but the last feeds named outputs to those after it (GradientBoosting-
    Classifier's decision functions to its softmax), which are sums, so the whole chain is one Score."""
    chained = dict(ctx.chained)
    for _, model in segments[:-1]:
        score = model_score(model, replace(ctx, chained=chained))
        for output in model.iterfind("Output/OutputField"):
            if output.get("feature", "predictedValue") != "predictedValue" or len(output):
                raise unsupported(ctx, f"a model chain passing on {output.get('name')!r}, which is not its "
                                  "predicted value")
            if score.width != 1 or not score.affine:
                raise unsupported(ctx, f"a model chain passing on the output of a {model.tag} of "
                                  f"{model.get('functionName')}, which perfkit does not convert")
            chained[output.get("name", "")] = score
    return model_score(segments[-1][1], replace(ctx, chained=chained))
