"""The balancing vocabulary: priority classes, exams, readers, shifts, assignments.

Times are seconds (any epoch, the scheduler never reads a clock); effort is in the site's units of expected
reading effort (RVU-like), taken from its exam-effort table.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PriorityClass:
    """One priority class: lower `rank` is read first; no exam of the class should wait past `max_wait` seconds."""

    name: str
    rank: int
    max_wait: float


DEFAULT_CLASSES = (
    PriorityClass("STAT", 0, 60 * 60.0),
    PriorityClass("expedited", 1, 4 * 3600.0),
    PriorityClass("routine", 2, 12 * 3600.0),
)


@dataclass(frozen=True)
class Exam:
    """An exam to be read. `credential`, `subspecialty` and `site` are hard constraints when set."""

    accession: str
    patient: str
    modality: str
    priority: str
    arrived: float
    effort: float
    body_part: str = ""
    site: str = ""
    subspecialty: str = ""
    credential: str = ""


@dataclass(frozen=True)
class Reader:
    """A radiologist. An empty `sites` means every site. Caps: at most `max_queued` exams assigned but not yet
    opened, and at most `max_outstanding_effort` of effort assigned and not yet signed (0: no effort cap)."""

    name: str
    credentials: frozenset[str] = frozenset()
    subspecialties: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    max_queued: int = 2
    max_outstanding_effort: float = 0.0


@dataclass(frozen=True)
class Shift:
    """A reader's declared shift: [start, end) with breaks inside it, and the effort per hour it is declared to read."""

    reader: str
    start: float
    end: float
    capacity: float
    breaks: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Assignment:
    """One decision: `exam` goes to `reader` at `at`, and why."""

    accession: str
    reader: str
    at: float
    reason: str


@dataclass
class Outstanding:
    """An exam assigned to a reader and not yet signed; `started` once the reader opened it."""

    exam: Exam
    assigned_at: float
    started: float | None = None
    reason: str = ""


@dataclass
class Ledger:
    """What a reader has been given: effort assigned in total (kept across breaks and shifts of the day) and the exams
    still open on their list."""

    assigned_effort: float = 0.0
    signed_effort: float = 0.0
    open: dict[str, Outstanding] = field(default_factory=dict)

    def queued(self) -> list[Outstanding]:
        return [o for o in self.open.values() if o.started is None]

    def outstanding_effort(self) -> float:
        return sum(o.exam.effort for o in self.open.values())
