"""Fairness figures, pure: Jain's index, and its value hour by hour over the readers who worked in each hour."""

from __future__ import annotations

from typing import Iterable, Sequence

from .capacity import working_seconds
from .model import Shift


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when everyone has the same, 1/n when one has everything;
    1 for no values or all zero (nobody was treated differently)."""
    squares = sum(v * v for v in values)
    return sum(values) ** 2 / (len(values) * squares) if values and squares else 1.0


def hourly_fairness(
    signed: Iterable[tuple[str, float, float]], shifts: Iterable[Shift], start: float, end: float
) -> list[tuple[float, float]]:
    """(hour end, Jain's index of effort signed per hour worked) for each whole hour in [start, end), over readers who
    worked at least a quarter of that hour."""
    shifts = list(shifts)
    signed = list(signed)
    points = []
    hour = start
    while hour + 3600 <= end:
        worked: dict[str, float] = {}
        for shift in shifts:
            seconds = working_seconds(shift, hour + 3600) - working_seconds(shift, hour)
            if seconds > 0:
                worked[shift.reader] = worked.get(shift.reader, 0.0) + seconds
        effort = {name: 0.0 for name, seconds in worked.items() if seconds >= 900}
        for reader, at, amount in signed:
            if hour <= at < hour + 3600 and reader in effort:
                effort[reader] += amount
        if effort:
            points.append((hour + 3600, jain([effort[n] / (worked[n] / 3600) for n in sorted(effort)])))
        hour += 3600
    return points
