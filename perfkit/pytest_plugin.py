"""perfkit's pytest plugin (entry point `pytest11`): fixtures that open a model variant on a target and hand
pytest-benchmark a callable to time in pedantic mode, and fill each record's extra_info with what
pytest-benchmark lacks. Nothing heavy is imported until a fixture is used: pytest pays nothing for it.

    @pytest.mark.perfkit(model="example:cnn", variant="int8-dynamic", batch=8)
    def test_cnn_int8(perfkit_benchmark, perfkit_case, perfkit_speedup):
        int8 = perfkit_benchmark()                      # timed by pytest-benchmark, extra_info filled
        fp32 = perfkit_case("example:cnn", batch=8)
        assert perfkit_speedup(fp32, int8).value >= 1.5 and int8.cosine >= 0.999

PYTEST_DONT_REWRITE: the plugin has no asserts of its own, and rewriting it would cost every pytest start.
"""

from __future__ import annotations

import pytest

PEDANTIC_SECONDS = 1.0  # timed rounds fill about this long; at least MIN_ROUNDS, at most MAX_ROUNDS
WARMUP_SECONDS = 0.3
MIN_ROUNDS, MAX_ROUNDS = 20, 2000
MARKER = ("perfkit(model, variant=None, target='ort:cpu', batch=None, **options): the model variant the "
          "perfkit_benchmark fixture opens and times; options: dims, shapes, inputs, trust, factory, "
          "calibration, config (a perfkit-tuned.json, relative to the test file), rounds, warmup_rounds")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture
def perfkit_case(request, tmp_path_factory):
    """perfkit_case(model, variant=None, target="ort:cpu", batch=None, …) -> SuiteCase, closed after the
    test. `model` may be `example:NAME` (built locally) or a path, relative to the test file first."""
    from perfkit.suite import open_case, resolve_model
    from perfkit.transforms.cache import default_cache_dir

    opened = []

    def _open(model: str, **options):
        options.setdefault("cache_dir", default_cache_dir())  # $PERFKIT_CACHE or .perfkit-cache
        path = resolve_model(model, request.path.parent, options["cache_dir"])
        if options.get("config"):
            options["config"] = resolve_model(options["config"], request.path.parent, options["cache_dir"])
        case = open_case(path, **options)
        opened.append(case)
        return case

    yield _open
    for case in opened:
        case.close()


@pytest.fixture
def perfkit_speedup():
    """perfkit_speedup(base, other) -> Ratio: how many times faster `other` runs, timed side by side."""
    from perfkit.suite import speedup

    return speedup


@pytest.fixture
def perfkit_benchmark(request, benchmark, perfkit_case):
    """perfkit_benchmark(**overrides) -> SuiteCase: opens the case the test's `perfkit` marker names, times it
    with benchmark.pedantic (explicit rounds and warm-up), and records p50/p90/p99, the providers that ran,
    the lineage and the accuracy in benchmark.extra_info."""

    def _run(**overrides):
        marker = request.node.get_closest_marker("perfkit")
        options = {**(marker.kwargs if marker else {}), **overrides}
        if marker and marker.args and "model" not in options:
            options["model"] = marker.args[0]
        if "model" not in options:
            raise pytest.UsageError("perfkit_benchmark needs @pytest.mark.perfkit(model=...) or model=...")
        rounds, warmup = options.pop("rounds", None), options.pop("warmup_rounds", None)
        case = perfkit_case(options.pop("model"), **options)
        if rounds is None or warmup is None:
            per_call = _estimate(case.call)
            rounds = rounds or int(min(max(PEDANTIC_SECONDS / per_call, MIN_ROUNDS), MAX_ROUNDS))
            warmup = warmup if warmup is not None else int(min(max(WARMUP_SECONDS / per_call, 3), 200))
        benchmark.pedantic(case.call, rounds=rounds, warmup_rounds=warmup, iterations=1)
        benchmark.extra_info.update(case.info())
        benchmark.extra_info.update(_percentiles(benchmark))
        return case

    return _run


def _estimate(call) -> float:
    """Seconds per call from a few calls (the first may allocate: it is not counted)."""
    import time

    call()
    start = time.perf_counter()
    for _ in range(3):
        call()
    return max((time.perf_counter() - start) / 3, 1e-7)


def _percentiles(benchmark) -> dict:
    """p50/p90/p99 in ns from pytest-benchmark's own samples; a tail without enough samples is None."""
    from perfkit.analysis.stats import summarize

    stats = getattr(benchmark, "stats", None)
    data = getattr(getattr(stats, "stats", None), "data", None) or []
    if not data:
        return {}
    s = summarize([int(t * 1e9) for t in data])
    return {"p50_ns": s.median, "p90_ns": s.p90, "p99_ns": s.p99, "cv": s.cv}
