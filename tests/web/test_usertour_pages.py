"""What an administrator's tour of the WebUI found (the True PACS demo in Chromium), each fixed and held here:
the WAF page's two tables side by side, the dashboard counting a VIP's rules apart from its default service,
a name filter wide enough for its placeholder, no favicon request (a 404 in every console), a certificate
assigned only to a service chosen on purpose, and the JSON links of GSLB and Cluster drawn as links.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from web.conftest import PASSWORD, StandInAppliance

from pacslb import pki
from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore
from pacslb.templates.true_pacs import render_true_pacs
from pacslb.web import mount_web


@pytest.fixture
def true_pacs_admin(tmp_path):
    """An admin's client of the WebUI over the True PACS template (6 VIPs, 29 backend-only services, rules)."""
    text = render_true_pacs()
    loaded = load_text(text)
    assert loaded.ok, loaded.problems
    config_file = tmp_path / "pacslb.yaml"
    config_file.write_text(text)
    state = tmp_path / "state"
    (state / "haproxy").mkdir(parents=True)
    (state / "certs").mkdir()
    (state / "certs" / "site.pem").write_bytes(pki.self_signed("pacs.example").bundle())  # one to assign
    controller = StandInAppliance(StatePaths(state), config_file, loaded.config).facade
    first = controller.changes.store.add(loaded.config.model_dump_json(), text, author="setup", message="first", kind="file",
                                         parent=None)  # fmt: skip
    controller.changes.store.mark_applied(first.id)
    auth = AuthService(UserStore(state / "users.sqlite"), AuditLog(state / "audit.sqlite"))
    auth.users.add("admin", PASSWORD, "admin")
    app = create_management_app(controller, auth)
    mount_web(app)
    with TestClient(app, base_url="https://testserver") as client:
        assert client.post("/login", data={"username": "admin", "password": PASSWORD}, follow_redirects=False).status_code == 303
        yield client


def test_the_dashboard_counts_rules_apart_from_the_default_service(true_pacs_admin):
    page = true_pacs_admin.get("/").text
    # WFC_443: 13 path rules, and a default service (that a rule names too): not "by 14 rules"
    assert "13 backend-only services by 13 rules and a default" in page
    assert "3 backend-only services by 3 rules and a default" in page  # WFC_10443
    assert "by 14 rules" not in page and "by 4 rules" not in page


def test_the_name_filter_is_as_wide_as_its_placeholder(true_pacs_admin):
    field = re.search(r'<input type="search" name="q" id="filter-name"[^>]*>', true_pacs_admin.get("/").text)
    assert field, "no name filter on the dashboard"
    placeholder = re.search(r'placeholder="([^"]+)"', field[0])[1]
    assert int(re.search(r'size="(\d+)"', field[0])[1]) >= len(placeholder)


def test_no_page_makes_the_browser_ask_for_a_favicon(true_pacs_admin):
    for path in ("/", "/login", "/services", "/waf"):
        assert '<link rel="icon" href="data:,">' in true_pacs_admin.get(path).text, path


def test_the_waf_tables_per_service_and_per_rule_stand_in_columns(true_pacs_admin):
    page = true_pacs_admin.get("/waf").text
    assert '<div class="columns">' in page and 'class="grid two"' not in page  # a class the style sheet has
    css = true_pacs_admin.get("/static/style.css").text
    assert re.search(r"^\.columns \{[^}]*display: grid", css, re.M)


def test_a_certificate_is_assigned_only_to_a_service_chosen_on_purpose(true_pacs_admin):
    page = true_pacs_admin.get("/certificates").text
    selects = re.findall(r'<select name="service"[^>]*>.*?</select>', page, re.S)
    assert selects, "no assign form on the certificates page"
    for select in selects:
        first = re.search(r"<option[^>]*>", select)[0]
        # the first option chooses nothing: the browser refuses to submit before a service is picked
        assert " required" in select.split(">", 1)[0] and 'value=""' in first and "selected" in first and "disabled" in first


@pytest.mark.parametrize("path", ["/gslb", "/cluster"])
def test_the_json_link_looks_like_a_link(true_pacs_admin, path):
    head = re.search(r'<div class="page-head">.*?</div>', true_pacs_admin.get(path).text, re.S)[0]
    link = re.search(r"<a [^>]*>JSON</a>", head)[0]
    assert 'class="muted' not in link  # muted grey text read as a label, not a link


def test_a_browser_following_a_stale_link_gets_a_page_and_scripts_keep_json(true_pacs_admin):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    stale = true_pacs_admin.get("/services/WFC_gone", headers=browser)
    assert stale.status_code == 404 and stale.headers["content-type"].startswith("text/html")
    assert "there is no virtual service WFC_gone" in stale.text and '<a href="/">Back to the dashboard</a>' in stale.text
    typo = true_pacs_admin.get("/servcies", headers=browser)
    assert typo.status_code == 404 and "There is no page /servcies here." in typo.text
    script = true_pacs_admin.get("/services/WFC_gone")  # a script: the contract's JSON error body
    assert script.status_code == 404 and script.json()["outcome"] == "not-found"
    api = true_pacs_admin.get("/api/v1/virtual-services/WFC_gone", headers=browser)  # the API answers JSON to anyone
    assert api.status_code == 404 and api.json()["outcome"] == "not-found"


def test_the_error_page_is_no_way_around_the_login(true_pacs_admin):
    true_pacs_admin.cookies.clear()
    page = true_pacs_admin.get("/services/WFC_gone", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code in (302, 303, 307) and page.headers["location"].startswith("/login")
