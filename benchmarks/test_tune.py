"""`perfkit tune` against onnxruntime's default session, perfkit's best variant and the best recipe made by hand.

Targets (issue 14), on a 2-core CPU, for three models built in code that no unit test contains — a ResNet-style
CNN (`perfkit.examples.resnet`: ResNet-18 layout at half width, 224×224, batch 1), a BERT-style encoder
(`perfkit.examples.encoder`: hidden 768, 12 heads, 4 layers; sequence 128, batch 1) and a scikit-learn
GradientBoostingClassifier (100 trees of depth 3 on 20 synthetic features, converted with skl2onnx; batch 64):
the tuned configuration runs at least as fast as the best hand-made recipe (paired ratio ≥ 1.0 by its interval;
stretch ≥ 1.1× on one model) and never slower than the default; the default `--time-budget 5m` fits the
ResNet-18-sized model; the winner repeats on a second run; run_tuned.py, run as printed, reproduces the tuned
latency within the machine's noise.

How. `perfkit tune` runs as a subprocess, as a user runs it (`--format json --no-save`; its wall time and its
answer are kept). Then, in ONE `perfkit.measure.interleave.interleave` call per model (spawned workers, two per
case, perfkit's scheduler, pairs of every candidate against the default and of the tuned configuration against
every other candidate), these are timed together: (a) onnxruntime's default session on the model as given;
(b) perfkit's best model file with a default session (the row tune's own A/B shows); (c) each recipe made by hand
with onnxruntime's tools, following its quantization and transformer-optimizer docs; (d) the tuned configuration
read back from perfkit-tuned.json with `perfkit.files.tuned.read_config` (for the CNN also the second run's).
Every candidate gets the feed tune timed (the tuned folder's inputs.npz). Ratios are
`perfkit.analysis.stats.paired_ratio` over the shared rounds (per-round median ratios, 95 % interval). Right after,
run_tuned.py runs as printed and its median is read against the tuned row's.
Run: pytest benchmarks/test_tune.py --benchmark-only -s   (about 25 minutes)
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from perfkit.analysis.stats import paired_ratio
from perfkit.core.report import from_json
from perfkit.core.spec import Plan, Target
from perfkit.files.tuned import read_config
from perfkit.measure.case import Case
from perfkit.measure.interleave import interleave

BUDGET = "cos>=0.998"  # the accuracy the issue gives for the CNN and the encoder (test_variants.py's too)
TIME_BUDGET = {"resnet": "5m", "encoder": "5m",  # tune's default: the claim is that it fits ResNet-18 size
               "gbc": "2m"}  # a 0.1 ms tree model has few candidates; 5m would only spend more of this run
PLAN = Plan(min_time_s=5.0, max_time_s=20.0)  # every candidate ≥ 5 s over ≥ 10 rounds; undecided pairs up to 20 s
THRESHOLD = 0.02  # perfkit's practical threshold: a ratio is called only past 2 %
CALIBRATION = 64  # calibration samples for int8-static, tune's and the hand recipes' alike
PHYSICAL_CORES = 2  # the thread count an engineer sets by hand: intra_op_num_threads = physical cores here
MODELS = {"resnet": ("--calibration", "cal.npz"), "encoder": ("--dim", "sequence=128", "--calibration", "cal.npz"),
          "gbc": ("--batch", "64")}  # gbc: tune's default accuracy budget (cos/agree ≥ 0.99): labels must not move


def build(name: str, folder: Path) -> Path:
    """The model and its calibration file, written in code."""
    import onnx

    from perfkit.examples import encoder, resnet

    rng = np.random.default_rng(1)
    path = folder / f"{name}.onnx"
    if name == "resnet":
        onnx.save_model(resnet(), path)
        np.savez(folder / "cal.npz", image=rng.standard_normal((CALIBRATION, 3, 224, 224)).astype(np.float32))
    elif name == "encoder":
        onnx.save_model(encoder(), path)
        np.savez(folder / "cal.npz", input_ids=rng.integers(0, 8192, (CALIBRATION, 128), dtype=np.int64),
                 attention_mask=np.ones((CALIBRATION, 128), np.int64),
                 token_type_ids=np.zeros((CALIBRATION, 128), np.int64))
    else:
        from skl2onnx import to_onnx
        from sklearn.datasets import make_classification
        from sklearn.ensemble import GradientBoostingClassifier

        x, y = make_classification(n_samples=2000, n_features=20, n_informative=10, random_state=0)
        x = x.astype(np.float32)
        model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
        onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
        path.write_bytes(onx.SerializeToString())
    return path


def tune(path: Path, out: Path, name: str) -> dict:
    """`perfkit tune` as a user runs it; its wall time, exit code, report and stderr."""
    command = ["perfkit", "tune", path.name, "-o", str(out), *MODELS[name], "--time-budget", TIME_BUDGET[name],
               "--no-save", "--format", "json"]
    if name != "gbc":
        command[command.index("--time-budget"):command.index("--time-budget")] = ["--accuracy-budget", BUDGET]
    t0 = time.monotonic()
    done = subprocess.run(command, cwd=path.parent, capture_output=True, text=True)
    wall = time.monotonic() - t0
    print(f"\n$ {' '.join(command)}\n  exit {done.returncode}, wall {wall:.1f} s")
    if done.returncode != 0 or not done.stdout.strip().startswith("{"):
        print(f"  stdout:\n{done.stdout[-4000:]}\n  stderr:\n{done.stderr[-4000:]}")
        pytest.fail(f"perfkit tune failed on {name}: exit {done.returncode}")
    report = from_json(done.stdout, "tune stdout")
    if done.stderr.strip():
        print("  stderr (last lines): " + " | ".join(done.stderr.strip().splitlines()[-6:]))
    search = report.search
    print(f"  answer: {search.answer}")
    for note in search.notes:
        print(f"  note: {note}")
    return {"wall_s": wall, "report": report, "config": out / "perfkit-tuned.json", "rc": done.returncode}


def best_file(report, model: Path):
    """tune's A/B row of the best model file with a default session (a variant file, no session settings), and
    its file's path (tune ran in the model's folder: its paths are relative to it)."""
    for row in report.results[1:]:
        t, file = row.target, (model.parent / row.model.path).resolve()
        if file != model.resolve() and not (t.threads or t.session_options or t.session_config):
            return row, str(file)
    return None, None


def hand_made(name: str, path: Path, folder: Path) -> dict[str, tuple[str, Target]]:
    """What a careful engineer builds by hand, following onnxruntime's quantization and transformer docs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from perfkit.transforms.quantize import FeedsReader

    out: dict[str, tuple[str, Target]] = {}
    if name == "resnet":
        pre = folder / "pre.onnx"
        quant_pre_process(str(path), str(pre))
        data = np.load(folder / "cal.npz")["image"]
        feeds = tuple({"image": data[i:i + 1]} for i in range(len(data)))
        for label, fmt in (("static QDQ U8S8 per-channel MinMax", QuantFormat.QDQ),
                           ("static QOperator U8S8 per-channel MinMax", QuantFormat.QOperator)):
            file = folder / (label.split(" per")[0].replace(" ", "_") + ".onnx")
            quantize_static(str(pre), str(file), FeedsReader(feeds), quant_format=fmt, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            out[label] = (str(file), Target())
            out[f"{label}, {PHYSICAL_CORES} threads"] = (str(file), Target(threads=PHYSICAL_CORES))
    elif name == "encoder":
        from onnxruntime.transformers import optimizer

        pre = folder / "pre.onnx"
        quant_pre_process(str(path), str(pre))
        plain = folder / "dynamic.onnx"
        quantize_dynamic(str(pre), str(plain), weight_type=QuantType.QInt8)
        out["dynamic int8"] = (str(plain), Target())
        fused = folder / "fused.onnx"
        optimizer.optimize_model(str(path), model_type="bert", num_heads=12, hidden_size=768).save_model_to_file(
            str(fused))
        fused_pre = folder / "fused_pre.onnx"
        quant_pre_process(str(fused), str(fused_pre))
        both = folder / "fused_dynamic.onnx"
        quantize_dynamic(str(fused_pre), str(both), weight_type=QuantType.QInt8)
        out["transformer optimizer (bert, 12 heads, 768) + dynamic int8"] = (str(both), Target())
    else:
        # the skl2onnx file as converted: only session settings to choose
        out["ORT_ENABLE_ALL"] = (str(path), Target(opt_level="all"))
        out["ORT_ENABLE_ALL, 1 thread"] = (str(path), Target(threads=1))
    return out


def snippet_median(folder: Path) -> tuple[float, str]:
    """run_tuned.py run as printed: its median in ns and its line."""
    done = subprocess.run([sys.executable, str(folder / "run_tuned.py")], capture_output=True, text=True)
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    found = re.search(r"median ([0-9.]+) ms", line)
    assert done.returncode == 0 and found, f"run_tuned.py failed: {line}"
    return float(found.group(1)) * 1e6, line


def same_config(a: Path, b: Path) -> bool:
    one, two = json.loads(a.read_text()), json.loads(b.read_text())
    return all(one[k] == two[k] for k in ("session_options", "session_config")) and \
        one["model"]["lineage"] == two["model"]["lineage"]


def text(r) -> str:
    if r is None:
        return "—"
    return f"{r.value:.2f} ({r.low:.2f}–{r.high:.2f}){' *' if r.significant else ''}"


@pytest.mark.parametrize("name", list(MODELS))
def test_tuned_against_default_best_variant_and_hand(benchmark, tmp_path, name):
    path = build(name, tmp_path)
    first = tune(path, tmp_path / "tuned", name)
    runs = [first]
    if name == "resnet":  # repeatability: a second run into another folder (same cache, as a user re-running)
        runs.append(tune(path, tmp_path / "tuned2", name))
    default_path = str(path)
    candidates: dict[str, tuple[str, Target]] = {"(a) onnxruntime default": (default_path, Target())}
    variant, variant_path = best_file(first["report"], path)
    if variant is not None:
        candidates[f"(b) perfkit best variant: {variant.model.label}"] = (variant_path, variant.target)
    hand = hand_made(name, path, tmp_path)
    candidates.update({f"(c) by hand: {k}": v for k, v in hand.items()})
    configs = [read_config(str(r["config"])) for r in runs]
    for k, config in enumerate(configs, 1):
        session = config.target.session_text or "default session"
        candidates[f"(d) tuned{' run ' + str(k) if len(configs) > 1 else ''}: "
                   f"{'+'.join(config.lineage) or 'model as given'}, {session}"] = (config.model, config.target)
    labels = list(candidates)
    tuned_at = [i for i, k in enumerate(labels) if k.startswith("(d)")]
    feed = dict(np.load(runs[0]["config"].parent / "inputs.npz"))
    cases = [Case(p, t, (feed,), PLAN) for p, t in candidates.values()]
    pairs = sorted({(0, i) for i in range(1, len(cases))} |
                   {(j, t) for t in tuned_at for j in range(1, len(cases)) if j != t})
    t0 = time.monotonic()
    outcomes = interleave(cases, PLAN, pairs)
    measured_s = time.monotonic() - t0
    snippet_ns, snippet_line = snippet_median(runs[0]["config"].parent)

    failed = {labels[i]: o for i, o in enumerate(outcomes) if not hasattr(o, "measurement")}
    assert not failed, f"candidates failed: {failed}"
    blocks = [o.measurement.blocks for o in outcomes]
    medians = [statistics.median(o.measurement.samples_ns) for o in outcomes]
    hand_at = [i for i, k in enumerate(labels) if k.startswith("(c)")]
    best_hand = min(hand_at, key=lambda i: medians[i])
    vs_default = [paired_ratio(blocks[0], blocks[i], THRESHOLD) if i else None for i in range(len(labels))]
    vs_hand = [paired_ratio(blocks[best_hand], blocks[i], THRESHOLD) if i != best_hand else None
               for i in range(len(labels))]
    print(f"\n{name}: interleaved measurement {measured_s:.0f} s, {len(labels)} candidates; best hand recipe: "
          f"{labels[best_hand]}")
    print("| candidate | median | × default | × best hand recipe |\n|---|---:|---:|---:|")
    for i, label in enumerate(labels):
        print(f"| {label} | {medians[i] / 1e6:.3f} ms | {text(vs_default[i]) if i else '1'} | "
              f"{text(vs_hand[i]) if i != best_hand else '1'} |")
    for k, r in enumerate(runs, 1):
        print(f"tune run {k}: wall {r['wall_s']:.1f} s for --time-budget {TIME_BUDGET[name]}; "
              f"answer: {r['report'].search.answer}")
    if len(runs) == 2:
        a, b = tuned_at
        print(f"repeat: same configuration: {same_config(runs[0]['config'], runs[1]['config'])}; "
              f"run 2 / run 1 paired: {text(paired_ratio(blocks[a], blocks[b], THRESHOLD))}")
    print(f"run_tuned.py: {snippet_line}\n  its median / perfkit's tuned median (run {measured_s:.0f} s earlier "
          f"in the interleaved set): {snippet_ns / medians[tuned_at[0]]:.3f}")
    benchmark.extra_info.update({"medians_ns": dict(zip(labels, medians, strict=True)),
                                 "tune_wall_s": [r["wall_s"] for r in runs], "snippet_ns": snippet_ns})
    benchmark.pedantic(lambda: None, rounds=1)  # the figures above are the result

    tuned = tuned_at[0]
    against_default, against_hand = vs_default[tuned], vs_hand[tuned]
    assert against_default is not None and against_hand is not None, "too few shared rounds for an interval"
    assert not (against_default.significant and against_default.value < 1), \
        f"tuned is significantly slower than the default: {text(against_default)}"
    assert against_hand.high >= 1.0, f"tuned is slower than {labels[best_hand]}: {text(against_hand)}"
