"""Who reads what: the balancing scheduler, pure (no clock, no I/O; the caller passes `now`).

Order of decisions, as issue 21 states them:
1. Priority: STAT exams are taken first, oldest first. The other classes (expedited, routine) are taken together by
   wait relative to their class's bound, largest fraction first: an exam's priority accumulates while it waits, at
   a rate set by its class (the accumulating priority queue of Stanford, Taylor and Ziedins, 2014). An exam that
   comes within `escalation_lead` of its class's `max_wait` (or past half of it, if later) is escalated and goes
   before every class, earliest deadline first, so that routine exams cannot starve behind a steady stream of STATs.
2. Hard constraints: a reader must work now (on shift, off break) and hold the exam's credential, subspecialty and
   site. Same-patient grouping: an exam whose patient already has an exam open on a qualified working reader's list
   goes to that reader (it is read with the other one; the cap does not apply to it).
3. Balance: among the qualified readers with room under their caps, the one furthest behind their declared capacity
   gets the exam. "Behind" is effort assigned minus effort earned by the schedule, in hours of that reader's
   declared rate. Breaks earn nothing and reset nothing, so a deficit is carried across them. An urgent exam (STAT
   or escalated) goes instead to a reader with nothing open, else to the one with the least effort open, so that it
   is read soonest; its effort still counts in the balance.
4. Caps: at most `max_queued` exams assigned and not yet opened, and an optional limit of outstanding effort.
5. Pull: a reader asking for the next case gets the exam they may read that ranks first in reading order, whether
   it is on their list, waiting (a STAT that arrived while every list was full) or unopened on a busy reader's list,
   so the reader who is free first reads the most urgent exam. When that exam is neither STAT nor escalated, the
   reader gets instead, among the first `match_window` exams they may read, the one the fewest working readers may
   read (ties: reading order): a specialist reads the MR only they may read before the radiograph anyone may read,
   which raises what the room reads per hour (skill-based routing, e.g. Wallace and Whitt, MSOM 2005).

A reader who is not working has the exams they had not opened taken back to the pool (those they opened stay theirs
until signed). Every assignment carries its reason and is kept in `journal` until the caller takes it
(`take_journal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .capacity import current_shift, earned
from .model import DEFAULT_CLASSES, Assignment, Exam, Ledger, Outstanding, PriorityClass, Reader, Shift


class BalanceError(ValueError):
    """A request the worklist cannot honour (unknown exam or reader, duplicate accession)."""


@dataclass(frozen=True)
class Policy:
    """The scheduler's settings: the priority classes and how long before `max_wait` an exam is escalated."""

    classes: tuple[PriorityClass, ...] = DEFAULT_CLASSES
    escalation_lead: float = 3600.0
    # How many exams at the head of the reading order a pull weighs by how few readers may read them (1: none, the
    # head is taken). 3 measured best in bench/reading.py (docs/reading-balance.md); urgent exams are never weighed.
    match_window: int = 3

    def priority_class(self, name: str) -> PriorityClass:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise BalanceError(f"unknown priority {name!r}; known: {', '.join(c.name for c in self.classes)}")

    def deadline(self, exam: Exam) -> float:
        """When the exam's wait reaches its class's bound."""
        return exam.arrived + self.priority_class(exam.priority).max_wait

    def escalated(self, exam: Exam, now: float) -> bool:
        """True once the exam is within `escalation_lead` of its deadline, or past half its class's `max_wait` when
        that comes later (a STAT class of 30 min is not escalated on arrival)."""
        max_wait = self.priority_class(exam.priority).max_wait
        return now >= exam.arrived + max(max_wait - self.escalation_lead, max_wait / 2)

    def order(self, exam: Exam, now: float) -> tuple:
        """Sort key of the reading order: escalated first by deadline; then the top class (STAT) oldest first; then
        every other class together, by wait relative to its class's bound (largest fraction first, an accumulating
        priority), so that a routine exam that has waited a third of its bound goes before an expedited exam that has
        waited less than a third of its own."""
        cls = self.priority_class(exam.priority)
        if self.escalated(exam, now):
            return (0, self.deadline(exam), 0, 0.0, exam.accession)
        if cls.rank == min(c.rank for c in self.classes):
            return (1, 0.0, 0, exam.arrived, exam.accession)
        return (2, -(now - exam.arrived) / cls.max_wait, cls.rank, exam.arrived, exam.accession)


