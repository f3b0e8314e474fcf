"""perfkit's pick from `--variants auto` against the best variant made by hand with onnxruntime's own tools.

Targets (issue 3), on a 2-core CPU, for a ResNet-style CNN and a BERT-style encoder that no unit test
contains (perfkit.examples.resnet / encoder, random weights): `perfkit bench --variants auto
--accuracy-budget "cos>=0.998"` picks a variant at least as fast as the best hand-made one. The issue's
expectations for the hand-made ones: CNN static QDQ int8 ≈ 4× fp32 with graph optimizations off; BERT-style
encoder dynamic int8 ≈ 2.5×.

Every candidate — perfkit's pick, each hand-made file, fp32 with optimizations off and on — is timed in a
spawned worker with perfkit's own timing loop, in ROUNDS interleaved passes, so drift on a shared machine
lands on all of them alike (each pass in its own seeded order); a candidate's figure is the median of its
per-pass medians.
Run: pytest benchmarks/test_variants.py --benchmark-only -s
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from perfkit import bench
from perfkit.analysis.verdict import judge
from perfkit.core.spec import Plan, Target, Workload
from perfkit.files.onnx_file import open_onnx, read_signature
from perfkit.measure.case import Case, run_case
from perfkit.measure.isolate import call_isolated
from perfkit.measure.workload import calibration_feeds, resolve_shapes, synthesize
from perfkit.options import make_spec

BUDGET = "cos>=0.998"
ROUNDS = 4  # interleaved passes over all candidates; each in another order
PLAN = Plan(warmup_time_s=1.0, min_rounds=50, min_time_s=3.0, max_time_s=10.0)
NOISE = 1.05  # "at least as fast": the pick may trail the best hand-made file by this much (timing noise)
MODELS = {"resnet": {}, "encoder": {"sequence": 128}}


def hand_made(name: str, path: Path, folder: Path, calibration) -> dict[str, Path]:
    """What a careful engineer builds by hand, following onnxruntime's quantization and transformer docs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from perfkit.transforms.quantize import FeedsReader

    pre = folder / "pre.onnx"
    quant_pre_process(str(path), str(pre))
    out = {}
    if name == "resnet":
        for label, fmt, activation in (("static QDQ s8s8", QuantFormat.QDQ, QuantType.QInt8),
                                       ("static QDQ u8s8", QuantFormat.QDQ, QuantType.QUInt8),
                                       ("static QOperator u8s8", QuantFormat.QOperator, QuantType.QUInt8)):
            out[label] = folder / (label.replace(" ", "_") + ".onnx")
            quantize_static(str(pre), str(out[label]), FeedsReader(calibration), quant_format=fmt, per_channel=True,
                            activation_type=activation, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    else:
        from onnxruntime.transformers import optimizer

        out["dynamic int8"] = folder / "dynamic.onnx"
        quantize_dynamic(str(pre), str(out["dynamic int8"]), weight_type=QuantType.QInt8)
        fused = folder / "fused.onnx"
        basic = folder / "basic.onnx"
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(basic)
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        optimizer.optimize_model(str(basic), model_type="bert", num_heads=12, hidden_size=768,
                                 opt_level=0).save_model_to_file(str(fused))
        fused_pre = folder / "fused_pre.onnx"
        quant_pre_process(str(fused), str(fused_pre))
        out["fused + dynamic int8"] = folder / "fused_dynamic.onnx"
        quantize_dynamic(str(fused_pre), str(out["fused + dynamic int8"]), weight_type=QuantType.QInt8)
    return out


def time_interleaved(candidates: dict[str, tuple[str, Target]], feed) -> dict[str, list[float]]:
    """Each pass in its own seeded order: a candidate that always ran right after the same neighbour was seen
    here to read 10 % slower than a byte-identical file elsewhere in the order."""
    import random

    medians: dict[str, list[float]] = {k: [] for k in candidates}
    for turn in range(ROUNDS):
        order = list(candidates)
        random.Random(turn).shuffle(order)
        for label in order:
            path, target = candidates[label]
            outcome = call_isolated(run_case, Case(path, target, (feed,), PLAN), PLAN.timeout_s)
            medians[label].append(statistics.median(outcome.timing.samples_ns))
    return medians


@pytest.mark.parametrize("name", list(MODELS))
def test_auto_pick_is_at_least_as_fast_as_the_best_by_hand(benchmark, example_path, tmp_path, name):
    path = example_path(name)
    dims = tuple(f"{k}={v}" for k, v in MODELS[name].items())
    spec = make_spec(path, dims=dims, variants=("auto",), accuracy_budget=BUDGET, plan=PLAN, results_dir=None,
                     cache_dir=str(tmp_path / "cache"))
    report = bench.run(spec)
    verdict = judge(report)
    (best,) = verdict.best
    pick = report.results[best]
    _, proto = open_onnx(path)
    sig = read_signature(proto)
    shapes = resolve_shapes(sig, replace(Workload(), dims=tuple(MODELS[name].items())), path)
    calibration, _ = calibration_feeds(sig, shapes, None, 0, skip=spec.check_feeds)
    (feed,) = synthesize(sig, shapes, 0)
    by_hand = hand_made(name, Path(path), tmp_path, calibration)
    candidates = {"fp32, optimizations off": (path, Target(opt_level="disable")),
                  "fp32, onnxruntime default": (path, Target()),
                  f"perfkit pick: {pick.model.label}": (pick.model.path, pick.target),
                  **{f"by hand: {k}": (str(v), Target()) for k, v in by_hand.items()}}
    rounds = time_interleaved(candidates, feed)
    medians = {k: statistics.median(v) for k, v in rounds.items()}
    from perfkit.files.onnx_file import file_digest

    twins = [k for k, v in by_hand.items() if file_digest([v]) == file_digest([Path(pick.model.path)])]
    off = medians["fp32, optimizations off"]
    print(f"\n{name}: {len(report.results)} rows in perfkit's table, pick = row {best + 1} {pick.model.label} "
          f"({verdict.speedups[best] and verdict.speedups[best].value or 1:.2f}× its baseline in that run)")
    for label, median in medians.items():
        print(f"  {label:<52} {median / 1e6:8.3f} ms   {off / median:5.2f}× fp32 with optimizations off")
    if twins:  # the same bytes timed under two names: the spread between them is this machine's noise
        print(f"  perfkit's pick is byte-identical to the file made by hand as: {', '.join(twins)}")
    benchmark.extra_info.update({label: median for label, median in medians.items()})
    benchmark.pedantic(lambda: None, rounds=1)  # the figures above are the result
    assert pick.accuracy and all(a.cosine >= 0.998 for a in pick.accuracy if a.comparable)
    # A hand-made file with the pick's bytes is the same candidate timed twice: its rounds join the pick's,
    # and the pick is held against the other recipes, round by round (both ran in the same pass, minutes
    # apart at most, so drift between passes cancels).
    ours = [statistics.mean([rounds[f"perfkit pick: {pick.model.label}"][k],
                             *(rounds[f"by hand: {t}"][k] for t in twins)]) for k in range(ROUNDS)]
    others = {k: v for k, v in medians.items() if k.startswith("by hand") and k.removeprefix("by hand: ") not in twins}
    if not others:
        return  # every recipe made by hand is the pick's own bytes
    rival = min(others, key=others.get)
    ratios = sorted(o / b for o, b in zip(ours, rounds[rival], strict=True))
    ratio = statistics.median(ratios)
    # The pass-to-pass spread of the same comparison is this run's noise; 5 % when the passes agree better.
    allowed = max(NOISE, 1 + (ratios[-1] - ratios[0]) / 2)
    print(f"  pick / {rival}, pass by pass: {', '.join(f'{r:.3f}' for r in ratios)} -> median {ratio:.3f} "
          f"(allowed ≤ {allowed:.3f})")
    assert np.isfinite(ratio) and ratio <= allowed, f"perfkit's pick is {ratio:.3f}× the time of {rival}"
