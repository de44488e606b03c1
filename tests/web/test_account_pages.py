"""Account, users and audit pages and the forced change of a one-time password, in process (web/conftest.py):
the API and the WebUI over the same real user store, audit log and sessions.

  - a store made before forced changes is migrated: its users keep working, none is forced;
  - the first admin and users an admin adds or resets get a one-time password: until they change it, the API
    answers 403 to everything but change-password, me and logout, and every WebUI page leads to /account;
  - /account: the password policy's problem beside its field; own API keys made (shown once) and deleted;
  - /users (admin): add (one-time password shown once), role, reset, unblock, delete; the last admin stays;
  - /audit (admin): filters by user, object and time, a bounded page, older pages;
  - operator and viewer: no admin page in the nav, 403 by URL, the API refuses the same writes.
"""

from __future__ import annotations

import re
import sqlite3
import time

import pytest

from pacslb.api.state import ensure_first_admin, initial_password_file
from pacslb.store.users import UserStore
from pacslb.web.audit import MAX_PAGE_SIZE, parse_time, time_filters

NEW_PASSWORD = "four random garden words"


def api_of(client):
    client.headers["X-CSRF-Token"] = client.csrf
    return client


def one_time_password(html: str) -> str:
    found = re.search(r'<code class="secret" id="secret-value">([^<]+)</code>', html)
    assert found, "no one-time secret on the page"
    return found[1]


def login(web, username: str, password: str):
    client = web(None)
    answer = client.post("/login", data={"username": username, "password": password}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def csrf_of_page(client, url: str = "/account") -> str:
    client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text)[1]
    return client.csrf


# --- the store ---------------------------------------------------------------------------------------------


