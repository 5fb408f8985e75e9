"""Pure statistics helpers for the benchmark (no I/O; unit-tested).

Percentiles use the nearest-rank definition on the sorted sample, the same
convention as HdrHistogram/wrk2 report: p99 is the smallest value such that at
least 99 % of samples are <= it.

>>> percentile([1.0, 2.0, 3.0, 4.0], 50)
2.0
>>> summarize([0.001, 0.002, 0.003])["p50_ms"]
2.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES: tuple[float, ...] = (50.0, 99.0, 99.9)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``samples`` (need not be sorted); NaN when empty."""
    if not samples:
        return math.nan
    if not 0.0 < pct <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    ordered = sorted(samples)
    rank = math.ceil(pct * len(ordered) / 100.0 - 1e-9)  # tolerate 99.9/100 rounding up
    return ordered[max(rank, 1) - 1]


def _key(pct: float) -> str:
    text = f"{pct:g}".replace(".", "_")
    return f"p{text}_ms"


def summarize(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/p99.9, mean and max in milliseconds, plus the sample count."""
    out: dict[str, float] = {"count": float(len(latencies_s))}
    for pct in PERCENTILES:
        out[_key(pct)] = round(percentile(latencies_s, pct) * 1000.0, 3)
    if latencies_s:
        out["mean_ms"] = round(sum(latencies_s) / len(latencies_s) * 1000.0, 3)
        out["max_ms"] = round(max(latencies_s) * 1000.0, 3)
    else:
        out["mean_ms"] = out["max_ms"] = math.nan
    return out


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` rounded to 3 places; NaN when undefined."""
    if not denominator or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return round(numerator / denominator, 3)


def schedule(rate: float, duration_s: float) -> list[float]:
    """Offsets (seconds from start) at which an open-loop generator sends requests.

    Evenly spaced at ``1/rate``; the count is ``floor(rate * duration)``.

    >>> schedule(4, 1.0)
    [0.0, 0.25, 0.5, 0.75]
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    count = int(math.floor(rate * duration_s + 1e-9))
    return [i / rate for i in range(count)]


def weighted_cycle(weights: Sequence[tuple[str, int]]) -> list[str]:
    """Spread labels over one cycle in proportion to integer weights, interleaved.

    Largest-remainder interleaving so that any window of the cycle has close
    to the target mix (no long runs of one label).

    >>> weighted_cycle([("a", 3), ("b", 1)])
    ['a', 'a', 'b', 'a']
    """
    total = sum(w for _, w in weights)
    if total <= 0 or any(w < 0 for _, w in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    given = {label: 0 for label, _ in weights}
    out: list[str] = []
    for step in range(1, total + 1):
        # the label furthest behind its quota at this step goes next
        label = max(weights, key=lambda lw: (lw[1] * step / total - given[lw[0]], lw[1]))[0]
        given[label] += 1
        out.append(label)
    return out
