"""Ratios you can trust on a busy machine (issue 12): A/A and planted-slowdown trials on real onnxruntime, under a
bursty background load this benchmark starts and stops itself, with the interleaved design against the
sequential one it replaced.

- A/A: `perfkit bench` of a model with a variant that is a byte-for-byte copy (an identity transform, as a new
  user would write it with PERFKIT_TRANSFORMS). Target: the copy is never called significantly different, and
  its 95 % interval holds 1.0 (allowed: the one trial in twenty such an interval misses by definition).
- Planted slowdown: `perfkit compare OLD NEW` where NEW is OLD with one more of its ten equal layers (about
  10 % slower). Target: called slower every time, its interval excluding 0.
- Wall time of a trial, interleaved against sequential, at the same --min-time.

Models are built here (none of the unit tests use them): an MLP of ten 384-wide MatMul+Relu layers (batch 32)
and a ResNet-style CNN (perfkit.examples.resnet at width 16, 96x96).
Run: pytest benchmarks/test_interleaving.py --benchmark-only -s
"""

from __future__ import annotations

import multiprocessing as mp
import random
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from perfkit import bench
from perfkit.ab import measure_pair, pair_comparison
from perfkit.analysis.verdict import judge
from perfkit.core.spec import Plan
from perfkit.options import make_spec

TRIALS = 10
PLANTED_TRIALS = 5
PLAN = Plan(warmup_time_s=0.5, min_time_s=1.0, max_time_s=4.0)
LAYERS, WIDTH = 10, 384


def copy_model(src, dst, options, ctx):
    """The identity transform of the issue's A/A test: the variant is the same bytes under another name."""
    shutil.copyfile(src, dst)
    return ["a byte-for-byte copy"]


def burn(stop, seed: int) -> None:
    """Bursty load on one core: busy for 50-300 ms, idle for 50-500 ms, until told to stop."""
    rng = random.Random(seed)
    while not stop.is_set():
        end = time.perf_counter() + rng.uniform(0.05, 0.3)
        while time.perf_counter() < end:
            pass
        time.sleep(rng.uniform(0.05, 0.5))


@pytest.fixture(scope="module")
def background():
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    worker = ctx.Process(target=burn, args=(stop, 1), daemon=True)
    worker.start()
    yield
    stop.set()
    worker.join(5)


def mlp(path: Path, layers: int) -> str:
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for i in range(layers):
        w = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, WIDTH)).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, w.shape, w.ravel()))
        nodes += [helper.make_node("MatMul", [name, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"h{i}"])]
        name = f"h{i}"
    nodes.append(helper.make_node("Identity", [name], ["y"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, path)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import onnx

    from perfkit.examples import resnet

    folder = tmp_path_factory.mktemp("interleaving")
    cnn = folder / "cnn.onnx"
    onnx.save_model(resnet(width=16, side=96), cnn)
    return {"mlp": mlp(folder / "mlp.onnx", LAYERS), "mlp+1": mlp(folder / "mlp11.onnx", LAYERS + 1), "cnn": str(cnn)}


def aa_trial(model: str, cache: Path, interleave: bool) -> tuple[bool, bool, float, float]:
    """(called different, interval holds 1, ratio, wall seconds) for one A/A bench."""
    spec = make_spec(model, batch=(32,) if "mlp" in model else (1,), plan=replace(PLAN, interleave=interleave),
                     results_dir=None, variants=("copy",), cache_dir=str(cache))
    start = time.perf_counter()
    report = bench.run(spec)
    wall = time.perf_counter() - start
    ratio = judge(report).speedups[1]
    return ratio.significant, ratio.low <= 1 <= ratio.high, ratio.value, wall


def test_wall_time_against_the_sequential_design_without_load(benchmark, models, tmp_path, monkeypatch):
    """Runs first, before the background load starts: the cost of interleaving itself."""
    monkeypatch.setenv("PERFKIT_TRANSFORMS", "copy=benchmarks.test_interleaving:copy_model")
    walls = {True: [], False: []}
    for _ in range(3):
        for interleave in (True, False):
            walls[interleave].append(aa_trial(models["mlp"], tmp_path / "cache", interleave)[3])
    line = (f"quiet machine, wall per A/A trial: interleaved {statistics.median(walls[True]):.1f} s, sequential "
            f"{statistics.median(walls[False]):.1f} s, ratio "
            f"{statistics.median(walls[True]) / statistics.median(walls[False]):.2f}")
    print("\n" + line)
    benchmark.extra_info.update(line=line)
    benchmark.pedantic(lambda: None, rounds=1)


def test_aa_and_planted_slowdown_under_bursty_load(benchmark, models, background, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFKIT_TRANSFORMS", "copy=benchmarks.test_interleaving:copy_model")
    lines, figures = [], {}
    for name in ("mlp", "cnn"):
        for interleave in (True, False):
            trials = [aa_trial(models[name], tmp_path / "cache", interleave) for _ in range(TRIALS)]
            design = "interleaved" if interleave else "sequential"
            called = sum(t[0] for t in trials)
            figures[(name, design)] = trials
            lines.append(f"A/A {name} {design}: {called}/{TRIALS} called different, interval holds 1 in "
                         f"{sum(t[1] for t in trials)}/{TRIALS}; ratios {min(t[2] for t in trials):.3f}–"
                         f"{max(t[2] for t in trials):.3f}; wall {statistics.median(t[3] for t in trials):.1f} s")
    planted = []
    spec = make_spec(models["mlp"], batch=(32,), plan=PLAN, results_dir=None)
    for _ in range(PLANTED_TRIALS):
        (case,) = pair_comparison(measure_pair(spec, models["mlp+1"]), models["mlp+1"]).cases
        planted.append(case)
    lines.append(f"planted +1/{LAYERS} layers: called slower {sum(c.verdict == 'slower' for c in planted)}/"
                 f"{PLANTED_TRIALS}; changes " + ", ".join(f"{c.change:+.1%} [{c.low:+.1%}, {c.high:+.1%}]"
                                                             for c in planted))
    walls = {d: statistics.median(t[3] for n in ("mlp", "cnn") for t in figures[(n, d)])
             for d in ("interleaved", "sequential")}
    lines.append(f"wall per A/A trial: interleaved {walls['interleaved']:.1f} s, sequential "
                 f"{walls['sequential']:.1f} s, ratio {walls['interleaved'] / walls['sequential']:.2f}")
    print("\n" + "\n".join(lines))
    benchmark.extra_info.update(lines=lines)
    benchmark.pedantic(lambda: None, rounds=1)
    for name in ("mlp", "cnn"):
        assert not any(t[0] for t in figures[(name, "interleaved")]), f"A/A {name}: a copy was called different"
    # A 95 % interval misses the truth in one trial of twenty by its definition; more than twice that is a defect.
    missed = sum(not t[1] for name in ("mlp", "cnn") for t in figures[(name, "interleaved")])
    assert missed <= 2, f"A/A: {missed} of {2 * TRIALS} intervals missed 1"
    assert all(c.verdict == "slower" and c.low > 0 for c in planted), planted
