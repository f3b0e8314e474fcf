"""When a conversion counts as giving the native model's answers."""

from __future__ import annotations

from perfkit.core.records import OutputAccuracy
from perfkit.native.parity import Parity


def verdict(max_abs: float, max_rel: float, agree: float | None = None) -> bool:
    return Parity((OutputAccuracy("y", max_abs=max_abs, max_rel=max_rel, agree=agree),), 8, ()).ok


def test_large_values_may_differ_by_float32_rounding_but_no_more():
    # a regression near 300: float32's last bit is ~3e-5 there, far past the absolute tolerance
    assert verdict(1.4e-5, 5e-8)
    assert not verdict(1.4e-5, 1e-4)  # a real difference on large values
    assert not verdict(0.064, 0.02)  # the KNeighborsRegressor of issue 15


def test_small_values_are_held_to_the_absolute_tolerance_and_labels_to_all_equal():
    assert verdict(9e-6, 0.5)  # tiny values: a large relative error of a tiny absolute one
    assert not verdict(0.0, 0.0, agree=0.99)
