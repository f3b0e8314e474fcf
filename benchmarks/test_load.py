"""`perfkit load` measured: the load generator's own ceiling and the latency it adds, then three models under load.

Targets (issue 16), on a 2-core shared CPU. The generator against a model that does nothing (a no-op callable,
`perfkit.measure.load.offline` / `server` called directly with `RealClock()`): it sustains at least 20,000
requests/s, and at 1,000 requests/s it adds under 50 µs (latency from each request's *scheduled* arrival, p50 and
p99). The rates are offered in a seeded shuffled order each round, rounds interleaved, and every figure is the
median over the rounds with its min–max, because other work shares the machine. Beside RealClock, at 1,000/s, a
reference clock that is not perfkit's (the same sleep, then a pure busy-wait) shows what the wait itself costs.

Then three models built in code, none in the unit tests, through the whole flow (`perfkit.load.run` of
`make_load_spec(make_spec(...))`, nothing saved): a ResNet-style CNN (the PyTorch one `test_native.py` builds,
64×64, converted with `perfkit.to_onnx`), a BERT-style encoder (a transformers `BertModel`: hidden 256, 4 heads,
2 layers, saved with save_pretrained and converted with `perfkit.to_onnx`; sequence 64) and a scikit-learn
pipeline (StandardScaler + a 50-tree random forest on the breast-cancer data, joblib; perfkit's native row and its
ONNX conversion). Per model: offline throughput at 1, 2 and 4 callers; the highest Poisson rate meeting an SLO
(server scenario, perfkit's search), with and without a batcher (max 8, 2 ms) for the CNN and the encoder.
Run: pytest benchmarks/test_load.py --benchmark-only -s -p no:cacheprovider   (3–5 minutes, more if searches are cut)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import perfkit
from perfkit import load
from perfkit.analysis.load import percentiles
from perfkit.core.load import LoadReport, LoadRow
from perfkit.measure.load import SPIN_NS, RealClock, offline, poisson_arrivals, server
from perfkit.options import make_load_spec, make_spec

ROUNDS = 5  # interleaved rounds: on a shared machine the median of five shrugs off one burst of other work
RATES = (1_000, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000)  # the ladder, and two steps past it
STEP_S = 1.0  # seconds of arrivals per rate per round
STEP_MIN_REQUESTS = 2_000  # so p99 has 20 requests beyond it (the 1,000/s step runs 2 s)
OFFLINE_S = 0.5  # the no-op's offline run per round: millions of calls, enough for requests/s
TARGET_RPS = 20_000
TARGET_ADDED_NS = 50_000
SUSTAINED = 0.98  # a rate is sustained when the requests answered per second reach this share of the offered

OFFLINE_DURATION = "2s"  # per concurrency, after perfkit's 0.5 s warm-up
SERVER_DURATION = "1s"  # per probe of the SLO search; a probe is never shorter than its percentile needs
BATCHER = "max=8,delay=2ms"
SEARCH_BUDGET_S = 40.0  # a row's SLO search is cut after the probe that passes this (see RowBudget): six fit


def noop() -> None:
    return None


class SpinClock(RealClock):
    """Reference, not perfkit: RealClock's sleep, then a pure busy-wait for the last SPIN_NS."""

    @staticmethod
    def sleep_until(ns: int) -> None:
        remaining = ns - time.perf_counter_ns()
        if remaining > SPIN_NS:
            time.sleep((remaining - SPIN_NS) / 1e9)
        while time.perf_counter_ns() < ns:
            pass


@dataclass(frozen=True)
class Level:
    """One load level in one round: requests/s offered and answered, latency from the scheduled arrival."""

    achieved: float
    p50_ns: int
    p99_ns: int


def serve_noop(rate: int, seed: int, clock: RealClock) -> Level:
    arrivals = poisson_arrivals(rate, max(STEP_MIN_REQUESTS, int(rate * STEP_S)), seed)
    served = server([noop], arrivals, 1, clock)
    p = percentiles(served.latencies_ns)
    return Level(served.requests / (served.wall_ns / 1e9), p["p50_ns"], p["p99_ns"])


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt_us(ns: list[float]) -> str:
    mid, low, high = spread([v / 1e3 for v in ns])
    return f"{mid:9.1f} µs ({low:.1f}–{high:.1f})"