def qualified(reader: Reader, exam: Exam) -> str:
    """'' when the reader may read the exam, else which hard constraint fails."""
    if exam.credential and exam.credential not in reader.credentials:
        return f"no credential {exam.credential}"
    if exam.subspecialty and exam.subspecialty not in reader.subspecialties:
        return f"not subspecialty {exam.subspecialty}"
    if exam.site and reader.sites and exam.site not in reader.sites:
        return f"not licensed for site {exam.site}"
    return ""


def has_room(reader: Reader, ledger: Ledger, exam: Exam) -> bool:
    """The caps: a free place on the reader's list, and the outstanding effort limit (an empty list always has room,
    so that an exam larger than the limit can still be read)."""
    if len(ledger.queued()) >= reader.max_queued:
        return False
    if reader.max_outstanding_effort > 0 and ledger.open:
        return ledger.outstanding_effort() + exam.effort <= reader.max_outstanding_effort
    return True


class Worklist:
    """The exams waiting, each reader's list and ledger. Deterministic: the same calls give the same assignments."""

    def __init__(self, readers: Iterable[Reader], shifts: Iterable[Shift], policy: Policy = Policy()) -> None:
        self.policy = policy
        self.readers = {r.name: r for r in readers}
        self.shifts: dict[str, list[Shift]] = {name: [] for name in self.readers}
        for shift in shifts:
            if shift.reader not in self.readers:
                raise BalanceError(f"shift of unknown reader {shift.reader!r}")
            self.shifts[shift.reader].append(shift)
        self.waiting: dict[str, Exam] = {}
        self.ledgers: dict[str, Ledger] = {name: Ledger() for name in self.readers}
        self.holder: dict[str, str] = {}  # accession -> reader, for exams open on a list
        self.journal: list[Assignment] = []

    # -- events -------------------------------------------------------------------------------------------------

    def add(self, exam: Exam) -> None:
        """A new exam to read (an accession is accepted once)."""
        if exam.accession in self.waiting or exam.accession in self.holder:
            raise BalanceError(f"accession {exam.accession} is already on the worklist")
        self.policy.priority_class(exam.priority)
        self.waiting[exam.accession] = exam

    def open_case(self, reader: str, now: float) -> Outstanding | None:
        """The reader asks for their next case: assignments are brought up to date, then the exam chosen by rule 5
        (pull) is marked opened and returned (None if there is nothing for them)."""
        ledger = self._ledger(reader)
        self.assign(now)
        working = self.working(now)
        if reader not in working:  # finishing their list after their shift: their own list only, in reading order
            queued = sorted(ledger.queued(), key=lambda o: self.policy.order(o.exam, now))
            if not queued:
                return None
            queued[0].started = now
            return queued[0]
        candidates = self._candidates(reader, now)
        if not candidates:
            return None
        exam, holder, matched = self._match(reader, candidates, working, now)
        if holder != reader:
            if holder is not None:
                self._take_back(exam.accession)
            how = f"ranks first in reading order among the exams {reader} may read, {reader} asked first"
            if matched:
                how = matched + f", {reader} asked first"
            self._give(exam, reader, now, f"{self._why_priority(exam, now)}; {how}")
        chosen = ledger.open[exam.accession]
        if matched and holder == reader:  # on their list already: say why it is opened before the head of the order
            chosen.reason += f"; opened first: {matched}"
        chosen.started = now
        return chosen

    def take_journal(self) -> list[Assignment]:
        """The assignments made since the last call, oldest first (the service records them)."""
        taken, self.journal = self.journal, []
        return taken

    def sign(self, accession: str) -> str:
        """The report of `accession` is signed: it leaves the reader's list. Returns the reader."""
        reader = self.holder.pop(accession, None)
        if reader is None:
            raise BalanceError(f"accession {accession} is not open on any reader's list")
        ledger = self.ledgers[reader]
        outstanding = ledger.open.pop(accession)
        ledger.signed_effort += outstanding.exam.effort
        return reader

    def cancel(self, accession: str) -> None:
        """The order was cancelled: the exam leaves the worklist wherever it is."""
        if self.waiting.pop(accession, None) is not None:
            return
        reader = self.holder.pop(accession, None)
        if reader is None:
            raise BalanceError(f"accession {accession} is not on the worklist")
        outstanding = self.ledgers[reader].open.pop(accession)
        self.ledgers[reader].assigned_effort -= outstanding.exam.effort

    def _candidates(self, reader: str, now: float) -> list[tuple[Exam, str | None]]:
        """Exams the reader may take now, with who holds them (None: waiting), in reading order: their own unopened
        exams, waiting exams they may read, and exams unopened on another reader's list (a list entry is a
        reservation, not a claim). Exams whose patient has another exam open are left where they are, so grouping
        is kept."""
        me = self.readers[reader]
        counts: dict[str, int] = {}
        for ledger in self.ledgers.values():
            for o in ledger.open.values():
                counts[o.exam.patient] = counts.get(o.exam.patient, 0) + 1
        out: list[tuple[Exam, str | None]] = [
            (e, None) for e in self.waiting.values() if counts.get(e.patient, 0) == 0 and not qualified(me, e)
        ]
        for name, ledger in self.ledgers.items():
            for o in ledger.queued():
                if name == reader or (counts[o.exam.patient] == 1 and not qualified(me, o.exam)):
                    out.append((o.exam, name))
        out.sort(key=lambda c: self.policy.order(c[0], now))
        return out

    def _match(
        self, reader: str, candidates: list[tuple[Exam, str | None]], working: dict[str, Shift], now: float
    ) -> tuple[Exam, str | None, str]:
        """Rule 5: the first candidate if it is urgent (STAT or escalated) or the window is 1; else, among the first
        `match_window`, the one the fewest working readers may read. Returns the exam, its holder and, when the
        choice is not the first candidate, the reason."""
        first = candidates[0][0]
        if self.policy.match_window <= 1 or self._urgent(first, now):
            return candidates[0][0], candidates[0][1], ""
        window = [c for c in candidates[: self.policy.match_window] if not self._urgent(c[0], now)]

        def able(exam: Exam) -> int:
            return sum(1 for name in working if not qualified(self.readers[name], exam))

        scarcity = [able(exam) for exam, _ in window]
        best = min(range(len(window)), key=lambda i: (scarcity[i], i))
        if scarcity[best] == scarcity[0]:
            return window[0][0], window[0][1], ""
        return (
            window[best][0],
            window[best][1],
            f"of the {len(window)} exams {reader} may read at the head of the reading order, the one the fewest working "
            f"readers may read ({scarcity[best]} of {len(working)}, against {scarcity[0]} for the first)",
        )

    def _urgent(self, exam: Exam, now: float) -> bool:
        """STAT (the top class) or escalated: read first, never weighed against anything but reading order."""
        rank = self.policy.priority_class(exam.priority).rank
        return self.policy.escalated(exam, now) or rank == min(c.rank for c in self.policy.classes)

    def _take_back(self, accession: str) -> None:
        """An unopened exam leaves its reader's list for the pool (its effort no longer counts for that reader)."""
        reader = self.holder.pop(accession)
        outstanding = self.ledgers[reader].open.pop(accession)
        self.ledgers[reader].assigned_effort -= outstanding.exam.effort
        self.waiting[accession] = outstanding.exam

    # -- decisions ----------------------------------------------------------------------------------------------

    def working(self, now: float) -> dict[str, Shift]:
        """Readers working at `now`, with their current shift."""
        out = {}
        for name in sorted(self.readers):
            shift = current_shift(self.shifts[name], now)
            if shift is not None:
                out[name] = shift
        return out

    def lag_hours(self, reader: str, shift: Shift, now: float) -> float:
        """Effort assigned minus effort earned by the schedule, in hours at the current shift's declared rate
        (negative: the reader is behind and owed work)."""
        ledger = self.ledgers[reader]
        return (ledger.assigned_effort - earned(self.shifts[reader], now)) / max(shift.capacity, 1e-9)

    def release(self, now: float) -> list[str]:
        """Exams on the lists of readers who are not working and that they have not opened go back to the pool."""
        working = self.working(now)
        released = []
        for name, ledger in self.ledgers.items():
            if name in working:
                continue
            for outstanding in ledger.queued():
                self._take_back(outstanding.exam.accession)
                released.append(outstanding.exam.accession)
        return released

    def assign(self, now: float) -> list[Assignment]:
        """Give waiting exams to readers, in reading order, as the rules in this module's docstring say."""
        self.release(now)
        working = self.working(now)
        decisions: list[Assignment] = []
        for exam in sorted(self.waiting.values(), key=lambda e: self.policy.order(e, now)):
            decision = self._place(exam, working, now)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _place(self, exam: Exam, working: dict[str, Shift], now: float) -> Assignment | None:
        able = {name: shift for name, shift in working.items() if not qualified(self.readers[name], exam)}
        why = self._why_priority(exam, now)
        partner = self._patient_holder(exam.patient)
        if partner is not None and partner[0] in able:
            name, other = partner
            return self._give(
                exam, name, now, f"{why}; same patient as {other}, open on {name}'s list (grouped; cap not applied)"
            )
        roomy = [name for name in able if has_room(self.readers[name], self.ledgers[name], exam)]
        if not roomy:
            return None
        urgent = self._urgent(exam, now)
        if urgent:
            ranked = sorted(roomy, key=lambda n: (bool(self.ledgers[n].open), self.ledgers[n].outstanding_effort(), n))
        else:
            ranked = sorted(roomy, key=lambda n: (self.lag_hours(n, able[n], now), self.ledgers[n].outstanding_effort(), n))
        name = ranked[0]
        lag = self.lag_hours(name, able[name], now)
        constraints = ", ".join(
            f"{label} {value}"
            for label, value in (("credential", exam.credential), ("subspecialty", exam.subspecialty), ("site", exam.site))
            if value
        )
        reason = (
            f"{why}; {len(able)} of {len(working)} working readers qualified"
            + (f" ({constraints})" if constraints else "")
            + f", {len(roomy)} with room under their caps; "
            + (
                f"urgent: {name} has the least open ({self.ledgers[name].outstanding_effort():.2f} effort)"
                if urgent
                else f"{name} is furthest behind declared capacity ({lag:+.2f} h)"
            )
        )
        if len(ranked) > 1:
            reason += f", next {ranked[1]} ({self.lag_hours(ranked[1], able[ranked[1]], now):+.2f} h)"
        return self._give(exam, name, now, reason)

    def _give(self, exam: Exam, reader: str, now: float, reason: str) -> Assignment:
        del self.waiting[exam.accession]
        ledger = self.ledgers[reader]
        ledger.open[exam.accession] = Outstanding(exam, now)
        ledger.assigned_effort += exam.effort
        self.holder[exam.accession] = reader
        ledger.open[exam.accession].reason = reason
        assignment = Assignment(exam.accession, reader, now, reason)
        self.journal.append(assignment)
        return assignment

    def _why_priority(self, exam: Exam, now: float) -> str:
        waited = (now - exam.arrived) / 60
        if self.policy.escalated(exam, now):
            bound = self.policy.priority_class(exam.priority).max_wait / 60
            return f"{exam.priority} escalated (waited {waited:.0f} of at most {bound:.0f} min)"
        cls = self.policy.priority_class(exam.priority)
        if cls.rank == min(c.rank for c in self.policy.classes):
            return f"{exam.priority} (waited {waited:.0f} min)"
        return f"{exam.priority} (waited {waited:.0f} min, {100 * waited * 60 / cls.max_wait:.0f}% of its {cls.max_wait / 60:.0f}-min bound)"

    def _patient_holder(self, patient: str) -> tuple[str, str] | None:
        """(reader, accession) of an exam of this patient open on a list, the earliest assigned."""
        best = None
        for name in sorted(self.ledgers):
            for accession, outstanding in self.ledgers[name].open.items():
                if outstanding.exam.patient == patient and (best is None or outstanding.assigned_at < best[2]):
                    best = (name, accession, outstanding.assigned_at)
        return (best[0], best[1]) if best else None

    def _ledger(self, reader: str) -> Ledger:
        try:
            return self.ledgers[reader]
        except KeyError:
            raise BalanceError(f"unknown reader {reader!r}") from None
