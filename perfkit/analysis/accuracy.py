"""Outputs judged on their own and against a reference, and accuracy budgets. NaN or Inf never passes.

Comparisons run in the parent process on outputs the workers hand back ("run, then compare"): measuring
never depends on comparing, and every variant is compared with one reference on the same feeds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from perfkit.core.errors import PerfkitError
from perfkit.core.records import OutputAccuracy, Outputs, TaskAccuracy

TOP_K = 5  # top-k agreement: the reference's label among the variant's k best scores
MAX_CLASSES = 100_000  # a last dim wider than this is a feature map or a sequence, not class scores
REL_FLOOR = 1e-3  # relative error is taken against max(|ref|, this share of the output's largest |ref|)

# metric name in a budget -> (field of OutputAccuracy, True when larger is better)
METRICS = {"cos": ("cosine", True), "agree": ("agree", True), "top5": ("top_k", True),
           "max_abs": ("max_abs", False), "mean_abs": ("mean_abs", False), "max_rel": ("max_rel", False)}
# task terms in a budget: a row's change against the reference on the --eval labels (properties of TaskAccuracy),
# each bounded from above. Drops are in shares of 1 (percentage points / 100), rises relative to the reference.
TASK_TERMS = ("top1_drop", "top5_drop", "mae_rise", "rmse_rise")
TASK_SLACK = 1e-9  # float error of a difference of shares (0.9 - 0.895 is 0.0050000000000000044): on the bound passes


@dataclass(frozen=True)
class Budget:
    """All conditions must hold: output terms on every comparable output (`cos>=0.999,agree>=0.99`), task terms
    on the row's task accuracy (`top1_drop<=0.5%`)."""

    conditions: tuple[tuple[str, str, float], ...]  # (metric, ">=" or "<=", bound); task bounds in shares of 1

    @property
    def text(self) -> str:
        return ",".join(f"{m}{op}{v * 100:g}%" if m in TASK_TERMS else f"{m}{op}{v:g}"
                        for m, op, v in self.conditions)

    @property
    def task_terms(self) -> tuple[str, ...]:
        return tuple(m for m, _, _ in self.conditions if m in TASK_TERMS)

    def on_outputs(self) -> Budget:
        """The output terms alone: what a comparison of outputs without labels (fp16's repair) can judge."""
        return Budget(tuple(c for c in self.conditions if c[0] in METRICS))


def parse_budget(text: str) -> Budget:
    """`cos>=0.999,max_abs<=1e-2,top1_drop<=0.5%`. A task term's bound is a share of 1 or a percentage:
    `top1_drop<=0.5%` and `top1_drop<=0.005` are both half a percentage point of top-1 accuracy below the
    reference's; `mae_rise<=1%` and `mae_rise<=0.01` both allow an MAE 1 % above the reference's."""
    conditions = []
    for part in (p.strip() for p in text.replace("&", ",").split(",")):
        m = re.fullmatch(r"([a-z_0-9]+)\s*(>=|<=)\s*([0-9.eE+-]+)\s*(%?)", part)
        if not m or (m[1] not in METRICS and m[1] not in TASK_TERMS):
            raise PerfkitError(f"--accuracy-budget {text}", f"cannot read '{part}'",
                               f"write METRIC>=N or METRIC<=N with a metric of {', '.join(METRICS)}, or a task "
                               f"term of {', '.join(TASK_TERMS)} (with --eval), e.g. \"cos>=0.999\" or "
                               "\"max_abs<=1e-2,agree>=0.99\" or \"top1_drop<=0.5%\"")
        larger_better = m[1] in METRICS and METRICS[m[1]][1]
        if (m[2] == ">=") != larger_better:
            raise PerfkitError(f"--accuracy-budget {text}", f"'{part}' bounds {m[1]} the wrong way",
                               f"use {m[1]}{'>=' if larger_better else '<='}N")
        if m[4] and m[1] not in TASK_TERMS:
            raise PerfkitError(f"--accuracy-budget {text}", f"'{part}': only task terms take a percentage",
                               f"write {m[1]}{m[2]}N as a plain number")
        try:
            bound = float(m[3]) / (100 if m[4] else 1)
        except ValueError:
            raise PerfkitError(f"--accuracy-budget {text}", f"'{m[3]}' is not a number", "e.g. 1e-2") from None
        conditions.append((m[1], m[2], bound))
    return Budget(tuple(conditions))


