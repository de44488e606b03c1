"""Reading capacity from the declared schedule only (pure).

A reader earns capacity while on shift and not on break, at the shift's declared rate. Nothing here measures a
reader's speed or presence: the schedule is the only input (see the patent note in docs/reading-balance.md).
"""

from __future__ import annotations

from typing import Iterable

from .model import Shift


def working_seconds(shift: Shift, until: float) -> float:
    """Seconds of `shift` worked (on shift, off break) from its start up to `until`."""
    end = min(until, shift.end)
    if end <= shift.start:
        return 0.0
    total = end - shift.start
    for b_start, b_end in shift.breaks:
        overlap = min(b_end, end) - max(b_start, shift.start)
        if overlap > 0:
            total -= overlap
    return max(total, 0.0)


def earned(shifts: Iterable[Shift], until: float) -> float:
    """Effort a reader's shifts declare they can read up to `until` (breaks earn nothing; what was owed before a
    break is still owed after it, since nothing resets)."""
    return sum(s.capacity * working_seconds(s, until) / 3600.0 for s in shifts)


def is_working(shift: Shift, at: float) -> bool:
    """True when `at` is inside the shift and outside its breaks."""
    if not shift.start <= at < shift.end:
        return False
    return not any(b_start <= at < b_end for b_start, b_end in shift.breaks)


def current_shift(shifts: Iterable[Shift], at: float) -> Shift | None:
    """The shift in which the reader works at `at`, if any."""
    for shift in shifts:
        if is_working(shift, at):
            return shift
    return None
