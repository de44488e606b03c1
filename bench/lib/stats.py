"""Numbers from samples: medians, percentiles, per-request figures and ratios (None where there is nothing)."""

from __future__ import annotations

import statistics
from typing import Iterable


def median(xs: Iterable[float | None]) -> float | None:
    """The median of the values that are not None; None if there are none."""
    values = [x for x in xs if x is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default); NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def nearest_rank(values: list[float], q: float) -> float | None:
    """The q-quantile (0-1) as the sample at rank floor(q * n), no interpolation; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms_summary(seconds: list[float]) -> dict[str, float]:
    """Count, median, p99, min and max of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def per_request_us(seconds: float | None, requests: int) -> float | None:
    """Seconds spent over a number of requests, in microseconds per request (None without either)."""
    return None if seconds is None or not requests else seconds / requests * 1e6


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, None when either is missing or den is 0."""
    return None if num is None or not den else num / den
