"""Two runs, case by case, and the verdict of a regression gate. A change is called only when it is at least
the practical threshold and its whole interval lies beyond half of it; else "≈".

Two models measured now, interleaved (`perfkit compare OLD.onnx NEW.onnx`), are judged on the paired per-round
ratio: drift cancels round by round. Two stored runs were measured apart, and the machine may have changed in
between: their change is judged against how much each run's own rounds moved (a machine whose block medians
wandered 10 % within a run can move that much between runs too), at least the machine's A/A floor where
`perfkit doctor` measured it; and when nothing perfkit can see changed between the runs (the model's bytes,
the session settings, the software, the CPU), a difference is the machine's, and said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfkit.analysis.stats import half_spread
from perfkit.core.errors import PerfkitError
from perfkit.core.records import Ratio
from perfkit.core.report import Report, Result

PRACTICAL = 0.02  # a change of the median under 2 % is "≈" however sure: run-to-run drift is that large
Z95 = 1.959964
UNROUNDED_SPREAD = 0.05  # an old run without rounds: its drift is unknown, assume this much
BUSY_LOAD = 0.5  # load per core above which a run is said to be from a busy machine


@dataclass(frozen=True)
class CaseChange:
    key: str  # variant on target, batch
    old_ns: float | None
    new_ns: float | None
    change: float | None  # new / old - 1: +0.10 is 10 % slower
    low: float | None  # the change's 95 % interval
    high: float | None
    verdict: str  # slower, faster, ≈, new, gone, failed
    why: str = ""  # what the verdict rests on, when it is not the interval alone

    @property
    def regression(self) -> float:
        return self.change if self.verdict == "slower" and self.change is not None else 0.0


@dataclass(frozen=True)
class Comparison:
    title: str  # what was compared with what, and how
    cases: tuple[CaseChange, ...]
    warnings: tuple[str, ...]  # the two environments or settings differ, a machine was busy: the change may be theirs
    practical: float = PRACTICAL
    notes: tuple[str, ...] = ()  # said under the title: a new model version, for one

    def worst_regression(self) -> float:
        return max((c.regression for c in self.cases), default=0.0)


def call(change: float, low: float, high: float, practical: float) -> str:
    """slower/faster when the change is at least `practical` and its whole interval lies beyond half of it
    (as analysis.stats calls a speed-up), else ≈."""
    if low > practical / 2 and change >= practical:
        return "slower"
    if high < -practical / 2 and -change >= practical:
        return "faster"
    return "≈"


def from_ratio(key: str, old: Result, new: Result, ratio: Ratio | None, practical: float) -> CaseChange:
    """Two rows measured together: the change is the inverse of the paired speed-up, its interval too."""
    if ratio is None or not old.summary or not new.summary:
        return CaseChange(key, _median(old), _median(new), None, None, None, "failed")
    change, low, high = 1 / ratio.value - 1, 1 / ratio.high - 1, 1 / ratio.low - 1
    basis = f"paired over {ratio.rounds} rounds" if ratio.rounds else "medians of rows timed apart"
    return CaseChange(key, old.summary.median, new.summary.median, change, low, high,
                      call(change, low, high, practical), basis)


def case_key(r: Result) -> str:
    """Variant, target and a tuned session's settings, batch and every input's shape: runs at another sequence
    length, or a tuned session beside the default one, are other cases (threads and level are settings of one
    case, warned about when they differ)."""
    shapes = ";".join(f"{n}={'x'.join(map(str, s))}" for n, s in r.shapes)
    session = f" ({r.target.tuning_text})" if r.target.tuning_text else ""
    return f"{r.model.label} on {r.target.label}{session}, batch {r.batch}" + (f" ({shapes})" if shapes else "")


def compare_runs(old: Report, new: Report, practical: float = PRACTICAL,
                 floors: dict[str, float] | None = None) -> Comparison:
    """Two stored runs, case by case. `floors`: the smallest difference `perfkit doctor` found this machine
    can resolve, by model digest."""
    olds = {case_key(r): r for r in old.results}
    news = {case_key(r): r for r in new.results}
    alike = same_software(old, new)
    cases = []
    for key in dict.fromkeys([*olds, *news]):
        o, n = olds.get(key), news.get(key)
        if o is None or n is None:
            cases.append(CaseChange(key, _median(o), _median(n), None, None, None, "new" if o is None else "gone"))
        elif not (o.summary and n.summary and o.measurement and n.measurement):
            cases.append(CaseChange(key, _median(o), _median(n), None, None, None, "failed"))
        else:
            cases.append(_between_runs(key, o, n, practical, alike, (floors or {}).get(n.model.digest, 0.0)))
    warnings = environment_differences(old, new) + setting_differences(olds, news) + busy_machines(old, new)
    title = (f"{old.run_id} → {new.run_id}  (stored runs: a change is called when it exceeds each run's own "
             f"drift and at least {practical:.0%})")
    return Comparison(title, tuple(cases), tuple(warnings), practical, model_change(old, new))


def model_change(old: Report, new: Report) -> tuple[str, ...]:
    """A new model version is the point of many comparisons: said, so it is not a surprise."""
    before, after = (sorted({r.model.digest[:12] for r in run.results if r.model.is_base and r.model.digest})
                     for run in (old, new))
    if before == after:
        return ()
    return (f"the model changed between the runs: {old.spec.model} ({', '.join(before)}) → {new.spec.model} "
            f"({', '.join(after)})",)


def _between_runs(key: str, o: Result, n: Result, practical: float, alike: bool, floor: float) -> CaseChange:
    assert o.summary and n.summary
    change = n.summary.median / o.summary.median - 1
    if alike and o.model.digest and o.model.digest == n.model.digest and o.target == n.target:
        return CaseChange(key, o.summary.median, n.summary.median, change, None, None, "≈",
                          "same model bytes, settings and software: the difference is this machine's, between runs")
    spread = math.hypot(run_spread(o), run_spread(n))
    half = max(Z95 * spread, floor)
    low, high = (1 + change) * math.exp(-half) - 1, (1 + change) * math.exp(half) - 1
    why = f"±{half:.1%} from the runs' own drift" + (f" and the A/A floor {floor:.1%}" if floor else "")
    return CaseChange(key, o.summary.median, n.summary.median, change, low, high,
                      call(change, low, high, practical), why)


def run_spread(r: Result) -> float:
    """How far one run's level can sit from another's on this machine, in log terms: the spread of its block
    medians over its rounds (half the 16th-84th percentile range, about one standard deviation)."""
    blocks = r.measurement.blocks if r.measurement else ()
    if len(blocks) < 5:
        return UNROUNDED_SPREAD
    logs = sorted(math.log(b.median_ns) for b in blocks if b.median_ns > 0)
    return half_spread(logs)


def same_software(old: Report, new: Report) -> bool:
    a, b = old.environment, new.environment
    strip = ("perfkit",)
    return (a.cpu_model, a.logical_cores, a.os) == (b.cpu_model, b.logical_cores, b.os) and \
        {k: v for k, v in a.packages.items() if k not in strip} == {k: v for k, v in b.packages.items()
                                                                     if k not in strip}


def busy_machines(old: Report, new: Report) -> list[str]:
    out = []
    for name, run in (("old", old), ("new", new)):
        env = run.environment
        if env.load_average is not None and env.load_average / env.logical_cores > BUSY_LOAD:
            out.append(f"the {name} run was taken on a busy machine (load {env.load_average:.1f} on "
                       f"{env.logical_cores} cores) — runs taken apart cannot cancel that; "
                       "`perfkit compare OLD.onnx NEW.onnx` measures both now, interleaved")
    return out


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