def within(accuracy: tuple[OutputAccuracy, ...], budget: Budget, task: TaskAccuracy | None = None
           ) -> tuple[bool, str]:
    """(passes, the first condition that fails, named): output terms on every comparable output, task terms
    on `task` (the row's task accuracy on the --eval labels). An output with NaN/Inf fails every budget."""
    ok, why = _outputs_within(accuracy, budget)
    if not ok or not budget.task_terms:
        return ok, why
    if task is None:
        return False, "no task accuracy: the row's outputs could not be judged against the labels"
    for term, _, bound in budget.conditions:
        if term not in TASK_TERMS:
            continue
        value = getattr(task, term)
        if value is None or math.isnan(value) or value > bound + TASK_SLACK:
            shown = "n/a" if value is None else f"{value * 100:.3g}%"
            return False, f"{task.output}: {term} {shown} (budget <={bound * 100:g}%)"
    return True, ""


def _outputs_within(accuracy: tuple[OutputAccuracy, ...], budget: Budget) -> tuple[bool, str]:
    """The output terms on every comparable output; no output term passes whatever the outputs (but NaN/Inf)."""
    comparable = [a for a in accuracy if a.comparable]
    if not comparable:
        if not budget.on_outputs().conditions:
            return True, ""
        return False, "no output could be compared"
    for a in comparable:
        if a.nonfinite:
            return False, f"{a.name}: {a.nonfinite} NaN/Inf values"
        for metric, op, bound in budget.conditions:
            if metric not in METRICS:
                continue
            value = getattr(a, METRICS[metric][0])
            if value is None:
                continue  # agree/top5 on outputs that are not class scores
            if math.isnan(value) or (value < bound if op == ">=" else value > bound):
                return False, f"{a.name}: {metric} {value:.6g} (budget {op}{bound:g})"
    return True, ""


