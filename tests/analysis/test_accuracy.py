import math

import numpy as np
import pytest

from perfkit.analysis.accuracy import compare_outputs, looks_like_scores, nonfinite, parse_budget, within
from perfkit.core.errors import PerfkitError
from perfkit.core.records import OutputAccuracy
from perfkit.output.cells import summary_cells


def test_nan_and_inf_are_counted_per_output():
    outs = [np.array([1.0, np.nan, np.inf, -np.inf], np.float32), np.array([1, 2]), np.array([0.5])]
    assert nonfinite(outs, ("a", "labels", "b")) == ("a: 1 NaN, 2 Inf of 4",)


def test_non_tensor_outputs_are_not_judged_for_nan():
    assert nonfinite([[{"cat": 0.5}], np.array(["x"])], ("zipmap", "text")) == ()


def test_identical_outputs_are_exact():
    ref = [[np.array([[1.0, 2.0, 3.0]], np.float32)]]
    (acc,) = compare_outputs(ref, ref, ("y",))
    assert acc.max_abs == 0 and acc.mean_abs == 0 and acc.max_rel == 0 and acc.cosine == 1.0 and acc.agree == 1.0


def test_errors_over_several_feeds_and_every_output(rng):
    names = ("scores", "hidden")
    ref = [[rng.random((4, 10)), rng.random((4, 3, 8))] for _ in range(3)]
    got = [[r[0] + 0.01, r[1].copy()] for r in ref]
    got[2][1][0, 0, 0] += 0.5  # one element of the last feed only
    scores, hidden = compare_outputs(ref, got, names)
    assert scores.max_abs == pytest.approx(0.01) and scores.mean_abs == pytest.approx(0.01)
    assert scores.agree == 1.0 and scores.top_k == 1.0  # a constant shift keeps every label
    assert hidden.max_abs == pytest.approx(0.5) and hidden.agree is None  # hidden states are not class scores
    assert hidden.cosine < 1.0


def test_label_agreement_and_top_k():
    ref = [[np.eye(6)[[0, 1, 2, 3]]]]
    got = [[np.eye(6)[[0, 1, 5, 3]] + np.eye(6)[[0, 0, 2, 0]] * 0.5]]  # item 2: label 5 first, 2 second
    (acc,) = compare_outputs(ref, got, ("logits",))
    assert acc.agree == 0.75 and acc.top_k == 1.0


def test_nan_never_passes_any_budget():
    ref = [[np.array([[0.1, 0.9]], np.float32)]]
    got = [[np.array([[np.nan, 0.9]], np.float32)]]
    acc = compare_outputs(ref, got, ("y",))
    assert acc[0].nonfinite == 1 and math.isinf(acc[0].max_abs)
    ok, why = within(acc, parse_budget("max_abs<=1e9"))
    assert not ok and "NaN/Inf" in why
    assert summary_cells(acc)[0] == "NaN"


def test_budgets_check_every_output():
    ref = [[np.ones((2, 4)), np.ones((2, 4))]]
    got = [[np.ones((2, 4)), np.ones((2, 4)) * 1.1]]
    acc = compare_outputs(ref, got, ("a", "b"))
    assert within(acc, parse_budget("cos>=0.999")) == (True, "")
    ok, why = within(acc, parse_budget("cos>=0.999,max_abs<=1e-2"))
    assert not ok and why.startswith("b: max_abs 0.1")


def test_maps_are_compared_by_value_and_other_things_are_not_comparable():
    ref = [[[{"a": 0.25, "b": 0.75}], "text"]]
    got = [[[{"a": 0.25, "b": 0.70}], "text"]]
    zipmap, other = compare_outputs(ref, got, ("probs", "odd"))
    assert zipmap.comparable and zipmap.max_abs == pytest.approx(0.05) and zipmap.agree == 1.0
    assert not other.comparable and "not comparable" in other.reason
    assert summary_cells(compare_outputs(ref, got, ("probs", "odd")))[1] == "0.05"


def test_shape_mismatch_is_not_comparable():
    (acc,) = compare_outputs([[np.ones((2, 3))]], [[np.ones((3, 2))]], ("y",))
    assert not acc.comparable and "shapes differ" in acc.reason
    assert within((acc,), parse_budget("cos>=0.9")) == (False, "no output could be compared")


def test_integer_labels_agree_when_equal():
    (acc,) = compare_outputs([[np.array([1, 2, 3, 4])]], [[np.array([1, 2, 0, 4])]], ("label",))
    assert acc.agree == 0.75 and acc.max_abs == 3


@pytest.mark.parametrize("text,message", [
    ("cos>>1", "cannot read 'cos>>1'"),
    ("speed>=2", "cannot read 'speed>=2'"),
    ("cos<=0.9", "bounds cos the wrong way"),
    ("max_abs>=1", "bounds max_abs the wrong way"),
])
def test_bad_budgets_say_how_to_write_one(text, message):
    with pytest.raises(PerfkitError, match=message):
        parse_budget(text)


