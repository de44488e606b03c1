"""WAF events from ModSecurity's JSON audit log (engines/waf/events.py), on lines recorded from Debian's ModSecurity."""

from __future__ import annotations

from pathlib import Path

from pacslb.engines.waf.events import MAX_DATA, parse, read_events, summarize
from pacslb.engines.waf.paths import WafPaths

DATA = Path(__file__).parent / "data"


def test_a_detected_request_names_its_rules_client_and_request():
    event = parse((DATA / "audit-detect.log").read_text(), "pacs.dicomweb")
    assert event is not None
    assert (event.policy, event.service, event.client, event.method, event.blocked) == (
        "pacs.dicomweb", "pacs", "192.0.2.44", "GET", False)  # fmt: skip
    assert event.uri.startswith("/dicom-web/studies?PatientName=%27%20OR%201%3D1")
    assert "942100" in event.rule_ids and "949110" not in event.rule_ids  # scoring rules are not the reason
    assert any(m.rule_id == "942100" and "SQL Injection" in m.message for m in event.matches)


def test_a_blocked_request_and_truncated_data():
    event = parse((DATA / "audit-block.log").read_text(), "web")
    assert event is not None and event.blocked and event.status == 403
    assert all(len(m.data) <= MAX_DATA and len(m.message) <= MAX_DATA for m in event.matches)


def test_lines_without_a_rule_are_no_events():
    assert parse("not json", "web") is None
    assert parse('{"transaction": {}, "audit_data": {"messages": []}, "response": {"status": 200}}', "web") is None


def test_read_newest_first_filter_by_service_and_count(tmp_path):
    paths = WafPaths(tmp_path)
    paths.dir.mkdir()
    paths.audit_log("web").write_text((DATA / "audit-block.log").read_text())
    paths.audit_log("pacs.dicomweb").write_text((DATA / "audit-detect.log").read_text())
    events = read_events(paths)
    assert [e.policy for e in events] == ["pacs.dicomweb", "web"]  # the detect line is the newer one
    assert [e.policy for e in read_events(paths, service="web")] == ["web"]
    assert len(read_events(paths, limit=1)) == 1
    summary = summarize(events)
    assert summary["events"] == 2
    assert {s["service"]: (s["blocked"], s["detected"]) for s in summary["services"]} == {"pacs": (0, 1), "web": (1, 0)}
    assert next(r for r in summary["rules"] if r["rule_id"] == "942100")["count"] == 2