def test_generator_against_a_noop(benchmark):
    order: list[int | str] = ["offline", *RATES, "spin 1k"]
    levels: dict[int | str, list[Level]] = {k: [] for k in order}
    offline_rps: list[float] = []
    rng = np.random.default_rng(0)
    for round_ in range(ROUNDS):
        for k in rng.permutation(len(order)):
            item = order[k]
            if item == "offline":
                served = offline([noop], 1, int(OFFLINE_S * 1e9), int(0.1e9), RealClock())
                offline_rps.append(served.requests / (served.wall_ns / 1e9))
            elif item == "spin 1k":
                levels[item].append(serve_noop(1_000, round_, SpinClock()))
            else:
                levels[item].append(serve_noop(int(item), round_, RealClock()))
    mid, low, high = spread(offline_rps)
    print(f"\n  offline, 1 caller: {mid:,.0f} requests/s ({low:,.0f}–{high:,.0f}), {ROUNDS} rounds")
    print("  server, 1 worker:  offered → achieved requests/s, p50 and p99 from the scheduled arrival")
    figures = {"offline requests/s": mid}
    for item in order[1:]:
        got = levels[item]
        rate = item if isinstance(item, int) else 1_000
        achieved = spread([g.achieved for g in got])
        name = "1,000 (busy-wait reference)" if item == "spin 1k" else f"{rate:,}"
        print(f"  {name:>28} → {achieved[0]:9,.0f} ({achieved[1]:,.0f}–{achieved[2]:,.0f})   "
              f"p50 {fmt_us([g.p50_ns for g in got])}   p99 {fmt_us([g.p99_ns for g in got])}")
        figures.update({f"{name}: achieved/s": achieved[0],
                        f"{name}: p50 µs": statistics.median(g.p50_ns for g in got) / 1e3,
                        f"{name}: p99 µs": statistics.median(g.p99_ns for g in got) / 1e3})
    sustained = [r for r in RATES if statistics.median(g.achieved for g in levels[r]) >= SUSTAINED * r]
    at_1k = levels[1_000]
    added_p50 = statistics.median(g.p50_ns for g in at_1k)
    added_p99 = statistics.median(g.p99_ns for g in at_1k)
    print(f"  highest rate sustained (≥ {SUSTAINED:.0%} answered): {max(sustained, default=0):,}/s "
          f"(target ≥ {TARGET_RPS:,}: {'met' if max(sustained, default=0) >= TARGET_RPS else 'NOT met'}); "
          f"added at 1,000/s: p50 {added_p50 / 1e3:.1f} µs ({'met' if added_p50 < TARGET_ADDED_NS else 'NOT met'}), "
          f"p99 {added_p99 / 1e3:.1f} µs ({'met' if added_p99 < TARGET_ADDED_NS else 'NOT met'}), target < 50 µs")
    figures.update({"highest rate sustained": max(sustained, default=0), "added p50 µs at 1k": added_p50 / 1e3,
                    "added p99 µs at 1k": added_p99 / 1e3})
    benchmark.extra_info.update(figures)
    assert offline_rps and min(offline_rps) >= TARGET_RPS
    assert max(sustained, default=0) >= TARGET_RPS, figures
    benchmark.pedantic(lambda: None, rounds=1)  # the figures above are the result


class SearchTooLong(Exception):
    """Raised from the progress callback: perfkit turns it into a failed row and the run goes on."""


class RowBudget:
    """A progress callback that cuts a row's SLO search once it has run `budget_s`: a search whose every probe
    fails halves the rate while keeping the probe's request count, so each probe takes twice as long as the
    last (hours, for a slow model on a busy machine). The probes it saw go into the row's reason."""

    def __init__(self, budget_s: float = SEARCH_BUDGET_S) -> None:
        self.budget_s = budget_s
        self.started = time.monotonic()
        self.probes: list[str] = []

    def __call__(self, line: str) -> None:
        if "requests/s offered" not in line:  # a new row, or a build step
            self.started, self.probes = time.monotonic(), []
            return
        self.probes.append(line.rsplit(": ", 1)[-1].replace(" requests/s offered", "/s"))
        if time.monotonic() - self.started > self.budget_s:
            raise SearchTooLong(f"cut after {self.budget_s:.0f} s; probes {'; '.join(self.probes)}")


def timed_run(bench, **options) -> tuple[LoadReport, float]:
    start = time.monotonic()
    report = load.run(make_load_spec(bench, **options), RowBudget())
    assert report.complete
    return report, time.monotonic() - start


def offline_figures(model: str, report: LoadReport) -> dict[str, float]:
    out = {}
    for row in report.rows:
        assert row.status == "ok", row.reason
        cells = "  ".join(f"c={s.concurrency}: {s.requests_per_s:8,.0f}/s p50 {s.p50_ns / 1e6:6.2f} ms "
                          f"p99 {s.p99_ns / 1e6:6.2f} ms" for s in row.steps)
        print(f"  {model} {row.label:>14} offline  {cells}")
        out.update({f"{row.label} offline c={s.concurrency} requests/s": s.requests_per_s for s in row.steps})
    return out


