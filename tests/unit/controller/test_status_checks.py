"""`pacslb status` with the checks the appliance runs itself, and with a maintenance page as fallback."""

from __future__ import annotations

from pacslb.controller.status import CheckOutcome, EngineStatus, ServerState, appliance_check_result, build_status
from pacslb.engines.haproxy.runtime import ProxyKind, StatRow
from pacslb.model import load_text

CONFIG = """
version: 1
virtual_services:
  - name: dicom
    mode: layer7-tcp
    listen: [{address: 127.0.0.1, port: 11112}]
    health_check: {type: dicom-echo, called_ae: ARCHIVE}
    real_servers:
      - {name: a1, address: 127.0.0.2, port: 104}
      - {name: a2, address: 127.0.0.3, port: 104}
      - {name: a3, address: 127.0.0.4, port: 104}
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    health_check: {type: http}
    real_servers: [{name: w1, address: 127.0.0.5, port: 80}]
    fallback: {maintenance_page: true}
"""


def _row(proxy: str, name: str, status: str, check: str = "L4OK") -> StatRow:
    return StatRow(proxy=proxy, name=name, kind=ProxyKind.SERVER, status=status, weight=100, check_status=check)


def test_appliance_check_result() -> None:
    down = appliance_check_result(
        {"type": "dicom-echo", "up": False, "reason": "association rejected", "changed_at": 100.0}, now=130.0
    )
    assert (down.outcome, down.description, down.by, down.type, down.changed_s) == (
        CheckOutcome.FAILED,
        "association rejected",
        "appliance",
        "dicom-echo",
        30,
    )
    assert down.summary() == "failed: association rejected"
    up = appliance_check_result({"type": "dicom-echo", "up": True, "reason": "C-ECHO success", "changed_at": None})
    assert up.outcome is CheckOutcome.PASSED and up.info == "C-ECHO success" and up.changed_s is None
    assert appliance_check_result({"type": "hl7", "up": None, "reason": None}).outcome is CheckOutcome.PENDING


def test_servers_checked_by_the_appliance_show_its_result_and_reason() -> None:
    config = load_text(CONFIG).config
    rows = [
        StatRow(proxy="dicom", name="BACKEND", kind=ProxyKind.BACKEND, status="UP"),
        _row("dicom", "a1", "DOWN (agent)"),
        _row("dicom", "a2", "UP"),
        _row("dicom", "a3", "DOWN", check="L4CON"),  # the TCP connect itself fails
        StatRow(proxy="web", name="BACKEND", kind=ProxyKind.BACKEND, status="UP"),
        StatRow(proxy="web", name="w1", kind=ProxyKind.SERVER, status="UP", weight=1, check_status="L7OK"),
    ]
    checks = {
        ("dicom", "a1"): {
            "type": "dicom-echo",
            "up": False,
            "reason": "association rejected: called AE title",
            "changed_at": 10.0,
        },
        ("dicom", "a2"): {"type": "dicom-echo", "up": True, "reason": "C-ECHO success", "changed_at": None},
        ("dicom", "a3"): {"type": "dicom-echo", "up": True, "reason": "C-ECHO success", "changed_at": None},
    }
    status = build_status(config, rows, EngineStatus(running=True), None, checks, now=20.0)
    dicom, web = status.virtual_services
    a1, a2, a3 = dicom.real_servers
    assert a1.state is ServerState.DOWN and a1.transition == "set by the appliance's dicom-echo check"
    assert a1.check.summary() == "failed: association rejected: called AE title" and a1.check.changed_s == 10
    assert a2.state is ServerState.UP and a2.check.outcome is CheckOutcome.PASSED and a2.check.by == "appliance"
    assert a3.check.by == "haproxy" and a3.check.outcome is CheckOutcome.FAILED  # why it is down: the connect
    w1 = web.real_servers[0]
    assert (w1.check.by, w1.check.type) == ("haproxy", "http")
    assert web.fallback is not None and web.fallback.address == "maintenance page (HTTP 503)"
    # the JSON keeps every field it had, and adds the new ones
    dumped = status.model_dump(mode="json")["virtual_services"][0]["real_servers"][0]["check"]
    assert {"outcome", "description", "code", "info", "duration_ms", "failures", "type", "by", "changed_s"} <= set(dumped)
