"""The balance service in process: its file, HL7 in and ACK out, the store across a restart, the REST API and page."""

from __future__ import annotations

import httpx
import pytest

from pacslb.balance import hl7msg
from pacslb.balance.api import make_app
from pacslb.balance.config import MAX_FILE_BYTES, load_text, shifts_between
from pacslb.balance.service import BalanceService
from pacslb.balance.store import Store
from support.hl7feed import msa, orm, oru

T0 = 1_796_637_600.0  # 2026-12-07 10:00 UTC, a Monday

CONFIG = """
timezone: UTC
effort:
  - {modality: CT, effort: 1.3}
  - {modality: MR, body_part: KNEE, effort: 1.5, subspecialty: msk}
  - {modality: MG, effort: 0.75, credential: MQSA}
readers:
  - {name: ada, credentials: [MQSA], max_queued: 1}
  - {name: bo, subspecialties: [msk], max_queued: 1}
shifts:
  - {reader: ada, start: "08:00", end: "16:00", capacity: 6, breaks: ["12:00-12:30"]}
  - {reader: bo, start: "08:00", end: "16:00", capacity: 6}
"""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def service(tmp_path):
    config, problems = load_text(CONFIG)
    assert problems == []
    store = Store(tmp_path / "balance.sqlite")
    yield BalanceService(config, store, Clock(T0))
    store.close()


# -- the file --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, path, words",
    [
        ("readers: []", "readers", "at least 1"),
        ("readers: [{name: a}]\nshifts: [{reader: b, start: '08:00', end: '16:00', capacity: 5}]", "shifts[0].reader", "no reader 'b'"),
        ("readers: [{name: a}]\nshifts: [{reader: a, start: '8', end: '16:00', capacity: 5}]", "shifts[0].start", "HH:MM"),
        ("readers: [{name: a}]\nshifts: [{reader: a, start: '08:00', end: '08:00', capacity: 5}]", "shifts[0].end", "ends when it starts"),
        ("readers: [{name: a}]\nshifts: [{reader: a, start: '08:00', end: '12:00', capacity: 5, breaks: ['13:00-13:30']}]",
         "shifts[0].breaks[0]", "not inside the shift"),
        ("readers: [{name: a}]\nshifts: [{reader: a, days: [mon, funday], start: '08:00', end: '12:00', capacity: 5}]",
         "shifts[0].days", "'funday' is not a day"),
        ("readers: [{name: a}, {name: a}]", "readers[a].name", "unique"),
        ("readers: [{name: a, sitez: [north]}]", "readers[a].sitez", "did you mean 'sites'"),
        ("timezone: Mars/Olympus\nreaders: [{name: a}]", "timezone", "IANA"),
        ("readers: [{name: a}]\neffort: [{modality: CT, effort: 0}]", "effort[0].effort", "greater than 0"),
    ],
)  # fmt: skip
def test_bad_files_name_the_field_and_the_fix(text, path, words):
    config, problems = load_text(text)
    assert config is None
    assert any(p.path == path and words in p.message for p in problems), problems


def test_the_file_size_and_list_limits_are_enforced():
    _, problems = load_text("#" * (MAX_FILE_BYTES + 1))
    assert "1 MiB" in problems[0].message
    many = "readers:\n" + "".join(f"  - {{name: r{i}}}\n" for i in range(501))
    _, problems = load_text(many)
    assert problems[0].path == "readers" and "at most 500" in problems[0].message


def test_overnight_shifts_and_breaks_expand_to_the_right_hours():
    config, _ = load_text(
        "readers: [{name: a}]\nshifts: [{reader: a, days: [mon], start: '22:00', end: '06:00', capacity: 4, breaks: ['02:00-02:30']}]"
    )
    import datetime as dt

    [shift] = shifts_between(config, dt.date(2026, 12, 7), dt.date(2026, 12, 8))
    assert shift.end - shift.start == 8 * 3600
    assert shift.breaks == ((shift.start + 4 * 3600, shift.start + 4.5 * 3600),)


# -- HL7 -------------------------------------------------------------------------------------------------------


def test_an_order_is_acknowledged_assigned_and_explained(service):
    answer = service.handle_hl7(orm("c1", "A1", "P1", "MG").encode())
    assert msa(answer)[:2] == ["AA", "c1"]
    [recorded] = service.store.assignments("A1")
    assert recorded["reader"] == "ada" and "credential MQSA" in recorded["reason"]


@pytest.mark.parametrize(
    "raw, code, words",
    [
        (b"hello", "AR", "must start with an MSH segment"),
        (orm("c1", "", "P1").encode(), "AE", "OBR-3"),
        (orm("c1", "A1", "").encode(), "AE", "PID-3"),
        (orm("c1", "A1", "P1", priority="Z").encode(), "AE", "priority 'Z'"),
        (orm("c1", "A1", "P1", modality="").encode(), "AE", "OBR-24"),
        (orm("c1", "A1", "P1").replace("ORM^O01", "ADT^A01").encode(), "AR", r"ADT\S\A01 is not taken here"),
        (orm("", "A1", "P1").encode(), "AR", "MSH-10"),
        (oru("c9", "NOPE").encode(), "AE", "not on the worklist"),
        (b"MSH|" + b"x" * (hl7msg.MAX_MESSAGE_BYTES + 1), "AR", "limit"),
    ],
)
def test_bad_messages_get_ae_or_ar_with_the_reason_and_change_nothing(service, raw, code, words):
    answer = service.handle_hl7(raw)
    got_code, _, text = msa(answer)
    assert got_code == code and words in text, answer
    assert "ERR|" in answer
    assert service.store.counts() == {} and not service.worklist.waiting


