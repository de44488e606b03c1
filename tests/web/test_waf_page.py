"""The WebUI's WAF page and the management API's WAF resources, in-process (tests/web/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from pacslb.engines.waf.paths import WafPaths

DATA = Path(__file__).parents[1] / "unit" / "engines" / "waf" / "data"


def _events(web_app) -> None:
    paths = WafPaths(web_app.controller.paths.root)
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.audit_log("web").write_text((DATA / "audit-block.log").read_text() + (DATA / "audit-detect.log").read_text())


def test_the_page_counts_per_rule_and_service_and_offers_exclude_to_admins(web, web_app):
    _events(web_app)
    page = web("admin").get("/waf")
    assert page.status_code == 200
    assert "942100" in page.text and "blocked" in page.text and "detected" in page.text
    assert 'action="/waf/exclusions"' in page.text
    viewer = web("viewer").get("/waf")
    assert viewer.status_code == 200 and "942100" in viewer.text and 'action="/waf/exclusions"' not in viewer.text


def test_the_api_answers_events_as_json(web, web_app):
    _events(web_app)
    answer = web("viewer").get("/api/v1/waf/events?limit=5")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["events"]) == 2 and body["summary"]["services"] == [{"service": "web", "blocked": 1, "detected": 1}]


def test_an_exclusion_for_a_service_without_a_waf_changes_nothing_and_says_why(web, web_app):
    client = web("admin")
    before = web_app.controller.changes.store.current_id()
    answer = client.form_post("/waf/exclusions", {"policy": "web", "rule_id": "942100", "parameter": "PatientName"})
    assert answer.status_code == 303
    assert "web has no WAF policy" in client.get("/waf").text
    assert web_app.controller.changes.store.current_id() == before
    api = client.post("/api/v1/waf/exclusions", json={"policy": "nope", "exclusion": {"rule_ids": [1]}},
                      headers={"X-CSRF-Token": client.csrf})  # fmt: skip
    assert api.status_code == 404 and "there is no virtual service nope" in api.text
    viewer = web("viewer")
    refused = viewer.form_post("/waf/exclusions", {"policy": "web", "rule_id": "942100"})
    assert refused.status_code in (302, 303, 403) and web_app.controller.changes.store.current_id() == before
