"""How noisy a run was, said once for the whole run: how far the machine drifted between rounds, how much the
per-round ratios spread, which rows were unstable within their blocks or stalled, and what to do about it.

Interleaving keeps drift out of the ratios; this is what the reader should still know about the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.analysis.stats import half_spread, per_round_ratios, percentile
from perfkit.core.report import Report, Result

CV_LIMIT = 0.10  # above 10 % spread within a row the median is hard to trust on a shared machine
OUTLIER_SHARE = 0.02  # more than 2 % of the calls far slower than the median: stalls, not jitter
DRIFT_LIMIT = 0.05  # block medians of one row more than 5 % apart over the run (p10 to p90): the machine moved
FIX = "close other programs (`perfkit doctor` names them), pin --threads, or raise --min-time"
# Texts of the per-row noise warnings older runs stored; the summary says the same once.
OLD_ROW_NOISE = ("unstable: CV", "far slower than the median")


@dataclass(frozen=True)
class Noise:
    rounds: int  # the most rounds a row was timed in; 0: no row was interleaved
    drift: float | None  # the largest p10-p90 spread of one row's block medians, as a share of its median
    drifted: tuple[int, ...]  # 0-based rows whose block medians spread beyond DRIFT_LIMIT
    ratio_spread: float | None  # half the p16-p84 spread of the per-round ratios, median over comparisons
    unstable: tuple[tuple[int, float], ...]  # (row, CV) beyond CV_LIMIT
    stalled: tuple[tuple[int, float], ...]  # (row, share of calls far slower than the median)

    @property
    def noisy(self) -> bool:
        return bool(self.drifted or self.unstable or self.stalled)


def assess(report: Report, baselines: tuple[int | None, ...]) -> Noise:
    """The noise of a run's rows; `baselines` pairs each row with the row it is compared with."""
    rows = report.results
    drifts = {i: d for i, r in enumerate(rows) if (d := _drift(r)) is not None}
    spreads = sorted(s for i, b in enumerate(baselines) if b is not None and b != i
                     and (s := _ratio_spread(rows[b], rows[i])) is not None)
    return Noise(
        rounds=max((len(r.measurement.blocks) for r in rows if r.measurement), default=0),
        drift=max(drifts.values(), default=None),
        drifted=tuple(i for i, d in drifts.items() if d > DRIFT_LIMIT),
        ratio_spread=percentile(spreads, 50) if spreads else None,
        unstable=tuple((i, r.summary.cv) for i, r in enumerate(rows) if r.summary and r.summary.cv > CV_LIMIT),
        stalled=tuple((i, r.summary.outliers / r.summary.n) for i, r in enumerate(rows)
                      if r.summary and r.summary.n and r.summary.outliers / r.summary.n > OUTLIER_SHARE))


def noise_line(noise: Noise) -> str | None:
    """One line under the table, or None when nothing was measured."""
    if noise.rounds == 0 and not noise.noisy:
        return None
    parts = []
    if noise.rounds:
        drift = f", the machine drifted up to {noise.drift:.0%} between rounds" if noise.drift is not None else ""
        spread = f", per-round ratios spread ±{noise.ratio_spread:.1%}" if noise.ratio_spread is not None else ""
        parts.append(f"{noise.rounds} interleaved rounds{drift}{spread}"
                     + (" (drift lands on every row of a round alike: the intervals hold it)" if noise.drifted else ""))
    if noise.unstable:
        parts.append(f"{_rows(noise.unstable)} unstable within their blocks (CV "
                     f"{', '.join(f'{v:.0%}' for _, v in noise.unstable)})")
    if noise.stalled:
        parts.append(f"{_rows(noise.stalled)} stalled ({', '.join(f'{v:.1%}' for _, v in noise.stalled)} of calls "
                     "far slower than the median)")
    verdict = "noisy" if noise.noisy else "quiet"
    return f"noise: {verdict} — {'; '.join(parts)}" + (f" — {FIX}" if noise.noisy else "")


def _rows(pairs: tuple[tuple[int, float], ...]) -> str:
    return rows_named([i for i, _ in pairs])


def rows_named(indexes: list[int]) -> str:
    """0-based rows as the table numbers them: "row 3", "rows 1, 4", "rows 5–8"."""
    numbers = sorted(i + 1 for i in indexes)
    if len(numbers) == 1:
        return f"row {numbers[0]}"
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return "rows " + ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def _drift(r: Result) -> float | None:
    blocks = r.measurement.blocks if r.measurement else ()
    if len(blocks) < 5:
        return None
    medians = sorted(b.median_ns for b in blocks)
    middle = percentile(medians, 50)
    return (percentile(medians, 90) - percentile(medians, 10)) / middle if middle > 0 else None


def _ratio_spread(base: Result, row: Result) -> float | None:
    if not (base.measurement and row.measurement):
        return None
    ratios = sorted(per_round_ratios(base.measurement.blocks, row.measurement.blocks))
    if len(ratios) < 5:
        return None
    middle = percentile(ratios, 50)
    return half_spread(ratios) / middle if middle > 0 else None


def is_row_noise(warning: str) -> bool:
    """A per-row noise warning an older run stored, which the one summary line now replaces."""
    return any(text in warning for text in OLD_ROW_NOISE)
