"""What changed between two looks: only UP <-> DOWN of real servers and virtual services, and engine restarts."""

from __future__ import annotations

from pacslb.alerts.watch import Look, changes

REASON = "association rejected: called AE title not recognised"


def test_the_first_look_raises_nothing():
    assert changes(None, Look({("VS", "rs1"): ("DOWN", REASON)}, {"VS": "DOWN"}, {"haproxy": (2, None)}), 0) == []


def test_a_server_that_goes_down_names_the_check_reason_and_its_service_follows():
    before = Look({("VS", "rs1"): ("UP", "passed"), ("VS", "rs2"): ("DOWN", "x")}, {"VS": "UP"})
    after = Look({("VS", "rs1"): ("DOWN", REASON), ("VS", "rs2"): ("DOWN", "x")}, {"VS": "DOWN"})
    found = changes(before, after, 5.0)
    assert [(a.event, a.subject, a.severity) for a in found] == [
        ("real-server-down", "VS/rs1", "critical"),
        ("virtual-service-down", "VS", "critical"),
    ]
    assert found[0].message == f"real server rs1 of VS is DOWN: {REASON}" and found[0].at == 5.0
    back = changes(after, before, 6.0)
    assert [(a.event, a.subject) for a in back] == [("real-server-up", "VS/rs1"), ("virtual-service-up", "VS")]


def test_drain_halt_unknown_and_new_things_raise_nothing():
    before = Look({("VS", "rs1"): ("UP", ""), ("VS", "rs2"): ("UP", "")}, {"VS": "UP"})
    after = Look({("VS", "rs1"): ("DRAIN", ""), ("VS", "rs2"): ("MAINT", ""), ("VS", "rs3"): ("DOWN", "")}, {"VS": "UNKNOWN"})
    assert changes(before, after, 1) == []
    assert changes(after, Look({("VS", "rs1"): ("DOWN", "")}, {"VS": "DOWN"}), 2) == []  # from DRAIN or UNKNOWN: not a failure


def test_an_engine_restart_is_told_with_its_count_and_error():
    before = Look(restarts={"haproxy": (0, None), "keepalived": (1, None)})
    after = Look(restarts={"haproxy": (1, "the master died (signal 9)"), "keepalived": (1, None)})
    [alert] = changes(before, after, 3)
    assert (alert.event, alert.subject, alert.details["restarts"]) == ("engine-restarted", "haproxy", 1)
    assert "the master died (signal 9)" in alert.message
