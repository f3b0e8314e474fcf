"""Task accuracy on labels: the metrics equal scikit-learn's on the same arrays; the labels are checked against
the outputs; a row is judged beside the reference."""

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error, top_k_accuracy_score

from perfkit.analysis.accuracy import parse_budget
from perfkit.analysis.task import check_terms, reference_task, task_accuracy
from perfkit.core.errors import PerfkitError
from perfkit.core.records import Outputs


def split(name, array, parts=4):
    """One output over several check feeds, as a model's outputs on them come back."""
    return Outputs((name,), tuple([chunk] for chunk in np.array_split(array, parts)))


def test_top1_and_top5_equal_scikit_learns(rng):
    scores = rng.random((60, 10), dtype=np.float32)
    labels = rng.integers(0, 10, 60)
    task = reference_task(split("logits", scores), labels, "eval.npz")
    assert task.output == "logits" and task.samples == 60
    assert task.scores.top1 == pytest.approx(accuracy_score(labels, scores.argmax(1)))
    assert task.scores.top5 == pytest.approx(top_k_accuracy_score(labels, scores, k=5, labels=range(10)))


def test_top5_is_left_out_below_five_classes(rng):
    task = reference_task(split("probabilities", rng.random((20, 4))), rng.integers(0, 4, 20), "eval.npz")
    assert task.scores.top1 is not None and task.scores.top5 is None


def test_a_predicted_label_output_is_judged_when_there_are_no_scores(rng):
    predicted = rng.integers(0, 3, 40).astype(np.int64)
    labels = rng.integers(0, 3, 40)
    task = reference_task(split("label", predicted), labels, "eval.npz")
    assert task.output == "label" and task.scores.top1 == pytest.approx(accuracy_score(labels, predicted))


def test_class_scores_are_preferred_to_a_predicted_label(rng):
    scores = rng.random((8, 3))
    outputs = Outputs(("label", "probabilities"), ([scores.argmax(1).astype(np.int64), scores],))
    assert reference_task(outputs, rng.integers(0, 3, 8), "eval.npz").output == "probabilities"


def test_zipmap_scores_name_their_classes_by_key():
    maps = [{1: 0.1, 3: 0.7, 7: 0.2}, {1: 0.6, 3: 0.3, 7: 0.1}, {1: 0.1, 3: 0.1, 7: 0.8}]
    outputs = Outputs(("output_probability",), ([maps],))
    task = reference_task(outputs, np.array([3, 1, 3]), "eval.npz")
    assert task.scores.top1 == pytest.approx(2 / 3)


def test_mae_and_rmse_equal_scikit_learns(rng):
    predicted = rng.random((30, 1), dtype=np.float32)
    targets = rng.random(30) * 2
    task = reference_task(split("variable", predicted), targets, "eval.npz")
    assert task.scores.mae == pytest.approx(mean_absolute_error(targets, predicted[:, 0]))
    assert task.scores.rmse == pytest.approx(math.sqrt(mean_squared_error(targets, predicted[:, 0])))
    assert task.scores.top1 is None


def test_a_row_is_judged_beside_the_reference(rng):
    scores = rng.random((50, 6))
    labels = scores.argmax(1)
    reference = reference_task(split("logits", scores), labels, "eval.npz")
    worse = scores.copy()
    worse[:5] = -worse[:5]  # five items of fifty lose their best class
    row = task_accuracy(reference, split("logits", worse, parts=5), labels)
    assert row.reference.top1 == 1.0 and row.scores.top1 == pytest.approx(0.9)
    assert row.top1_drop == pytest.approx(0.1) and row.output == "logits"


def test_a_regressors_rise_is_relative_to_the_references_error(rng):
    targets = rng.random(20)
    reference = reference_task(split("y", targets + 0.1), targets, "eval.npz")
    row = task_accuracy(reference, split("y", targets + 0.11), targets)
    assert row.mae_rise == pytest.approx(0.1) and row.rmse_rise == pytest.approx(0.1)


def test_a_row_without_the_judged_output_has_no_task_accuracy(rng):
    labels = rng.integers(0, 4, 8)
    reference = reference_task(split("logits", rng.random((8, 4))), labels, "eval.npz")
    assert task_accuracy(reference, split("renamed", rng.random((8, 4))), labels) is None


def test_labels_outside_the_scores_classes_are_an_error(rng):
    with pytest.raises(PerfkitError, match=r"labels 4, 9 are not classes of output 'logits', which scores 4 "
                                           r"classes \(0–3\)"):
        reference_task(split("logits", rng.random((6, 4))), np.array([0, 1, 4, 9, 2, 3]), "eval.npz")


def test_float_labels_need_an_output_of_one_value_per_item(rng):
    with pytest.raises(PerfkitError, match=r"eval.npz: no output .* one float value per item.*logits float64 "
                                           r"\(8, 4\)"):
        reference_task(split("logits", rng.random((8, 4))), rng.random(8), "eval.npz")


def test_class_labels_need_scores_or_predicted_classes(rng):
    with pytest.raises(PerfkitError, match="none gives class scores .* give integer labels for a classifier"):
        reference_task(split("hidden_states", rng.random((8, 3, 16))), rng.integers(0, 3, 8), "eval.npz")


def test_a_budget_term_that_does_not_fit_the_labels_is_an_error(rng):
    task = reference_task(split("logits", rng.random((8, 4))), rng.integers(0, 4, 8), "eval.npz")
    check_terms(parse_budget("top1_drop<=1%"), task, "eval.npz")
    with pytest.raises(PerfkitError, match="mae_rise does not apply to the classes of eval.npz.*use top1_drop"):
        check_terms(parse_budget("mae_rise<=1%"), task, "eval.npz")
    with pytest.raises(PerfkitError, match="top5_drop does not apply"):
        check_terms(parse_budget("top5_drop<=1%"), task, "eval.npz")
