"""What a PMML model becomes on its way to ONNX: per output, a bias, coefficients on the inputs and a sum of
binary trees whose leaves hold one value per output, then a normalization. Sums, averages, votes, targets'
rescaling and model chains are all arithmetic on these, so an ensemble folds into one tree ensemble."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from perfkit.core.errors import PerfkitError

LEAF = "LEAF"
UNSUPPORTED_FIX = ("convert the original model to ONNX with skl2onnx (scikit-learn) or onnxmltools (Spark, "
                   "LightGBM, XGBoost), and bench the .onnx")


@dataclass(frozen=True)
class Tree:
    """One binary tree as ONNX's tree ensembles hold it: node k sends a row to true_ids[k] when its feature
    features[k] passes modes[k] (BRANCH_LEQ, BRANCH_LT, …) against thresholds[k], else to false_ids[k]; a node
    of mode LEAF holds leaves[k], one value per output."""

    modes: tuple[str, ...]
    features: tuple[int, ...]
    thresholds: tuple[float, ...]
    true_ids: tuple[int, ...]
    false_ids: tuple[int, ...]
    leaves: tuple[tuple[float, ...], ...]  # per node; () for a split

    def scaled(self, factor: float) -> Tree:
        return replace(self, leaves=tuple(tuple(v * factor for v in leaf) for leaf in self.leaves))

    def placed(self, index: int, width: int) -> Tree:
        """A one-output tree's leaves moved into output `index` of `width`."""
        return replace(self, leaves=tuple(_placed(leaf, index, width) if leaf else () for leaf in self.leaves))


@dataclass(frozen=True)
class Score:
    """Per output k: bias[k] + Σ linear[k][f]·x[f] + Σ of every tree's leaf value k, then `normalization`
    (none, softmax, simplemax, or logit: the sigmoid of output `pivot`, the other of two classes 1 − that)."""

    bias: tuple[float, ...]
    linear: tuple[tuple[float, ...], ...] = ()  # () when no output has coefficients
    trees: tuple[Tree, ...] = ()
    normalization: str = "none"
    pivot: int = 0

    @property
    def width(self) -> int:
        return len(self.bias)

    @property
    def affine(self) -> bool:
        """Still a plain sum, so it can be scaled and added; a normalized score is the end of the line."""
        return self.normalization == "none"

    def scaled(self, factor: float) -> Score:
        return replace(self, bias=tuple(b * factor for b in self.bias),
                       linear=tuple(tuple(c * factor for c in row) for row in self.linear),
                       trees=tuple(t.scaled(factor) for t in self.trees))

    def shifted(self, constant: float) -> Score:
        return replace(self, bias=tuple(b + constant for b in self.bias))

    def plus(self, other: Score) -> Score:
        if not (self.linear and other.linear):
            linear = self.linear or other.linear
        else:
            linear = tuple(tuple(a + b for a, b in zip(r, s, strict=True))
                           for r, s in zip(self.linear, other.linear, strict=True))
        return replace(self, bias=tuple(a + b for a, b in zip(self.bias, other.bias, strict=True)), linear=linear,
                       trees=self.trees + other.trees)

    def placed(self, index: int, width: int) -> Score:
        """A one-output score moved into output `index` of `width`, the others zero."""
        return replace(self, bias=_placed(self.bias, index, width),
                       linear=tuple(_row(self.linear, k, index) for k in range(width)) if self.linear else (),
                       trees=tuple(t.placed(index, width) for t in self.trees))


def zero(width: int) -> Score:
    return Score(bias=(0.0,) * width)


def total(scores: list[Score], width: int) -> Score:
    out = zero(width)
    for score in scores:
        out = out.plus(score)
    return out


def _placed(values: tuple[float, ...], index: int, width: int) -> tuple[float, ...]:
    return tuple(values[0] if k == index else 0.0 for k in range(width))


def _row(linear: tuple[tuple[float, ...], ...], k: int, index: int) -> tuple[float, ...]:
    return linear[0] if k == index else (0.0,) * len(linear[0])


@dataclass(frozen=True)
class Context:
    """What every model of the document is read against."""

    subject: str
    columns: dict[str, int]  # active field -> its column of X
    float32: frozenset[str]  # fields of dataType float: JPMML compares them (and their thresholds) as float32
    classes: tuple[str, ...]
    chained: dict[str, Score] = field(default_factory=dict)  # a model chain's earlier outputs, by name


def unsupported(ctx: Context, what: str) -> PerfkitError:
    return PerfkitError(ctx.subject, what, UNSUPPORTED_FIX)


def targets(model: ET.Element, score: Score, ctx: Context) -> Score:
    """A regression's Targets: value · rescaleFactor + rescaleConstant."""
    target = model.find("Targets/Target")
    if target is None or model.get("functionName") != "regression":
        return score
    for limit in ("min", "max", "castInteger"):
        if target.get(limit) is not None:
            raise unsupported(ctx, f"its Target has {limit}=, which perfkit does not convert")
    factor, constant = float(target.get("rescaleFactor", 1)), float(target.get("rescaleConstant", 0))
    return score.scaled(factor).shifted(constant)