def test_a_message_sent_again_gets_the_same_ack_and_changes_nothing(service):
    first = service.handle_hl7(orm("c1", "A1", "P1").encode())
    again = service.handle_hl7(orm("c1", "A1", "P1").encode())
    assert first == again and service.store.counts() == {"listed": 1}
    assert msa(service.handle_hl7(orm("c2", "A1", "P1").encode()))[0] == "AE"  # same accession, new message


def test_pull_sign_and_cancel(service):
    for i in range(4):
        service.handle_hl7(orm(f"o{i}", f"A{i}", f"P{i}").encode())
    case = service.next_case("bo")
    assert case["accession"] in {"A0", "A1"} and case["reason"]
    assert msa(service.handle_hl7(oru("r1", case["accession"], "bo").encode()))[0] == "AA"
    assert msa(service.handle_hl7(oru("r1b", case["accession"], "bo").encode()))[0] == "AA"  # the same report again
    assert msa(service.handle_hl7(oru("r2", "A3", status="P").encode()))[0] == "AA"  # preliminary: nothing moves
    assert msa(service.handle_hl7(orm("x1", "A3", "P3", order_control="CA").encode()))[0] == "AA"
    counts = service.store.counts()
    assert counts["signed"] == 1 and counts["cancelled"] == 1


def test_nothing_is_lost_across_a_restart(tmp_path):
    config, _ = load_text(CONFIG)
    clock = Clock(T0)
    store = Store(tmp_path / "b.sqlite")
    first = BalanceService(config, store, clock)
    for i in range(6):
        first.handle_hl7(orm(f"o{i}", f"A{i}", f"P{i}").encode())
    opened = first.next_case("ada")["accession"]
    before = {n: (lg.assigned_effort, sorted(lg.open)) for n, lg in first.worklist.ledgers.items()}
    waiting = sorted(first.worklist.waiting)
    store.close()  # as after a kill: the store is all there is
    store = Store(tmp_path / "b.sqlite")
    second = BalanceService(config, store, clock)
    assert {n: (lg.assigned_effort, sorted(lg.open)) for n, lg in second.worklist.ledgers.items()} == before
    assert sorted(second.worklist.waiting) == waiting
    assert second.worklist.ledgers["ada"].open[opened].started == T0
    assert msa(second.handle_hl7(oru("r1", opened).encode()))[0] == "AA"
    store.close()


def test_lists_of_a_reader_on_break_go_back_to_the_pool(service):
    service.handle_hl7(orm("o1", "A1", "P1", "MG").encode())  # only ada may read it
    assert service.worklist.holder["A1"] == "ada"
    service.clock.t = T0 + 2.25 * 3600  # 12:15, ada's break
    service.tick()
    assert service.store.state_of("A1") == "waiting"
    service.clock.t = T0 + 2.5 * 3600
    service.tick()
    assert service.store.state_of("A1") == "listed"


# -- REST and the page -----------------------------------------------------------------------------------------


async def test_rest_api_and_page(service):
    for i in range(5):
        service.handle_hl7(orm(f"o{i}", f"A{i}", f"P{i}", priority="STAT" if i == 4 else "routine").encode())
    transport = httpx.ASGITransport(app=make_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://balance") as client:
        case = (await client.post("/api/readers/ada/next")).json()
        assert case["accession"] == "A4" and case["priority"] == "STAT"
        assert (await client.post("/api/readers/nobody/next")).status_code == 404
        readers = (await client.get("/api/readers")).json()
        assert [r["name"] for r in readers] == ["ada", "bo"] and readers[0]["working"]
        assert len((await client.get("/api/waiting")).json()) == 2
        assert (await client.get("/api/assignments", params={"accession": "A4"})).json()[0]["reader"] == "ada"
        assert (await client.get("/api/assignments", params={"limit": 0})).status_code == 422
        service.handle_hl7(oru("r1", "A4", "ada").encode())
        service.clock.t = T0 + 3600
        fairness = (await client.get("/api/fairness")).json()
        assert fairness and 0 < fairness[-1]["jain"] <= 1
        page = (await client.get("/")).text
        assert "<svg" in page and "Waiting exams (2, 0 escalated)" in page and ">ada<" in page


def test_the_worklist_size_limit_gives_ae(service, monkeypatch):
    from pacslb.balance import service as service_module

    monkeypatch.setattr(service_module, "MAX_LIVE_EXAMS", 2)
    for i in range(2):
        assert msa(service.handle_hl7(orm(f"o{i}", f"A{i}", f"P{i}").encode()))[0] == "AA"
    code, _, text = msa(service.handle_hl7(orm("o3", "A3", "P3").encode()))
    assert code == "AE" and "holds 2 exams, its limit" in text
    assert service.store.state_of("A3") is None