def test_a_store_made_before_forced_changes_is_migrated_without_forcing_anyone(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # schema 2, the release before
        db.executescript("""
            CREATE TABLE users (username TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
                                created_at REAL NOT NULL, changed_at REAL NOT NULL);
            CREATE TABLE api_keys (id TEXT PRIMARY KEY, username TEXT NOT NULL, name TEXT NOT NULL, secret_hash TEXT NOT NULL,
                                   created_at REAL NOT NULL, last_used REAL, expires_at REAL);
            INSERT INTO users VALUES ('old', 'admin', 'x', 1, 1);
            PRAGMA user_version = 2;
        """)
    users = UserStore(path)
    assert [(u.username, u.must_change_password) for u in users.list()] == [("old", False)]
    users.add("fresh", "a long fresh password", "viewer", must_change_password=True)
    assert users.get("fresh").must_change_password and not users.get("old").must_change_password
    users.set_password("fresh", "another long password")  # the user's own change clears it
    assert not users.get("fresh").must_change_password
    assert UserStore(path).get("old") is not None  # opening it again changes nothing


def test_the_first_admin_password_is_one_time(tmp_path):
    users = UserStore(tmp_path / "users.sqlite")
    password = ensure_first_admin(users, tmp_path)
    assert initial_password_file(tmp_path).read_text().strip() == password
    assert users.get("admin").must_change_password


# --- the forced change: API and WebUI ----------------------------------------------------------------------


def test_a_one_time_password_allows_nothing_but_changing_it(web, web_app):
    web_app.auth.users.add("night", "a one-time pass 1", "operator", must_change_password=True)
    client = web(None)
    answer = client.post("/api/v1/login", json={"username": "night", "password": "a one-time pass 1"})
    assert answer.status_code == 200 and answer.json()["must_change_password"] is True
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    assert client.get("/api/v1/me").json()["must_change_password"] is True
    for method, url in (("GET", "/api/v1/status"), ("GET", "/api/v1/api-keys"), ("POST", "/api/v1/users/night/api-keys"),
                        ("PUT", "/api/v1/users/operator/password"), ("GET", "/metrics")):  # fmt: skip
        refused = client.request(method, url, json={})
        assert refused.status_code == 403 and "one-time password" in refused.json()["detail"], (url, refused.text)
    # the WebUI: every page leads to /account, with a message, and no nav bar
    page = client.get("/services", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/account"
    account = client.get("/account")
    assert "one-time password" in account.text and 'href="/services"' not in account.text
    assert 'id="key-form"' not in account.text
    changed = client.put("/api/v1/users/night/password", json={"password": NEW_PASSWORD, "current_password": "a one-time pass 1"})
    assert changed.status_code == 200, changed.text
    client.headers["X-CSRF-Token"] = changed.json()["csrf_token"]
    assert client.get("/api/v1/status").status_code == 200
    assert client.get("/api/v1/me").json()["must_change_password"] is False


def test_the_account_page_changes_the_password_with_problems_beside_fields(web, web_app, password):
    web_app.auth.users.add("night", "a one-time pass 1", "viewer", must_change_password=True)
    client = login(web, "night", "a one-time pass 1")
    assert client.get("/", follow_redirects=False).headers["location"] == "/account"
    csrf_of_page(client)
    cases = (({"current_password": "a one-time pass 1", "password": "password123", "password_again": "password123"},
              "password", "too common"),
             ({"current_password": "a one-time pass 1", "password": NEW_PASSWORD, "password_again": "other words here"},
              "password_again", "differ"),
             ({"current_password": "not it at all", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
              "current_password", "wrong"))  # fmt: skip
    for data, field, message in cases:
        answer = client.form_post("/account/password", data)
        assert answer.status_code in (403, 422)
        placed = re.search(rf'data-field="{field}">.*?</div>\s*</div>', answer.text, re.S)[0]
        assert "field-error" in placed and message in placed, (field, placed)
    assert web_app.auth.users.get("night").must_change_password
    done = client.form_post("/account/password", {"current_password": "a one-time pass 1", "password": NEW_PASSWORD,
                                                  "password_again": NEW_PASSWORD})  # fmt: skip
    assert done.status_code == 303, done.text
    assert not web_app.auth.users.get("night").must_change_password
    page = client.get("/")  # the fresh session's cookie: every page opens again
    assert page.status_code == 200 and 'href="/services"' in page.text
    assert web_app.auth.users.verify("night", NEW_PASSWORD) is not None
    actions = [(e.action, e.outcome) for e in web_app.auth.audit_log.list(20, username="night")]
    assert ("user.password", "ok") in actions and ("user.password", "denied") in actions


def test_own_api_keys_are_made_once_and_deleted(web, web_app):
    viewer = web("viewer")
    made = viewer.form_post("/account/api-keys", {"name": "monitoring", "expires_in_days": "30"})
    assert made.status_code == 200
    token = one_time_password(made.text)
    (key,) = web_app.auth.users.api_keys("viewer")
    assert key.name == "monitoring" and web_app.auth.users.verify_api_key(token) is not None
    assert token not in viewer.get("/account").text, "shown once"
    too_long = viewer.form_post("/account/api-keys", {"name": "x", "expires_in_days": "100000"})
    assert too_long.status_code == 422 and "1 to 3650" in too_long.text
    # another user's key is not theirs to delete
    other, _ = web_app.auth.users.add_api_key("operator", "theirs")
    viewer.form_post(f"/account/api-keys/{other.id}/delete")
    assert len(web_app.auth.users.api_keys("operator")) == 1
    assert viewer.form_post(f"/account/api-keys/{key.id}/delete").status_code == 303
    assert web_app.auth.users.api_keys("viewer") == []


# --- users ---------------------------------------------------------------------------------------------------


def test_admin_adds_resets_and_deletes_users(web, web_app):
    admin = web("admin")
    page = admin.get("/users")
    assert page.status_code == 200 and 'data-user="viewer"' in page.text
    logins = web_app.auth.audit_log.last_logins(["admin", "nobody"])
    assert logins["nobody"] is None and time.time() - logins["admin"] < 120
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert today in re.search(r'<tr data-user="admin">.*?</tr>', page.text, re.S)[0].split("</td>")[2], "its last login"
    bad = admin.form_post("/users", {"username": "bad name!", "role": "viewer"})
    assert bad.status_code == 422 and "not a valid user name" in bad.text
    taken = admin.form_post("/users", {"username": "viewer", "role": "viewer"})
    assert taken.status_code == 422 and "exists already" in taken.text
    added = admin.form_post("/users", {"username": "carol", "role": "operator"})
    assert added.status_code == 200
    first = one_time_password(added.text)
    assert web_app.auth.users.get("carol").must_change_password
    assert web_app.auth.users.verify("carol", first) is not None

    assert admin.form_post("/users/carol/role", {"role": "viewer"}).status_code == 303
    assert web_app.auth.users.get("carol").role == "viewer"
    web_app.auth.users.add_api_key("carol", "script")
    reset = admin.form_post("/users/carol/password")
    second = one_time_password(reset.text)
    assert second != first and web_app.auth.users.verify("carol", second) is not None
    assert web_app.auth.users.api_keys("carol") == [] and web_app.auth.users.get("carol").must_change_password

    # the last admin can be neither demoted nor deleted (the API says the same)
    admin.form_post("/users/admin/role", {"role": "viewer"})
    assert "last admin" in admin.get("/users").text and web_app.auth.users.get("admin").role == "admin"
    admin.form_post("/users/admin/delete")
    assert web_app.auth.users.get("admin") is not None
    api = api_of(web("admin"))
    assert api.put("/api/v1/users/admin/role", json={"role": "operator"}).status_code == 422
    assert api.delete("/api/v1/users/admin").status_code == 409

    assert admin.form_post("/users/carol/delete").status_code == 303
    assert web_app.auth.users.get("carol") is None
    actions = {e.action for e in web_app.auth.audit_log.list(50, username="admin")}
    assert {"user.create", "user.role", "user.password", "user.delete"} <= actions


def test_admin_sees_login_blocks_and_lifts_them(web, web_app):
    from pacslb.api.throttle import FREE_FAILURES

    stranger = web(None)
    for _ in range(FREE_FAILURES + 1):
        stranger.post("/login", data={"username": "viewer", "password": "wrong guess"}, follow_redirects=False)
    admin = web("admin")
    row = re.search(r'<tr data-user="viewer">.*?</tr>', admin.get("/users").text, re.S)[0]
    assert "st-down" in row and "Unblock" in row
    assert admin.form_post("/users/viewer/unblock").status_code == 303
    assert web_app.auth.throttle.blocked() == []


def test_every_api_key_with_its_owner_and_delete(web, web_app):
    key, _ = web_app.auth.users.add_api_key("operator", "backup-script")
    admin = web("admin")
    row = re.search(rf'<tr data-key="{key.id}">.*?</tr>', admin.get("/users").text, re.S)[0]
    assert "operator" in row and "backup-script" in row
    assert admin.form_post(f"/users/api-keys/{key.id}/delete").status_code == 303
    assert web_app.auth.users.api_keys() == []


# --- audit -----------------------------------------------------------------------------------------------------


def test_audit_filters_and_pages(web, web_app):
    log = web_app.auth.audit_log
    for i in range(7):
        log.record("operator", "virtual-service.update", target=f"WFC_{i}43")
    log.record("viewer", "login", target="")
    admin = web("admin")
    page = admin.get("/audit", params={"user": "operator", "target": "WFC_2", "size": 25})
    rows = re.findall(r'<tr data-event="\d+">', page.text)
    assert page.status_code == 200 and len(rows) == 1 and "WFC_243" in page.text
    # a page of 3, then the older ones, same filter
    first = admin.get("/audit", params={"user": "operator", "size": 3})
    assert len(re.findall(r'<tr data-event="', first.text)) == 3
    older = re.search(r'href="(/audit\?[^"]+)" id="older"', first.text)[1].replace("&amp;", "&")
    second = admin.get(older)
    assert len(re.findall(r'<tr data-event="', second.text)) == 3 and "WFC_343" in second.text and "WFC_643" not in second.text
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert 'data-event="' in admin.get("/audit", params={"since": today, "until": today}).text
    assert 'data-event="' not in admin.get("/audit", params={"until": "2001-01-01"}).text
    wrong = admin.get("/audit", params={"since": "yesterday"})
    assert wrong.status_code == 422 and "YYYY-MM-DD HH:MM" in re.search(r'data-field="since">.*?</div>', wrong.text, re.S)[0]
    assert admin.get("/audit", params={"size": MAX_PAGE_SIZE + 1}).status_code == 422
    api = api_of(web("admin"))
    found = api.get("/api/v1/audit", params={"target": "WFC_5", "username": "operator"}).json()["events"]
    assert [e["target"] for e in found] == ["WFC_543"]


def test_time_filters_are_parsed_as_utc():
    assert parse_time("2026-01-31 14:05") == parse_time("2026-01-31T14:05") == 1769868300.0
    assert parse_time("") is None
    start, end, placed = time_filters("2026-01-31", "2026-01-31")
    assert end - start == pytest.approx(86400, abs=0.01) and not placed.any
    assert "swap" in time_filters("2026-02-01", "2026-01-31")[2].by_field["until"][0]


# --- roles -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_admins_manage_users_and_read_the_audit_log(web, web_app, role):
    client = web(role)
    home = client.get("/").text
    assert 'href="/users"' not in home and 'href="/audit"' not in home and 'href="/account"' in home
    for url in ("/users", "/audit"):
        assert client.get(url, follow_redirects=False).status_code == 403
    for url, data in (("/users", {"username": "mallory", "role": "admin"}), ("/users/viewer/role", {"role": "admin"}),
                      ("/users/admin/password", {}), ("/users/admin/delete", {}), ("/users/viewer/unblock", {})):  # fmt: skip
        assert client.form_post(url, data).status_code == 403, url
    api = api_of(client)
    assert api.post("/api/v1/users", json={"username": "mallory", "password": NEW_PASSWORD, "role": "admin"}).status_code == 403
    assert api.put("/api/v1/users/admin/password", json={"password": NEW_PASSWORD}).status_code == 403
    assert api.get("/api/v1/audit").status_code == 403
    assert web_app.auth.users.get("mallory") is None
