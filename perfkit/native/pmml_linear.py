"""A PMML RegressionModel as a Score: linear and logistic regression (one RegressionTable per category, then
softmax, simplemax or, for two categories, logit), numeric predictors on the input fields or on a model chain's
earlier outputs. Pure: an element in, a Score out."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from perfkit.native.pmml_score import Context, Score, targets, total, unsupported

NORMALIZATIONS = ("none", "softmax", "simplemax", "logit")


def regression_score(model: ET.Element, ctx: Context) -> Score:
    function = model.get("functionName", "")
    normalization = model.get("normalizationMethod", "none")
    tables = model.findall("RegressionTable")
    if not tables:
        raise unsupported(ctx, "a RegressionModel without a RegressionTable")
    if function == "regression":
        if normalization != "none" or len(tables) != 1:
            raise unsupported(ctx, f"a regression by normalizationMethod {normalization!r} over {len(tables)} "
                              "tables, which perfkit does not convert")
        return targets(model, table_score(tables[0], ctx), ctx)
    if function != "classification":
        raise unsupported(ctx, f"a RegressionModel of function {function!r}, which perfkit does not convert")
    if normalization not in NORMALIZATIONS:
        raise unsupported(ctx, f"a classification normalized by {normalization}, which perfkit does not convert "
                          f"(it converts {', '.join(NORMALIZATIONS)})")
    width = len(ctx.classes)
    placed = {category(t, ctx): table_score(t, ctx) for t in tables}
    if normalization == "logit":
        if width != 2:
            raise unsupported(ctx, f"a logit over {width} categories, which perfkit does not convert (two only)")
        pivot = category(tables[0], ctx)  # the sigmoid of the first table; the other category gets the rest
        return Score(bias=(0.0,) * width, normalization="logit", pivot=pivot).plus(
            placed[pivot].placed(pivot, width))
    if len(placed) != width:
        missing = [c for k, c in enumerate(ctx.classes) if k not in placed]
        raise unsupported(ctx, f"no RegressionTable for the categories {', '.join(missing)}")
    summed = total([s.placed(k, width) for k, s in placed.items()], width)
    return Score(bias=summed.bias, linear=summed.linear, trees=summed.trees, normalization=normalization)


def category(table: ET.Element, ctx: Context) -> int:
    value = table.get("targetCategory", "")
    if value not in ctx.classes:
        raise unsupported(ctx, f"a RegressionTable for {value!r}, which is not among its target's values "
                          f"({', '.join(ctx.classes)})")
    return ctx.classes.index(value)


def table_score(table: ET.Element, ctx: Context) -> Score:
    """intercept + Σ coefficient · field, a field being an input column or a chained model's output."""
    coefficients = [0.0] * len(ctx.columns)
    chained: list[Score] = []
    for predictor in table:
        if predictor.tag in ("CategoricalPredictor", "PredictorTerm"):
            raise unsupported(ctx, f"a RegressionTable with a {predictor.tag}, which perfkit does not convert "
                              "(numeric predictors only)")
        if predictor.tag != "NumericPredictor":
            continue
        name, weight = predictor.get("name", ""), float(predictor.get("coefficient", 0))
        if float(predictor.get("exponent", 1)) != 1:
            raise unsupported(ctx, f"a NumericPredictor {name} with an exponent, which perfkit does not convert")
        if name in ctx.chained:
            chained.append(ctx.chained[name].scaled(weight))
        elif name in ctx.columns:
            coefficients[ctx.columns[name]] += weight
        else:
            raise unsupported(ctx, f"a RegressionTable on {name!r}, which is not one of its input fields (a "
                              "derived field?)")
    own = Score(bias=(float(table.get("intercept", 0)),), linear=(tuple(coefficients),) if any(coefficients) else ())
    return total([own, *chained], 1)
