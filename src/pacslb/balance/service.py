"""The balance service's logic: HL7 in, worklist decisions, SQLite out; no sockets here (mllp.py and api.py are the
edges, runner.py puts them on one event loop).

Every event is one store transaction, committed before its answer: an HL7 message and its ACK, a "next case" and
its reply. The clock is passed in, so tests can drive time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import asdict
from typing import Callable
from zoneinfo import ZoneInfo

from . import ups
from .capacity import current_shift, earned
from .config import BalanceConfig, effort_of, priority_classes, readers, shifts_between
from .fairness import hourly_fairness
from .hl7msg import HL7Reject, ack, parse, read_order, read_signed
from .model import Exam, Outstanding
from .scheduler import BalanceError, Policy, Worklist
from .store import Store

MAX_LIVE_EXAMS = 50_000  # exams waiting or on lists; beyond it an order gets AE (a feed gone wrong, not a real day)


class BalanceService:
    """The worklist with its store and schedule."""

    def __init__(self, config: BalanceConfig, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        self.policy = Policy(priority_classes(config), config.escalation_lead_minutes * 60)
        today = self._today()
        self.first_day = today - dt.timedelta(days=1)
        self.last_day = today + dt.timedelta(days=1)
        self.worklist = Worklist(readers(config), shifts_between(config, self.first_day, self.last_day), self.policy)
        self._restore()

    # -- state ------------------------------------------------------------------------------------------------------

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), self.zone).date()

    def _restore(self) -> None:
        """Rebuild the worklist from the store: waiting exams, each reader's list, effort assigned per reader."""
        wl = self.worklist
        for exam, state, reader, assigned_at, opened_at, reason in self.store.live():
            if state == "waiting" or reader not in wl.readers:
                wl.waiting[exam.accession] = exam
            else:
                wl.ledgers[reader].open[exam.accession] = Outstanding(exam, assigned_at or 0.0, opened_at, reason)
                wl.holder[exam.accession] = reader
        for reader, effort in self.store.effort_by_reader().items():
            if reader in wl.ledgers:
                wl.ledgers[reader].assigned_effort = effort

    def _extend_schedule(self) -> None:
        """Add the declared shifts of the days ahead as the calendar moves on."""
        tomorrow = self._today() + dt.timedelta(days=1)
        while self.last_day < tomorrow:
            self.last_day += dt.timedelta(days=1)
            for shift in shifts_between(self.config, self.last_day, self.last_day):
                self.worklist.shifts[shift.reader].append(shift)

    def _places(self) -> dict[str, tuple[str, str, float | None]]:
        places = {acc: ("waiting", "", None) for acc in self.worklist.waiting}
        for name, ledger in self.worklist.ledgers.items():
            for acc, o in ledger.open.items():
                places[acc] = ("opened" if o.started is not None else "listed", name, o.started)
        return places

    def _sync(self, before: dict[str, tuple[str, str, float | None]]) -> None:
        """Write what moved since `before`, and the assignments made, to the store (inside its transaction)."""
        for acc, place in self._places().items():
            if before.get(acc) != place:
                state, reader, _ = place
                outstanding = self.worklist.ledgers[reader].open[acc] if reader else None
                self.store.set_place(acc, state, reader, outstanding)
        for assignment in self.worklist.take_journal():
            self.store.record(assignment)
            holder = self.worklist.holder.get(assignment.accession)
            if self.config.ups is not None and holder == assignment.reader:
                item = ups.workitem(self.worklist.ledgers[holder].open[assignment.accession].exam, assignment)
                self.store.enqueue_workitem(item.sop_instance_uid, asdict(item))

    # -- events -----------------------------------------------------------------------------------------------------

    def handle_hl7(self, raw: bytes) -> str:
        """One HL7 message in, its ACK out (AA, or AE/AR with the reason). A message sent again with the same control
        ID gets the same ACK and changes nothing."""
        try:
            message, kind, control = parse(raw)
        except HL7Reject as exc:
            return ack(None, "", exc.code, exc.reason)
        msh = str(message.segment("MSH"))
        if not control:
            return ack(msh, "", "AR", "MSH-10 (message control ID) is empty")
        previous = self.store.ack_for(control)
        if previous is not None:
            return previous
        now = self.clock()
        self._extend_schedule()
        before = self._places()
        with self.store:
            try:
                if kind.startswith("ORM"):
                    self._order(message, now)
                elif kind.startswith("ORU"):
                    self._signed(message, now)
                else:
                    raise HL7Reject("AR", f"message type {kind or '(none)'} is not taken here; send ORM^O01 or ORU^R01")
                answer = ack(msh, control, "AA")
            except HL7Reject as exc:
                answer = ack(msh, control, exc.code, exc.reason)
            except BalanceError as exc:
                answer = ack(msh, control, "AE", str(exc))
            self.worklist.assign(now)
            self._sync(before)
            self.store.remember_ack(control, answer)
        return answer

    def _order(self, message, now: float) -> None:
        order = read_order(message)
        if order.cancel:
            if self.store.state_of(order.accession) in (None, "signed", "cancelled"):
                raise HL7Reject("AE", f"cancel of accession {order.accession}, which is not on the worklist")
            self.worklist.cancel(order.accession)
            self.store.set_cancelled(order.accession)
            return
        known = self.store.state_of(order.accession)
        if known is not None:
            raise HL7Reject("AE", f"accession {order.accession} is already known ({known}); a new order needs a new accession")
        if len(self.worklist.waiting) + len(self.worklist.holder) >= MAX_LIVE_EXAMS:
            raise HL7Reject("AE", f"the worklist holds {MAX_LIVE_EXAMS} exams, its limit; sign or cancel some first")
        row = effort_of(self.config, order.modality, order.body_part)
        exam = Exam(
            order.accession, order.patient, order.modality, order.priority, now, row.effort,
            order.body_part, order.site, row.subspecialty, row.credential,
        )  # fmt: skip
        self.worklist.add(exam)
        self.store.put_exam(exam)

    def _signed(self, message, now: float) -> None:
        signed = read_signed(message)
        if signed is None:
            return  # a preliminary result: the exam stays where it is
        state = self.store.state_of(signed.accession)
        if state == "signed":
            return  # the same report again
        if state in (None, "cancelled"):
            raise HL7Reject("AE", f"report for accession {signed.accession}, which is not on the worklist")
        if signed.accession in self.worklist.waiting:
            del self.worklist.waiting[signed.accession]  # read outside its list (another reader took it directly)
        else:
            self.worklist.sign(signed.accession)
        self.store.set_signed(signed.accession, now)

    def next_case(self, reader: str) -> dict | None:
        """The reader's next case, opened (None if there is nothing for them); BalanceError for an unknown reader."""
        now = self.clock()
        self._extend_schedule()
        before = self._places()
        with self.store:
            case = self.worklist.open_case(reader, now)
            self._sync(before)
        return _exam_view(case.exam, now) | {"reason": case.reason, "assigned_at": case.assigned_at} if case else None

    async def push_workitems(self) -> int:
        """Push the pending UPS workitems; how many were accepted. Only the network exchange runs in a thread (the store
        stays on the event loop); a refused or failed push stays pending and is tried again at the next call."""
        target = self.config.ups
        if target is None:
            return 0
        accepted = 0
        for item in self.store.pending_workitems():
            error = await asyncio.to_thread(
                ups.push,
                ups.Workitem(**item),
                target.host,
                target.port,
                target.called_ae,
                target.calling_ae,
                target.timeout_seconds,
            )
            with self.store:
                self.store.workitem_pushed(item["sop_instance_uid"], self.clock(), error)
            accepted += not error
        return accepted

    def tick(self) -> None:
        """Periodic: escalations, lists of readers gone off shift back to the pool, new days of the schedule."""
        now = self.clock()
        self._extend_schedule()
        before = self._places()
        with self.store:
            self.worklist.assign(now)
            self._sync(before)

    # -- views (the API and the page) ------------------------------------------------------------------------------

    def readers_view(self) -> list[dict]:
        now = self.clock()
        wl = self.worklist
        out = []
        for name in sorted(wl.readers):
            shift = current_shift(wl.shifts[name], now)
            ledger = wl.ledgers[name]
            item = {
                "name": name,
                "working": shift is not None,
                "capacity": shift.capacity if shift else None,
                "shift_end": shift.end if shift else None,
                "earned": round(earned(wl.shifts[name], now), 3),
                "assigned": round(ledger.assigned_effort, 3),
                "outstanding": round(ledger.outstanding_effort(), 3),
                "lag_hours": round(wl.lag_hours(name, shift, now), 3) if shift else None,
                "list": [
                    _exam_view(o.exam, now) | {"opened": o.started is not None, "reason": o.reason}
                    for o in sorted(ledger.open.values(), key=lambda o: self.policy.order(o.exam, now))
                ],
            }
            out.append(item)
        return out

    def waiting_view(self) -> list[dict]:
        now = self.clock()
        exams = sorted(self.worklist.waiting.values(), key=lambda e: self.policy.order(e, now))
        return [_exam_view(e, now) | {"escalated": self.policy.escalated(e, now)} for e in exams]

    def fairness_view(self, hours: int = 24) -> list[tuple[float, float]]:
        now = self.clock()
        start = (now // 3600 - hours) * 3600
        shifts = [s for group in self.worklist.shifts.values() for s in group]
        return hourly_fairness(self.store.signed_since(start), shifts, start, now)


def _exam_view(exam: Exam, now: float) -> dict:
    return {
        "accession": exam.accession,
        "patient": exam.patient,
        "modality": exam.modality,
        "body_part": exam.body_part,
        "priority": exam.priority,
        "site": exam.site,
        "effort": exam.effort,
        "arrived": exam.arrived,
        "age_minutes": round((now - exam.arrived) / 60, 1),
    }