def nonfinite(outputs: list[Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """One entry per floating-point output that holds NaN or Inf, e.g. "logits: 3 NaN, 1 Inf of 10"."""
    import numpy as np

    found = []
    for name, out in zip(names, outputs, strict=False):
        if not isinstance(out, np.ndarray) or out.dtype.kind not in "fc":
            continue  # integers, strings, sequences and maps cannot hold NaN
        nan = int(np.isnan(out).sum())
        inf = int(np.isinf(out).sum())
        if nan or inf:
            found.append(f"{name}: {nan} NaN, {inf} Inf of {out.size}")
    return tuple(found)


def compare_outputs(reference: list[list[Any]], candidate: list[list[Any]], names: tuple[str, ...]
                    ) -> tuple[OutputAccuracy, ...]:
    """Each output across all feeds: reference[feed][output] against candidate[feed][output]."""
    out = []
    for k, name in enumerate(names):
        try:
            ref = [_as_array(feed[k]) for feed in reference]
            got = [_as_array(feed[k]) for feed in candidate]
        except (TypeError, ValueError, IndexError) as exc:
            out.append(OutputAccuracy(name, comparable=False, reason=str(exc)))
            continue
        out.append(compare_arrays(name, ref, got))
    return tuple(out)


def against(reference: Outputs, candidate: Outputs) -> tuple[OutputAccuracy, ...]:
    """The candidate's outputs matched to the reference's by name, as a variant may reorder them; a reference
    output the candidate lacks is not comparable, the others are still compared."""
    names, expected = reference.names, reference.per_feed
    position = {n: k for k, n in enumerate(candidate.names)}
    shared = [k for k, n in enumerate(names) if n in position]
    got = [[out[position[names[k]]] for k in shared] for out in candidate.per_feed]
    compared = dict(zip((names[k] for k in shared),
                        compare_outputs([[feed[k] for k in shared] for feed in expected], got,
                                        tuple(names[k] for k in shared)), strict=True))
    for name in set(reference.features) & compared.keys():  # label agreement means nothing on features
        compared[name] = replace(compared[name], agree=None, top_k=None)
    return tuple(compared.get(n) or OutputAccuracy(n, comparable=False, reason="the variant has no output of this "
                                                   "name") for n in names)


def _as_array(value: Any):
    """Tensors as they are; sequences of maps (ZipMap) as a matrix by sorted key; else not comparable."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = sorted(value[0])
        if any(sorted(v) != keys for v in value):
            raise ValueError("maps with different keys")
        return np.array([[v[k] for k in keys] for v in value], dtype=np.float64)
    if isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
        return np.stack(value) if value else np.zeros(0)
    raise TypeError(f"a {type(value).__name__} is not comparable by value")


def compare_arrays(name: str, ref: list, got: list) -> OutputAccuracy:
    import numpy as np

    if any(r.shape != g.shape for r, g in zip(ref, got, strict=True)):
        shapes = f"{ref[0].shape} vs {got[0].shape}"
        return OutputAccuracy(name, comparable=False, reason=f"shapes differ: {shapes}")
    if ref[0].dtype.kind in "OUS":
        same = float(np.mean([np.mean(r == g) for r, g in zip(ref, got, strict=True)]))
        return OutputAccuracy(name, agree=same)
    r = np.concatenate([a.astype(np.float64).ravel() for a in ref])
    g = np.concatenate([a.astype(np.float64).ravel() for a in got])
    finite_ref = np.isfinite(r)
    bad = int(np.sum(finite_ref & ~np.isfinite(g)))
    if r.size == 0:
        return OutputAccuracy(name, comparable=False, reason="empty output")
    if bad:
        return OutputAccuracy(name, max_abs=math.inf, mean_abs=math.inf, max_rel=math.inf, cosine=math.nan,
                              agree=_agreement(name, ref, got)[0], nonfinite=bad)
    r, g = r[finite_ref], g[finite_ref]
    err = np.abs(r - g)
    floor = max(REL_FLOOR * float(np.max(np.abs(r), initial=0.0)), 1e-12)
    norms = float(np.linalg.norm(r)) * float(np.linalg.norm(g))
    cosine = float(np.dot(r, g) / norms) if norms > 0 else (1.0 if not err.any() else 0.0)
    agree, top_k = _agreement(name, ref, got)
    return OutputAccuracy(name, max_abs=float(err.max(initial=0.0)), mean_abs=float(err.mean()) if err.size else 0.0,
                          max_rel=float(np.max(err / np.maximum(np.abs(r), floor), initial=0.0)),
                          cosine=min(cosine, 1.0), agree=agree, top_k=top_k)


SCORE_NAMES = ("logit", "prob", "score", "class", "predictions")  # class scores whatever their rank
# Outputs so named are features, never scores, whatever their shape: BERT's pooler_output is (batch, 768) and
# the index of its largest feature means nothing.
FEATURE_NAMES = ("pool", "hidden", "embed", "feature", "state", "encod", "attention", "last_")


def looks_like_scores(array, name: str = "") -> bool:
    """Class scores: floats of one row per item (batch, classes), or of any rank when the output's name says
    so (token classification's (batch, tokens, classes)); hidden states, pooled features and feature maps are
    not."""
    if array.dtype.kind != "f" or array.ndim < 2 or not 2 <= array.shape[-1] <= MAX_CLASSES:
        return False
    lowered = name.lower()
    if any(word in lowered for word in FEATURE_NAMES):  # class_embedding is an embedding
        return False
    return array.ndim == 2 or any(word in lowered for word in SCORE_NAMES)


def _agreement(name: str, ref: list, got: list) -> tuple[float | None, float | None]:
    """Top-1 label agreement and top-k agreement over every item, or None when these are not scores;
    integer outputs of one value per item (predicted labels) agree when equal."""
    import numpy as np

    if ref[0].dtype.kind in "iu" and ref[0].ndim == 1:
        return float(np.mean(np.concatenate([r == g for r, g in zip(ref, got, strict=True)]))), None
    if not looks_like_scores(ref[0], name):
        return None, None
    classes = ref[0].shape[-1]
    r = np.concatenate([a.reshape(-1, classes) for a in ref])
    g = np.concatenate([np.nan_to_num(a.astype(np.float64), nan=-np.inf).reshape(-1, classes) for a in got])
    # An item whose best score is tied has no label to keep (a random-weight net's uniform softmax): left out.
    decided = (r == r.max(axis=1, keepdims=True)).sum(axis=1) == 1
    if not decided.any():
        return None, None
    r, g = r[decided], g[decided]
    labels = r.argmax(axis=1)
    agree = float(np.mean(labels == g.argmax(axis=1)))
    if classes <= TOP_K:
        return agree, None
    top = np.argpartition(-g, TOP_K - 1, axis=1)[:, :TOP_K]
    return agree, float(np.mean((top == labels[:, None]).any(axis=1)))