def probes_text(row: LoadRow) -> str:
    return ", ".join(f"{s.rate:,.0f}{'✓' if s.slo_pass else '✗'}" for s in row.search)


def best_probe(row: LoadRow):
    return next((s for s in row.search if s.rate == row.max_rate_meeting_slo), None)


def server_figures(model: str, report: LoadReport, seconds: float) -> dict[str, float]:
    out = {}
    assert report.spec.slo is not None
    slo = report.spec.slo.text
    for row in report.rows:
        probe = best_probe(row) if row.status == "ok" else None
        if probe is None or row.max_rate_meeting_slo is None:
            why = row.reason if row.status != "ok" else f"no rate met it; probes {probes_text(row)}"
            print(f"  {model} {row.label:>14} server   {slo}: none ({why})")
            continue
        print(f"  {model} {row.label:>14} server   {slo}: {row.max_rate_meeting_slo:8,.0f}/s "
              f"(there p50 {probe.p50_ns / 1e6:.2f} ms, p90 {probe.p90_ns / 1e6:.2f} ms, "
              f"p99 {probe.p99_ns / 1e6:.2f} ms, mean batch {probe.mean_batch:.2f}; {seconds:.0f} s run)")
        print(f"      probes in order: {probes_text(row)}")
        out[f"{row.label} max rate meeting {slo}"] = row.max_rate_meeting_slo
    return out


def cnn_onnx(folder: Path) -> Path:
    from benchmarks.test_native import torch_cnn

    lines, parity = perfkit.to_onnx(str(torch_cnn(folder)), str(folder / "cnn.onnx"), shapes=("x=1x3x64x64",),
                                    batch=8, cache_dir=str(folder / "c"))
    assert parity.ok, "\n".join(lines)
    return folder / "cnn.onnx"


def encoder_onnx(folder: Path) -> Path:
    """A BertModel (hidden 256, 4 heads, 2 layers), saved with save_pretrained, converted on real-looking ids."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=256, num_attention_heads=4, num_hidden_layers=2,
                                     intermediate_size=1024)
    transformers.BertModel(config).save_pretrained(folder / "bert")
    ids = np.random.default_rng(1).integers(1000, config.vocab_size, (2, 64))
    ids[:, 0] = 101
    np.savez(folder / "text.npz", input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids))
    lines, parity = perfkit.to_onnx(str(folder / "bert"), str(folder / "bert.onnx"), inputs=str(folder / "text.npz"),
                                    cache_dir=str(folder / "c"))
    assert parity.ok, "\n".join(lines)
    return folder / "bert.onnx"


def forest_pipeline(folder: Path) -> Path:
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    path = folder / "forest.joblib"
    joblib.dump(make_pipeline(StandardScaler(), RandomForestClassifier(50, random_state=0)).fit(x, y), path)
    return path


# Each SLO's reason. p95, not p99: a p99 probe needs 2,000 requests (10–40 s at the encoder's and the forest's
# rates, and a search runs six to ten probes), and this shared machine stalls for milliseconds often enough to
# decide a p99 alone. Limits: about 3× a call as the server scenario sees it (a call after an idle gap runs up to
# 2× slower here than back to back: the CNN ~0.6 ms, the encoder ~3 ms, the forest's native row ~5 ms), plus the
# batcher's 2 ms wait where there is one. The forest's ONNX row is held to its native row's SLO.
CASES = {
    "CNN": (cnn_onnx, (), "p95<=4ms", True),
    "encoder": (encoder_onnx, ("sequence=64",), "p95<=12ms", True),
    "forest": (forest_pipeline, (), "p95<=15ms", False),
}


@pytest.mark.parametrize("model", list(CASES))
def test_model_under_load(benchmark, tmp_path, model):
    build, dims, slo, batcher = CASES[model]
    path = build(tmp_path)
    bench = make_spec(str(path), dims=dims, trust=True, results_dir=None, cache_dir=str(tmp_path / "c"))
    print()
    report, _ = timed_run(bench, concurrency="1,2,4", duration=OFFLINE_DURATION)
    figures = offline_figures(model, report)
    if model == "forest":
        assert report.rows[0].label.startswith("native") and len(report.rows) == 2
    for batching in (None, BATCHER) if batcher else (None,):
        report, seconds = timed_run(bench, scenario="server", slo=slo, duration=SERVER_DURATION, batching=batching)
        figures.update(server_figures(model, report, seconds))
    benchmark.extra_info.update(figures)
    benchmark.pedantic(lambda: None, rounds=1)
