"""tune's model files with the real onnxruntime: an int8 file outside the budget is repaired toward float until
one fits, its most sensitive node kept in float when no option does."""

from __future__ import annotations

import time

import numpy as np
import pytest

from perfkit.analysis.accuracy import parse_budget
from perfkit.options import make_spec
from perfkit.prepare import prepare, references
from perfkit.tuning import Reference, build_files
from tests import models

FRAGILE = "/block/conv2.0/Conv"
pytestmark = pytest.mark.slow  # five calibrations (Entropy and Percentile among them), each in a worker: a minute


@pytest.fixture
def fragile(save, tmp_path):
    path = save(models.fragile_conv(), "fragile.onnx")
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "cal.npz", image=rng.random((32, 3, 8, 8), dtype=np.float32))
    return path


def files_for(path, tmp_path, chains, budget):
    spec = make_spec(path, batch=(2,), variants=chains, calibration=str(tmp_path / "cal.npz"), results_dir=None,
                     accuracy_budget=budget, cache_dir=str(tmp_path / "cache"))
    prepared = prepare(spec, compare=True)
    first = references(prepared)[0]
    ref = Reference(first.outputs, parse_budget(budget), first.task, prepared.feeds[0].labels)
    return build_files(prepared, ref, (), time.monotonic() + 300, lambda _: None)


def test_an_int8_file_outside_the_budget_keeps_its_most_sensitive_node_in_float(fragile, tmp_path):
    built = files_for(fragile, tmp_path, ("int8-static:qdq,u8s8",), "cos>=0.999")
    (file,) = built.files
    variant, judged = file.variant, file.judged
    assert judged.ok and variant.model.label.endswith(f"exclude={FRAGILE}")
    assert any(n.startswith("int8-static:qdq,u8s8 outside the budget (logits: cos 0.86") for n in built.notes)
    assert any(f"fits the budget with its 1 most sensitive node(s) in float: {FRAGILE}" in n for n in built.notes)


def test_a_file_inside_the_budget_is_kept_as_built(fragile, tmp_path):
    built = files_for(fragile, tmp_path, ("ort-opt:all",), "cos>=0.999")
    (file,) = built.files
    variant, judged = file.variant, file.judged
    assert judged.ok and variant.model.label == "ort-opt:all" and built.notes == []
