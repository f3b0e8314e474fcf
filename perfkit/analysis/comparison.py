"""Two runs, case by case: the change of the median, a rank test on the raw samples, and a practical
threshold. A change is called only when it is both significant and large enough to matter; else "≈".

The samples of one run are not independent draws (a noisy minute shifts hundreds of them together), so
the test's p-value is optimistic: that is why a change must also pass the practical threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfkit.core.errors import PerfkitError
from perfkit.core.report import Report, Result

ALPHA = 0.01  # rank-test significance; strict because within-run samples are correlated
PRACTICAL = 0.02  # a change of the median under 2 % is "≈" whatever the test says: run-to-run drift is that large


@dataclass(frozen=True)
class CaseChange:
    key: str  # variant on target, batch
    old_ns: float | None
    new_ns: float | None
    change: float | None  # new / old - 1: +0.10 is 10 % slower
    p_value: float | None
    verdict: str  # slower, faster, ≈, new, gone, failed

    @property
    def regression(self) -> float:
        return self.change if self.verdict == "slower" and self.change is not None else 0.0


@dataclass(frozen=True)
class Comparison:
    old: Report
    new: Report
    cases: tuple[CaseChange, ...]
    warnings: tuple[str, ...]  # the two environments or settings differ: the change may be theirs
    practical: float = PRACTICAL

    def worst_regression(self) -> float:
        return max((c.regression for c in self.cases), default=0.0)


def mann_whitney(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie and continuity
    corrections; fine from about 8 samples a side, which perfkit's plans always exceed)."""
    import numpy as np

    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    values = np.concatenate([np.asarray(a, float), np.asarray(b, float)])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2  # 1-based average rank of each group of ties
    ranks[order] = np.repeat(average, counts)
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    ties = float(((counts ** 3) - counts).sum())
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))) if n > 1 else 0.0
    if sigma == 0:
        return 1.0
    z = (abs(u1 - n1 * n2 / 2) - 0.5) / sigma
    return math.erfc(max(z, 0.0) / math.sqrt(2))


def case_key(r: Result) -> str:
    """Variant, target, batch and every input's shape: runs at another sequence length are other cases."""
    shapes = ";".join(f"{n}={'x'.join(map(str, s))}" for n, s in r.shapes)
    return f"{r.model.label} on {r.target.label}, batch {r.batch}" + (f" ({shapes})" if shapes else "")


def compare_runs(old: Report, new: Report, practical: float = PRACTICAL, alpha: float = ALPHA) -> Comparison:
    olds = {case_key(r): r for r in old.results}
    news = {case_key(r): r for r in new.results}
    cases = []
    for key in dict.fromkeys([*olds, *news]):
        o, n = olds.get(key), news.get(key)
        if o is None or n is None:
            cases.append(CaseChange(key, _median(o), _median(n), None, None, "new" if o is None else "gone"))
            continue
        if not (o.summary and n.summary and o.measurement and n.measurement):
            cases.append(CaseChange(key, _median(o), _median(n), None, None, "failed"))
            continue
        change = n.summary.median / o.summary.median - 1
        p = mann_whitney(list(o.measurement.samples_ns), list(n.measurement.samples_ns))
        verdict = "≈" if p >= alpha or abs(change) < practical else "slower" if change > 0 else "faster"
        cases.append(CaseChange(key, o.summary.median, n.summary.median, change, p, verdict))
    warnings = environment_differences(old, new) + setting_differences(olds, news)
    return Comparison(old, new, tuple(cases), tuple(warnings), practical)


def setting_differences(olds: dict[str, Result], news: dict[str, Result]) -> list[str]:
    """Cases measured under other session settings (threads, optimization level, provider options)."""
    out = []
    for key, o in olds.items():
        n = news.get(key)
        if n is None:
            continue
        for what, a, b in (("threads", o.target.threads, n.target.threads),
                           ("optimization level", o.target.opt_level, n.target.opt_level),
                           ("provider options", o.target.provider_options, n.target.provider_options)):
            if a != b:
                out.append(f"{key}: {what} {a if a is not None else 'default'} → {b if b is not None else 'default'}"
                           " — the change may be the setting's")
    return out


def _median(r: Result | None) -> float | None:
    return r.summary.median if r and r.summary else None


def environment_differences(old: Report, new: Report) -> list[str]:
    """CPU, package versions, available providers and OS that differ between the runs."""
    a, b = old.environment, new.environment
    out = []
    if a.cpu_model != b.cpu_model or a.logical_cores != b.logical_cores:
        out.append(f"different CPUs: {a.cpu_model} ({a.logical_cores} cores) vs {b.cpu_model} ({b.logical_cores})")
    versions = [f"{k} {a.packages.get(k, '-')} → {b.packages.get(k, '-')}" for k in sorted({*a.packages, *b.packages})
                if a.packages.get(k) != b.packages.get(k) and k != "perfkit"]
    if versions:
        out.append("different versions: " + ", ".join(versions))
    if a.providers != b.providers:
        out.append(f"different providers available: {', '.join(a.providers)} vs {', '.join(b.providers)}")
    if a.os != b.os:
        out.append(f"different OS: {a.os} vs {b.os}")
    return [f"{w} — a change may be the environment's, not the model's" for w in out]


def parse_threshold(text: str, option: str = "--fail-on-regression") -> float:
    """`5%` or `0.05` -> 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise PerfkitError(f"{option} {text}", "not a percentage", "write e.g. 5%") from None
    if not 0 <= value < 10:
        raise PerfkitError(f"{option} {text}", "out of range", "give a share such as 5% or 0.05")
    return value
