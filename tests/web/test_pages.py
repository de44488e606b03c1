"""The WebUI's pages in-process (tests/web/conftest.py): login, roles, the dashboard's states and buttons,
forms with the model's problems beside their fields, stale forms, revisions, log, graphs, certificates."""

from __future__ import annotations

import json
import re
import time

from pacslb import pki
from pacslb.api.auth import FREE_FAILURES
from pacslb.store.metrics import MetricsStore, Sample
from pacslb.web.history import metrics_path


def field_html(html: str, name: str) -> str:
    """The markup of one form field (from its data-field attribute to the next field's)."""
    start = html.index(f'data-field="{name}"')
    following = html.find("data-field=", start + 10)
    return html[start : following if following > 0 else len(html)]


def row_of(html: str, real_server: str) -> str:
    start = html.index(f'data-real-server="{real_server}"')
    return html[start : html.index("</tr>", start)]


# --- login ----------------------------------------------------------------------------------------


def test_pages_send_a_browser_without_a_session_to_the_login_form(web):
    client = web(None)
    for page in ("/", "/services", "/services/web", "/revisions", "/certificates", "/graphs", "/log",
                 "/fragments/dashboard"):  # fmt: skip
        answer = client.get(page, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", page
    login = client.get("/login")
    assert login.status_code == 200
    assert 'action="/login"' in login.text and 'method="post"' in login.text
    assert 'href="/static/style.css"' in login.text
    assert client.get("/static/style.css").status_code == 200  # the login page's CSS needs no session


def test_login_sets_a_session_and_logout_ends_it(web, password):
    client = web(None)
    answer = client.post("/login", data={"username": "admin", "password": password}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert "pacslb_session" in answer.headers["set-cookie"] and "Secure" in answer.headers["set-cookie"]
    assert "password" not in answer.headers["location"]
    page = client.get("/")
    assert page.status_code == 200 and "admin" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_wrong_password_then_throttled_logins_say_so(web, password):
    client = web(None)
    for _ in range(FREE_FAILURES):
        answer = client.post("/login", data={"username": "admin", "password": "wrong password"})
        assert answer.status_code == 401
        assert "Wrong user name or password." in answer.text
    answer = client.post("/login", data={"username": "admin", "password": password})
    assert answer.status_code == 429
    assert re.search(r"Too many failed logins\. Try again in \d+ s\.", answer.text)
    assert 'value="admin"' in answer.text and password not in answer.text


# --- dashboard ------------------------------------------------------------------------------------


def test_dashboard_shows_every_service_and_real_server_in_its_state_colour(web, web_app):
    html = web("viewer").get("/").text
    for vs in web_app.controller.config.virtual_services:
        assert f'id="vs-{vs.name}"' in html
        for rs in vs.real_servers:
            assert f'data-real-server="{rs.name}"' in html
    assert 'class="badge st-up" data-state="UP"' in row_of(html, "rs1")
    assert 'class="badge st-drain" data-state="DRAIN"' in row_of(html, "rs3")
    assert 'class="badge st-maint" data-state="MAINT">HALT' in row_of(html, "rs4")
    assert "passed (status 200)" in row_of(html, "rs1") or "passed" in row_of(html, "rs1")
    assert "ck-failed" in row_of(html, "rs2")  # UP 1/3 with a failed check: going down
    assert 'data-refresh="/fragments/dashboard"' in html and 'data-interval="2000"' in html


def test_viewers_see_no_buttons_operators_do(web):
    viewer = web("viewer").get("/").text
    assert "/real-servers/rs1/state" not in viewer and "Drain" not in viewer
    operator = web("operator").get("/").text
    row = row_of(operator, "rs1")
    assert 'action="/services/web/real-servers/rs1/state"' in row
    assert all(f'value="{s}"' in row for s in ("drain", "halt", "online"))
    assert 'name="csrf_token"' in row
    assert "Add virtual service" not in web("operator").get("/services").text  # operators do not edit


def test_the_dashboard_fragment_is_the_table_alone(web):
    fragment = web("viewer").get("/fragments/dashboard")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'data-real-server="rs1"' in fragment.text


def test_drain_needs_the_operator_role_and_the_csrf_token(web, web_app):
    viewer = web("viewer")
    assert viewer.form_post("/services/web/real-servers/rs1/state", {"state": "drain"}).status_code == 403
    operator = web("operator")
    no_token = operator.post("/services/web/real-servers/rs1/state", data={"state": "drain"}, follow_redirects=False)
    assert no_token.status_code == 403
    answer = operator.form_post("/services/web/real-servers/rs1/state", {"state": "drain"})
    assert answer.status_code == 303
    # HAProxy does not run here: the change front door refuses, the page says so, nothing changed
    page = operator.get(answer.headers["location"]).text
    assert "flash-error" in page and "HAProxy is not running" in page
    assert web_app.controller.config.service("web").real_servers[0].state.value == "online"
    events = web_app.auth.audit_log.list()
    assert any(e.action == "real-server.drain" and e.username == "operator" for e in events)


# --- forms ----------------------------------------------------------------------------------------


def test_an_invalid_health_check_shows_the_problems_beside_the_fields(web, web_app):
    admin = web("admin")
    page = admin.get("/services/web").text
    base = re.search(r'name="base_revision" value="(\d+)"', page)[1]
    answer = admin.form_post(
        "/services/web/health-check",
        {"base_revision": base, "type": "http", "interval": "abc", "timeout": "1s", "rise": "0", "fall": "3", "path": "/health"},
    )
    assert answer.status_code == 422
    interval, rise = field_html(answer.text, "interval"), field_html(answer.text, "rise")
    assert "field-error" in interval and 'value="abc"' in interval and "aria-invalid" in interval
    assert "field-error" in rise and "greater than or equal to 1" in rise
    assert "field-error" not in field_html(answer.text, "fall")
    assert web_app.controller.changes.store.current_id() == int(base)  # nothing applied


def test_a_form_level_problem_goes_above_the_form(web):
    admin = web("admin")
    base = re.search(r'name="base_revision" value="(\d+)"', admin.get("/services/web").text)[1]
    answer = admin.form_post("/services/web/health-check", {"base_revision": base, "type": "connect",
                                                             "interval": "1s", "timeout": "5s"})  # fmt: skip
    assert answer.status_code == 422
    assert "error-box" in answer.text and "must not be longer than interval" in answer.text


def test_a_valid_change_goes_to_the_change_manager(web, web_app):
    """Valid: the change front door plans it, and refuses here because HAProxy does not run; the form says why."""
    admin = web("admin")
    base = re.search(r'name="base_revision" value="(\d+)"', admin.get("/services/web").text)[1]
    answer = admin.form_post("/services/web/health-check", {"base_revision": base, "type": "http", "interval": "2s",
                                                             "timeout": "1s", "path": "/ready"})  # fmt: skip
    assert answer.status_code == 409
    assert "HAProxy is not running" in answer.text and 'value="/ready"' in answer.text
    events = web_app.auth.audit_log.list()
    assert any(e.action == "health-check.replace" and e.username == "admin" for e in events)


def test_a_stale_form_says_who_changed_what_meanwhile(web, web_app):
    admin = web("admin")
    base = re.search(r'name="base_revision" value="(\d+)"', admin.get("/services/web/real-servers/new").text)[1]
    store = web_app.controller.changes.store
    later = store.add(
        web_app.controller.config.model_dump_json(), "", author="alice", message="meanwhile", kind="apply", parent=None
    )
    store.mark_applied(later.id)
    answer = admin.form_post("/services/web/real-servers/new", {"base_revision": base, "name": "rs9",
                                                                 "address": "127.0.0.2", "port": "18389"})  # fmt: skip
    assert answer.status_code == 409
    assert f"changed meanwhile by alice in revision {later.id}" in answer.text
    assert 'value="rs9"' in answer.text  # the user's input is kept
    assert f'name="base_revision" value="{later.id}"' in answer.text  # a second submit is based on the new one


def test_real_server_and_rule_forms_place_model_problems(web):
    admin = web("admin")
    base = re.search(r'name="base_revision" value="(\d+)"', admin.get("/services/web").text)[1]
    answer = admin.form_post(
        "/services/web/real-servers/new",
        {"base_revision": base, "name": "rs9", "address": "127.0.0.2", "port": "x", "weight": "999"},
    )
    assert answer.status_code == 422
    assert "field-error" in field_html(answer.text, "port")
    assert "less than or equal to 256" in field_html(answer.text, "weight")
    answer = admin.form_post(
        "/services/web/rules/new",
        {"base_revision": base, "name": "r1", "action": "use_service", "match.path_begins": "/x", "use_service": "nowhere"},
    )
    assert answer.status_code == 422
    assert "field-error" in field_html(answer.text, "use_service")


def test_a_new_virtual_service_with_a_bad_listener(web):
    admin = web("admin")
    base = re.search(r'name="base_revision" value="(\d+)"', admin.get("/services/new").text)[1]
    answer = admin.form_post(
        "/services/new",
        {"base_revision": base, "name": "new1", "mode": "layer7-http", "listen": "127.0.0.1:99999", "persistence.type": "none"},
    )
    assert answer.status_code == 422
    assert "field-error" in field_html(answer.text, "listen")


def test_viewers_cannot_submit_forms(web):
    viewer = web("viewer")
    assert viewer.form_post("/services/web/health-check", {"type": "none", "base_revision": "1"}).status_code == 403
    assert "Save and apply" not in viewer.get("/services/web").text


# --- revisions, log, graphs, certificates ---------------------------------------------------------


def test_revisions_and_a_stale_rollback(web, web_app):
    store = web_app.controller.changes.store
    first = store.current_id()
    data = web_app.controller.config.model_dump(mode="json")
    data["virtual_services"][0]["real_servers"][0]["weight"] = 7
    second = store.add(json.dumps(data), "", author="alice", message="weight 7", kind="apply", parent=first)
    store.mark_applied(second.id)
    admin = web("admin")
    listing = admin.get("/revisions").text
    assert "weight 7" in listing and "alice" in listing
    detail = admin.get(f"/revisions/{second.id}").text
    assert "virtual_services[web].real_servers[rs1].weight" in detail
    old = admin.get(f"/revisions/{first}").text
    assert "Roll back to revision" in old
    answer = admin.form_post(f"/revisions/{first}/rollback", {"base_revision": str(first)})
    assert answer.status_code == 303
    assert "changed meanwhile by alice" in admin.get(answer.headers["location"]).text
    assert store.current_id() == second.id


def test_log_page_shows_the_end_of_the_haproxy_log(web, web_app):
    log = web_app.controller.paths.haproxy_log
    log.write_text("".join(f"line {i} <b>\n" for i in range(300)) + "[ALERT]    (1) : something broke\n")
    admin = web("viewer")
    page = admin.get("/log?lines=50").text
    assert "line 299 &lt;b&gt;" in page and "line 249 " not in page and "log-alert" in page
    assert "line 10 " in admin.get("/fragments/log?lines=5&q=line 10 ").text


def test_graphs_page_draws_the_stored_samples(web, web_app):
    store = MetricsStore(metrics_path(web_app.controller.paths.root))
    now = time.time()
    store.add([Sample(now - 600 + 10 * i, "web", float(i), i % 5, 0.0) for i in range(60)])
    html = web("viewer").get("/graphs").text
    section = html[html.index('data-service="web"') : html.index('data-service="only"')]
    assert section.count("<svg") == 3 and re.search(r'class="line-req" d="M[\d.]+,[\d.]+ L', section)
    assert "no samples yet" in html[html.index('data-service="only"') :]


def test_certificates_page_lists_expiry(web, web_app):
    certs = web_app.controller.paths.certs_dir
    certs.mkdir(parents=True)
    issued = pki.self_signed("pacs.example", ["pacs.example", "127.0.0.1"], days=20)
    (certs / "vip.pem").write_bytes(issued.bundle())
    html = web("viewer").get("/certificates").text
    assert "vip.pem" in html and "pacs.example" in html and "self-signed" in html
    assert "st-drain" in html and re.search(r"in (19|20) days", html)  # amber: within 30 days


def test_every_nav_page_answers(web):
    admin = web("admin")
    for page in ("/", "/services", "/services/web", "/services/web/real-servers/rs1/edit", "/services/web/rules/new",
                 "/revisions", "/revisions/1", "/certificates", "/graphs", "/log", "/services/new"):  # fmt: skip
        answer = admin.get(page)
        assert answer.status_code == 200, (page, answer.text[:300])
        assert 'class="topbar"' in answer.text


# --- hardening: CSP, login from another site -------------------------------------------------------


def test_pages_carry_a_strict_csp_and_need_nothing_it_forbids(web):
    """The CSP forbids inline script, inline style and event attributes: the pages use none, so they work under it."""
    from pacslb.api.app import CONTENT_SECURITY_POLICY

    admin = web("admin")
    for page in ("/login", "/", "/services", "/services/web", "/services/web/real-servers/rs1/edit", "/revisions",
                 "/revisions/1", "/certificates", "/graphs", "/log", "/fragments/dashboard", "/static/app.js"):  # fmt: skip
        answer = admin.get(page)
        assert answer.status_code == 200, page
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, page
        if page.startswith("/static"):
            continue
        html = answer.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script in {page}"
        assert not re.search(r"<style\b|\sstyle=", html), f"inline style in {page}"
        assert not re.search(r"\son[a-z]+=", html), f"event handler attribute in {page}"
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), f"something loaded from elsewhere in {page}"


def test_a_login_form_posted_from_another_site_is_refused(web, password):
    client = web(None)
    evil = client.post("/login", data={"username": "admin", "password": password}, follow_redirects=False,
                       headers={"Origin": "https://evil.example"})  # fmt: skip
    assert evil.status_code == 403 and "another site" in evil.text and "pacslb_session" not in evil.headers.get("set-cookie", "")
    same = client.post("/login", data={"username": "admin", "password": password}, follow_redirects=False,
                       headers={"Origin": "https://testserver"})  # fmt: skip
    assert same.status_code == 303 and "pacslb_session" in same.headers["set-cookie"]
    # the login page asks the browser to name it in Origin (under no-referrer, Chromium sends "Origin: null")
    fresh = web(None)
    assert fresh.get("/login").headers["referrer-policy"] == "same-origin"
    assert fresh.get("/", follow_redirects=False).headers["referrer-policy"] == "no-referrer"