def test_budget_text_is_canonical():
    assert parse_budget("cos >= 0.999 , agree>=0.99").text == "cos>=0.999,agree>=0.99"


@pytest.mark.parametrize("name, shape, scores", [
    ("pooler_output", (4, 768), False),  # BERT: one row per item, but features, not classes
    ("last_hidden_state", (4, 16, 768), False),
    ("sentence_embedding", (4, 384), False),
    ("class_embedding", (4, 768), False),
    ("logits", (4, 16, 50257), True),  # a language model's: a label per token
    ("predictions", (4, 1000), True),  # Keras applications' softmax
    ("output_0", (4, 10), True),  # an unnamed (batch, classes): a classifier's
])
def test_label_agreement_is_only_for_outputs_that_are_class_scores(name, shape, scores):
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert looks_like_scores(array, name) is scores


def test_a_variant_that_flips_most_labels_is_outside_the_default_budget():
    from perfkit.core.spec import DEFAULT_BUDGET

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 1000)) * 0.01 + 5  # close scores, as a ViT's: cosine near 1 whatever the order
    got = ref + rng.standard_normal((8, 1000)) * 0.01
    (acc,) = compare_outputs([[ref.astype(np.float32)]], [[got.astype(np.float32)]], ("logits",))
    assert acc.cosine > 0.99 and acc.agree < 0.5
    assert within((acc,), parse_budget(DEFAULT_BUDGET))[0] is False


def test_items_whose_best_score_is_tied_have_no_label_to_agree_on():
    uniform = np.full((2, 1000), 0.001, np.float32)  # a random-weight net's softmax
    (acc,) = compare_outputs([[uniform]], [[np.zeros_like(uniform)]], ("predictions",))
    assert acc.agree is None and acc.top_k is None and acc.cosine == 0.0
    ref = np.array([[0.2, 0.2, 0.6], [0.5, 0.5, 0.0]], np.float32)
    (acc,) = compare_outputs([[ref]], [[np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]], np.float32)]], ("probs",))
    assert acc.agree == 0.0  # only the first item has a label, and it changed


def test_outputs_the_graph_shows_are_features_get_no_label_agreement():
    from perfkit.analysis.accuracy import against
    from perfkit.core.records import Outputs

    rng = np.random.default_rng(0)
    ref = [rng.standard_normal((4, 10)).astype(np.float32), rng.standard_normal((4, 768)).astype(np.float32)]
    got = [ref[0], -ref[1]]
    logits, pooled = against(Outputs(("output_0", "output_1"), (ref,), features=("output_1",)),
                             Outputs(("output_0", "output_1"), (got,)))
    assert logits.agree == 1.0 and pooled.agree is None and pooled.top_k is None and pooled.cosine < 0


def _task(top1=None, ref_top1=None, mae=None, ref_mae=None):
    from perfkit.core.records import TaskAccuracy, TaskScores

    return TaskAccuracy(output="y", samples=200, scores=TaskScores(top1=top1, mae=mae),
                        reference=TaskScores(top1=ref_top1, mae=ref_mae))


EXACT = (OutputAccuracy("y", cosine=1.0, max_abs=0.0),)


def test_a_task_term_reads_as_a_percentage_or_a_share_of_one():
    assert parse_budget("top1_drop<=0.5%") == parse_budget("top1_drop<=0.005")
    assert parse_budget("cos>=0.99,mae_rise<=1%").text == "cos>=0.99,mae_rise<=1%"


@pytest.mark.parametrize("text", ["cos>=99%", "top1_drop>=0.5%"])
def test_a_percentage_on_an_output_term_or_a_task_term_bounded_from_below_is_refused(text):
    with pytest.raises(PerfkitError, match="only task terms take a percentage|the wrong way"):
        parse_budget(text)


@pytest.mark.parametrize("top1,passes", [(0.895, True), (0.89, False)])
def test_top1_drop_passes_on_its_bound_and_fails_past_it(top1, passes):
    ok, why = within(EXACT, parse_budget("cos>=0.99,top1_drop<=0.5%"), _task(top1=top1, ref_top1=0.9))
    assert ok is passes
    assert why == ("" if passes else "y: top1_drop 1% (budget <=0.5%)")


@pytest.mark.parametrize("mae,passes", [(0.101, True), (0.1011, False)])
def test_mae_rise_is_relative_to_the_references_mae(mae, passes):
    assert within(EXACT, parse_budget("mae_rise<=1%"), _task(mae=mae, ref_mae=0.1))[0] is passes


def test_a_task_term_without_task_accuracy_fails_and_says_why():
    assert within(EXACT, parse_budget("top1_drop<=1%")) == \
        (False, "no task accuracy: the row's outputs could not be judged against the labels")


def test_output_terms_still_fail_a_row_whose_task_metrics_pass():
    worse = (OutputAccuracy("y", cosine=0.5, max_abs=1.0),)
    assert within(worse, parse_budget("cos>=0.99,top1_drop<=1%"), _task(top1=0.9, ref_top1=0.9))[0] is False
