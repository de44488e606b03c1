"""Split brain: both nodes of the pair master at once. Pure functions over the two nodes' transitions.

A handover (one node's BACKUP and the other's MASTER written a moment apart) overlaps by a few
milliseconds; a split brain lasts at least the three missed adverts that make a backup take over, so
overlaps shorter than two advert intervals are not split brains.
"""

from __future__ import annotations


def master_intervals(transitions: list, now: float) -> list[tuple[float, float]]:
    """[start, end) of each time a node was master, from its (time, state) transitions in order."""
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for at, state in sorted((float(t[0]), str(t[1])) for t in transitions):
        if state == "MASTER" and start is None:
            start = at
        elif state != "MASTER" and start is not None:
            intervals.append((start, at))
            start = None
    if start is not None:
        intervals.append((start, now))
    return intervals


def overlaps(mine: list, theirs: list, since: float, now: float, least: float) -> list[tuple[float, float]]:
    """The times since `since` when both nodes were master for at least `least` seconds."""
    a = master_intervals(mine, now)
    b = master_intervals(theirs, now)
    return [(max(a0, b0, since), min(a1, b1)) for a0, a1 in a for b0, b1 in b if min(a1, b1) - max(a0, b0, since) >= least]


def winner(rule: str) -> str:
    return "the primary" if rule == "primary-wins" else "the node that was master before the cut"
