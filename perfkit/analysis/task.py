"""Task accuracy on the labelled --eval samples: which output is judged, the labels checked against it, a
model's top-1/top-5 (a classifier) or MAE/RMSE (a regressor), and a row's metrics beside the reference's.

Integer labels are classes, judged on an output of class scores (floats, last dim = classes; a ZipMap's maps
of class -> probability) or else on an output of one predicted class per item (scikit-learn's `label`); float
labels are targets, judged on a float output of one value per item, (N,) or (N, 1). Pure functions; the labels
are checked against the reference's outputs before anything is timed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from perfkit.analysis.accuracy import TASK_TERMS, Budget, looks_like_scores
from perfkit.core.errors import PerfkitError
from perfkit.core.records import Outputs, TaskAccuracy, TaskScores

TOP_K = 5  # top-5 accuracy, shown where there are at least this many classes


@dataclass(frozen=True)
class Column:
    """One output over every check feed, items on the first axis; `classes`: a map output's keys, which name
    its score columns in order (None: column k is class k)."""

    values: Any
    classes: Any = None


def reference_task(reference: Outputs, labels: Any, subject: str) -> TaskAccuracy:
    """The reference's own task metrics and the output every row is judged on. A PerfkitError when the labels
    cannot be judged on any output, or name classes the scores do not have."""
    name, column = judged_output(reference, labels, subject)
    if is_classes(labels):
        check_classes(column, labels, name, subject)
    scores = task_scores(column, labels)
    return TaskAccuracy(output=name, samples=len(labels), scores=scores, reference=scores)


def task_accuracy(reference: TaskAccuracy, candidate: Outputs, labels: Any) -> TaskAccuracy | None:
    """A row's task metrics on the output the reference was judged on, beside the reference's; None when the
    row has no such output, or one of another size."""
    if reference.output not in candidate.names:
        return None
    try:
        column = output_column(candidate, reference.output)
    except (TypeError, ValueError):
        return None
    if len(column.values) != len(labels):
        return None
    return replace(reference, scores=task_scores(column, labels))


def task_scores(column: Column, labels: Any) -> TaskScores:
    """Top-1 (and top-5 with 5 classes or more) for class labels; MAE and RMSE for float targets."""
    import numpy as np

    values = column.values
    if not is_classes(labels):
        error = values.reshape(len(labels)).astype(np.float64) - labels.astype(np.float64)
        return TaskScores(mae=float(np.mean(np.abs(error))), rmse=float(np.sqrt(np.mean(error ** 2))))
    y = labels.astype(np.int64)
    if values.ndim == 1 or values.shape[1:] == (1,):  # one predicted class per item
        return TaskScores(top1=float(np.mean(values.reshape(len(y)) == y)))
    scores = np.nan_to_num(values.astype(np.float64), nan=-np.inf)  # a NaN score is never the best
    ids = np.arange(scores.shape[1]) if column.classes is None else column.classes
    top1 = float(np.mean(ids[scores.argmax(axis=1)] == y))
    if scores.shape[1] < TOP_K:
        return TaskScores(top1=top1)
    best = ids[np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]]
    return TaskScores(top1=top1, top5=float(np.mean((best == y[:, None]).any(axis=1))))


def judged_output(outputs: Outputs, labels: Any, subject: str) -> tuple[str, Column]:
    """The output the labels are judged on: for classes the first output of class scores, else the first of
    one predicted class per item; for float targets the first float output of one value per item."""
    columns = {}
    for name in outputs.names:
        try:
            columns[name] = output_column(outputs, name)
        except (TypeError, ValueError):
            continue  # strings, ragged sequences: nothing a label is judged on
    sized = {n: c for n, c in columns.items() if len(c.values) == len(labels)}
    single = {n: c for n, c in sized.items() if c.values.ndim == 1 or c.values.shape[1:] == (1,)}
    if is_classes(labels):
        scores = [n for n, c in sized.items() if n not in outputs.features and
                  (c.classes is not None or looks_like_scores(c.values, n)) and c.values.ndim == 2]
        predicted = [n for n, c in single.items() if c.values.dtype.kind in "iu"]
        found = scores or predicted
        want = "class scores (floats, one row of classes per item) or one integer class per item"
    else:
        found = [n for n, c in single.items() if c.values.dtype.kind == "f"]
        want = "one float value per item, (N,) or (N, 1), for the float labels (a regressor's targets)"
    if not found:
        shown = ", ".join(f"{n} {_described(columns.get(n))}" for n in outputs.names)
        raise PerfkitError(subject, f"no output of the model can be judged against its {len(labels)} labels: none "
                           f"gives {want} (outputs: {shown})",
                           "give integer labels for a classifier, float labels for a regressor")
    return found[0], sized[found[0]]


def check_classes(column: Column, labels: Any, name: str, subject: str) -> None:
    """Class labels must be classes the judged output can give: within its scores' width, or its map's keys."""
    import numpy as np

    values = column.values
    if values.ndim == 1 or values.shape[1:] == (1,):
        return  # predicted classes: any label can be right or wrong
    known = np.arange(values.shape[1]) if column.classes is None else column.classes
    unknown = np.setdiff1d(np.unique(labels.astype(np.int64)), known)
    if unknown.size:
        span = f"0–{values.shape[1] - 1}" if column.classes is None else ", ".join(map(str, known[:10]))
        raise PerfkitError(subject, f"labels {', '.join(map(str, unknown[:5]))} are not classes of output "
                           f"'{name}', which scores {values.shape[1]} classes ({span})",
                           "give class indices in the order of the model's scores")


def output_column(outputs: Outputs, name: str) -> Column:
    """One output over every check feed as one array, items on the first axis; a ZipMap's maps of class ->
    score as a matrix by sorted key, with those keys. TypeError/ValueError when it is not numbers."""
    import numpy as np

    k = outputs.names.index(name)
    parts = [feed[k] for feed in outputs.per_feed]
    if parts and all(isinstance(p, list) and p and all(isinstance(v, dict) for v in p) for p in parts):
        keys = sorted(parts[0][0])
        if any(sorted(v) != keys for p in parts for v in p):
            raise ValueError("maps with different keys")
        rows = np.array([[v[key] for key in keys] for p in parts for v in p], dtype=np.float64)
        return Column(rows, np.array(keys) if all(isinstance(key, int) for key in keys) else None)
    if not all(isinstance(p, np.ndarray) and p.ndim >= 1 and p.dtype.kind in "biuf" for p in parts):
        raise TypeError(f"output '{name}' is not numbers per item")
    return Column(np.concatenate(parts) if parts else np.zeros(0))


def is_classes(labels: Any) -> bool:
    """Integer (or bool) labels are classes; float labels are a regressor's targets."""
    return labels.dtype.kind in "biu"


def check_terms(budget: Budget, task: TaskAccuracy, subject: str) -> None:
    """Every task term of the budget applies to these labels: top1/top5 drops to classes (top5 with 5 classes
    or more), MAE/RMSE rises to float targets."""
    for term in budget.task_terms:
        if getattr(task, term) is not None:
            continue
        kind = "classes" if task.reference.top1 is not None else "float targets"
        fits = [t for t in TASK_TERMS if getattr(task, t) is not None]
        raise PerfkitError(f"--accuracy-budget {budget.text}", f"{term} does not apply to the {kind} of {subject}, "
                           f"judged on output '{task.output}'", f"use {' or '.join(fits)}")


def _described(column: Column | None) -> str:
    if column is None:
        return "(not numbers)"
    return f"{column.values.dtype} {tuple(column.values.shape)}"
