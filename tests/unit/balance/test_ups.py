"""balance/ups.py: the workitem of an assignment, and its N-CREATE to a real UPS SCP (pynetdicom) on loopback,
through the store's outbox (a push that fails stays pending and goes at the next try)."""

from __future__ import annotations

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import UnifiedProcedureStepPush

from pacslb.balance import ups
from pacslb.balance.config import load_text
from pacslb.balance.model import Assignment, Exam
from pacslb.balance.service import BalanceService
from pacslb.balance.store import Store
from support.hl7feed import orm
from support.net import LOOPBACK, free_port

T0 = 1_796_637_600.0  # 2026-12-07 10:00 UTC, a Monday


def test_the_workitem_names_the_reader_priority_and_a_stable_uid():
    exam = Exam("A1", "P1", "MR", "STAT", 0.0, 1.5, "KNEE")
    item = ups.workitem(exam, Assignment("A1", "bo", T0, "why"))
    assert (item.reader, item.priority, item.label, item.scheduled) == ("bo", "HIGH", "Read MR KNEE", "20261207100000+0000")
    assert item.sop_instance_uid == ups.workitem(exam, Assignment("A1", "bo", T0, "why")).sop_instance_uid
    assert item.sop_instance_uid != ups.workitem(exam, Assignment("A1", "bo", T0 + 1, "why")).sop_instance_uid
    assert item.sop_instance_uid.startswith("2.25.") and len(item.sop_instance_uid) <= 64
    ds = ups.dataset(item)
    assert ds.ScheduledHumanPerformersSequence[0].HumanPerformerName == "bo"
    assert ds.ReferencedRequestSequence[0].AccessionNumber == "A1" and ds.ProcedureStepState == "SCHEDULED"


def test_a_bad_ups_section_names_its_field():
    _, problems = load_text("readers: [{name: a}]\nups: {host: h, port: 0, called_ae: WL}")
    assert problems[0].path == "ups.port"


@pytest.fixture
def scp():
    """A UPS Push SCP on loopback that keeps what it receives; started by the test (`start()`), shut down after."""
    received = []

    def on_create(event):
        received.append(event.attribute_list)
        return 0x0000, event.attribute_list

    ae = AE(ae_title="WORKLIST")
    ae.add_supported_context(UnifiedProcedureStepPush)
    port = free_port()
    servers = []

    def start():
        servers.append(ae.start_server((LOOPBACK, port), block=False, evt_handlers=[(evt.EVT_N_CREATE, on_create)]))

    yield port, received, start
    for server in servers:
        server.shutdown()


async def test_assignments_are_pushed_and_a_failed_push_is_tried_again(tmp_path, scp):
    port, received, start = scp
    config, problems = load_text(
        "readers: [{name: ada}]\nshifts: [{reader: ada, start: '08:00', end: '16:00', capacity: 6}]\n"
        f"ups: {{host: {LOOPBACK}, port: {port}, called_ae: WORKLIST, timeout_seconds: 5}}\n"
    )
    assert not problems
    store = Store(tmp_path / "b.sqlite")
    service = BalanceService(config, store, lambda: T0)
    try:
        service.handle_hl7(orm("o1", "A1", "P1", "CT", "STAT").encode())
        assert await service.push_workitems() == 0  # nobody listens yet
        [pending] = store.pending_workitems()
        assert pending["reader"] == "ada"
        start()
        assert await service.push_workitems() == 1
        assert store.pending_workitems() == []
        [ds] = received
        assert ds.ScheduledHumanPerformersSequence[0].HumanPerformerName == "ada"
        assert ds.ReferencedRequestSequence[0].AccessionNumber == "A1" and ds.ScheduledProcedureStepPriority == "HIGH"
        assert "STAT" in ds.CommentsOnTheScheduledProcedureStep
    finally:
        store.close()
