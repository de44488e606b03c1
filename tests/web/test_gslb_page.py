"""GSLB on the management API and the WebUI, in-process (tests/web/conftest.py): GET /api/v1/gslb and /gslb show,
per name, which sites are answered to which client networks and why; viewers may read them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore
from pacslb.web import mount_web

from .conftest import CONFIG, PASSWORD, StandInAppliance

GSLB = """
gslb:
  zones: [{name: pacs.example.org, nameservers: [ns1.example.net]}]
  sites:
    - {name: dc1, addresses: [192.0.2.1], near: [10.1.0.0/16], health_check: {type: http, port: 443}}
    - {name: dc2, addresses: [198.51.100.1, "2001:db8::1"], near: [10.2.0.0/16], virtual_service: web}
  names:
    - {name: wfc.pacs.example.org, policy: topology, sites: [dc1, dc2]}
    - {name: sr.pacs.example.org, policy: failover, sites: [dc1], fallback: [203.0.113.9]}
"""


@pytest.fixture
def gslb_client(tmp_path):
    text = CONFIG + GSLB
    loaded = load_text(text)
    assert loaded.ok, loaded.problems
    (tmp_path / "pacslb.yaml").write_text(text)
    state = tmp_path / "state"
    (state / "haproxy").mkdir(parents=True)
    appliance = StandInAppliance(StatePaths(state), tmp_path / "pacslb.yaml", loaded.config)
    appliance.powerdns.health = {"dc1": False}  # as the site checks would report it
    auth = AuthService(UserStore(state / "users.sqlite"), AuditLog(state / "audit.sqlite"))
    auth.users.add("viewer", PASSWORD, "viewer")
    app = create_management_app(appliance.facade, auth)
    mount_web(app)
    with TestClient(app, base_url="https://testserver") as client:
        assert client.post("/login", data={"username": "viewer", "password": PASSWORD}, follow_redirects=False).status_code == 303
        yield client


def test_the_api_says_per_name_which_sites_answer_which_networks_and_why(gslb_client):
    answer = gslb_client.get("/api/v1/gslb")
    assert answer.status_code == 200
    body = answer.json()
    assert body["configured"] and not body["running"] and body["listen"] == "127.0.0.1:5300"
    assert [(s["name"], s["up"]) for s in body["sites"]] == [("dc1", False), ("dc2", True)]
    wfc, sr = body["names"]
    assert [(a["clients"], a["sites"]) for a in wfc["answers"]] == [
        (["10.1.0.0/16"], ["dc2"]), (["10.2.0.0/16"], ["dc2"]), (["any"], ["dc2"])]  # fmt: skip
    assert wfc["answers"][0]["reason"] == "near dc1, which is down: dc2 is the first healthy site"
    assert sr["all_down"] and sr["answers"][0]["addresses"] == ["203.0.113.9"]


def test_the_page_shows_the_same_and_links_its_json(gslb_client):
    page = gslb_client.get("/gslb")
    assert page.status_code == 200
    html = page.text
    assert 'href="/api/v1/gslb"' in html and 'href="/gslb"' in html  # the JSON alternate, and the nav entry
    assert 'data-site="dc1"' in html and "st-down" in html.split('data-site="dc1"')[1].split("</tr>")[0]
    assert "near dc1, which is down: dc2 is the first healthy site" in html
    assert "every member down: fallback" in html.split('data-name="sr.pacs.example.org"')[1]
    assert 'local service <a href="/services/web">web</a>' in html


def test_without_a_gslb_section_the_page_says_so(web):
    client = web("viewer")
    assert "GSLB is not configured" in client.get("/gslb").text
    assert client.get("/api/v1/gslb").json()["configured"] is False
    assert web(None).get("/gslb", follow_redirects=False).status_code == 303
