"""Split brain: both nodes of the pair master at once. Pure functions over the two nodes' transitions.

A handover (one node's BACKUP and the other's MASTER written a moment apart) overlaps by a few
milliseconds; a split brain lasts at least the three missed adverts that make a backup take over, so
overlaps shorter than two advert intervals are not split brains.

A node was master from its MASTER line to its next line, with two exceptions that are not evidence of
mastership (issue 13: each gave a false alarm):

- STOP is written by the controller *before* it stops keepalived (`pacslb stop`), so a graceful stop
  ends the interval before the peer hears the priority-0 advert and takes over;
- START (a keepalived started afresh) or UNKNOWN (the controller found keepalived dead) after MASTER
  means that keepalived ended without a trace: killed, or its node died. When it stopped being master
  is unknown, so the interval counts for nothing; read up to START it would cover the whole time the
  node was down, while the peer was (rightly) master.
"""

from __future__ import annotations

from dataclasses import dataclass

# A keepalived that ended without a trace: the master interval before it has no known end.
UNSEEN_END = frozenset({"START", "UNKNOWN"})


@dataclass(frozen=True)
class Overlap:
    """Both nodes master from `start` to `end`; `ongoing` when both still are."""

    start: float
    end: float
    ongoing: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


def master_intervals(transitions: list, now: float) -> list[tuple[float, float]]:
    """[start, end) of each time a node was master, from its (time, state) transitions (see the module docstring)."""
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for at, state in sorted((float(t[0]), str(t[1])) for t in transitions):
        if state == "MASTER" and start is None:
            start = at
        elif state != "MASTER" and start is not None:
            if state not in UNSEEN_END:
                intervals.append((start, at))
            start = None
    if start is not None:
        intervals.append((start, now))
    return intervals


def overlaps(mine: list, theirs: list, now: float, least: float) -> list[Overlap]:
    """The times both nodes were master for at least `least` seconds, oldest first."""
    found = []
    for a0, a1 in master_intervals(mine, now):
        for b0, b1 in master_intervals(theirs, now):
            start, end = max(a0, b0), min(a1, b1)
            if end - start >= least:
                found.append(Overlap(start, end, ongoing=a1 == now and b1 == now))
    return sorted(found, key=lambda o: o.start)


def winner(rule: str) -> str:
    return "the primary" if rule == "primary-wins" else "the node that was master before the cut"
