"""Login abuse and the smaller hardening of the management app, in process (no appliance): the atomic throttle
keyed on (user, address), per-address limit and per-user slow-down, unblock, body limits before parsing,
aggregated audit rows and the audit log's retention, CSP, the OpenAPI document behind credentials, the
sessions' absolute lifetime, password changes and policy, API keys' expiry and limits, the login's Origin check.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from pacslb.api.app import CONTENT_SECURITY_POLICY, create_management_app
from pacslb.api.auth import AuthService, SessionStore
from pacslb.api.limits import LOGIN_LIMIT, RESTORE_LIMIT, WRITE_LIMIT
from pacslb.api.throttle import ADDRESS_FREE_FAILURES, ANY_USER, FREE_FAILURES, USER_SLOW_AFTER, LoginThrottled
from pacslb.paths import StatePaths
from pacslb.request_limits import LINGER_BYTES
from pacslb.store.audit import AuditLog
from pacslb.store.users import DAY, DEFAULT_API_KEY_DAYS, UserError, UserStore

PASSWORDS = {"admin": "admin-password", "op": "operator-password", "view": "viewer-password"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class StandIn:
    """What create_management_app needs of the appliance to build its routes (none of these tests changes the configuration)."""

    def __init__(self, root: Path) -> None:
        self.paths = StatePaths(root)
        self.base_dir = root
        self.config = None
        self.changes = None

    def healthy(self) -> tuple[bool, str]:
        return True, "serving"


@pytest.fixture
def auth(tmp_path) -> AuthService:
    users = UserStore(tmp_path / "users.sqlite")
    for name, password in PASSWORDS.items():
        users.add(name, password, {"admin": "admin", "op": "operator", "view": "viewer"}[name])
    return AuthService(users, AuditLog(tmp_path / "audit.sqlite"))


@pytest.fixture
def app(tmp_path, auth):
    return create_management_app(StandIn(tmp_path), auth)


def client_of(app, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


async def login(client: httpx.AsyncClient, username: str, password: str | None = None, **kwargs) -> httpx.Response:
    return await client.post("/api/v1/login", json={"username": username, "password": password or PASSWORDS[username]}, **kwargs)


async def logged_in(app, username: str, address: str = "127.0.0.1") -> httpx.AsyncClient:
    client = client_of(app, address)
    answer = await login(client, username)
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


# --- item 6: login abuse ----------------------------------------------------------------------------------


async def test_concurrent_wrong_passwords_are_counted_before_they_are_verified(auth):
    """100 wrong passwords at once: only the free ones reach argon2; the others are refused before it (it used to
    verify all 100 before the first 429)."""
    verified = []
    verify = auth.users.verify
    gate = threading.Event()

    def counting_verify(username: str, password: str):
        verified.append(username)
        gate.wait(10)  # every verification in flight at once: the check-then-count race is wide open
        return verify(username, password)

    auth.users.verify = counting_verify

    async def attempt(i: int):
        try:
            return await auth.login("admin", f"wrong-{i}", "10.9.9.9")
        except LoginThrottled:
            return "throttled"

    tasks = [asyncio.create_task(attempt(i)) for i in range(100)]
    await asyncio.sleep(0.5)
    gate.set()
    answers = await asyncio.gather(*tasks)
    assert len(verified) == FREE_FAILURES, f"{len(verified)} passwords were verified"
    assert answers.count("throttled") == 100 - FREE_FAILURES and answers.count(None) == FREE_FAILURES


async def test_a_guesser_elsewhere_never_locks_the_real_user_out(auth):
    """Six wrong passwords from one address used to lock `admin` out for everyone; one attempt every 15 minutes kept
    it so. Now the guesser's address backs off, and the right password from another address logs in."""
    clock = Clock()
    auth.throttle.clock = clock
    for round_ in range(6):  # one attempt each time the back-off ends, for hours
        for i in range(FREE_FAILURES + 1):
            try:
                await auth.login("admin", f"guess-{round_}-{i}", "203.0.113.7")
            except LoginThrottled:
                pass
        assert await auth.login("admin", PASSWORDS["admin"], "192.0.2.10") is not None, "the real admin logs in"
        with pytest.raises(LoginThrottled):  # while the guesser's own address waits, whatever it sends
            await auth.login("admin", PASSWORDS["admin"], "203.0.113.7")
        clock.now += 15 * 60


async def test_one_address_trying_many_names_backs_off(auth):
    for i in range(ADDRESS_FREE_FAILURES):
        assert await auth.login(f"user{i}", "some-password", "198.51.100.1") is None
    with pytest.raises(LoginThrottled) as refused:
        await auth.login("view", PASSWORDS["view"], "198.51.100.1")  # even a right password, from there
    assert refused.value.by_address and "address 198.51.100.1" in str(refused.value)
    assert await auth.login("view", PASSWORDS["view"], "198.51.100.2") is not None


async def test_an_address_forgets_its_failures_an_hour_after_the_last_one(auth):
    """A shared address (a NAT) where people log in all day: its old typos are forgotten all the same."""
    clock = Clock()
    auth.throttle.clock = clock
    for i in range(ADDRESS_FREE_FAILURES - 1):
        assert await auth.login(f"typo{i}", "some-password", "10.4.0.1") is None
    for _ in range(6):  # a right password every 15 minutes from there
        clock.now += 15 * 60
        assert await auth.login("view", PASSWORDS["view"], "10.4.0.1") is not None
    for i in range(ADDRESS_FREE_FAILURES - 1):  # 90 minutes after the last failure: free again
        assert await auth.login(f"other{i}", "some-password", "10.4.0.1") is None


async def test_a_name_guessed_from_many_addresses_is_slowed_not_locked(auth):
    throttle = auth.throttle
    throttle.user_delay_base = throttle.user_delay_max = 0.05  # the test waits a little only
    for i in range(USER_SLOW_AFTER):
        assert await auth.login("admin", "wrong-password", f"10.1.0.{i}") is None
    admission = throttle.admit("admin", "10.2.0.1")
    assert admission.delay == pytest.approx(0.05)
    throttle.succeeded(admission)
    assert await auth.login("admin", PASSWORDS["admin"], "10.2.0.2") is not None


async def test_admin_unblocks_a_user_over_the_api_and_from_the_cli(tmp_path, app, auth):
    for i in range(FREE_FAILURES):
        await auth.login("view", f"wrong-{i}", "127.0.0.1")
    assert (await login(client_of(app), "view")).status_code == 429
    admin = await logged_in(app, "admin", "10.0.0.5")
    blocks = (await admin.get("/api/v1/login-blocks")).json()["blocked"]
    assert {"username": "view", "address": "127.0.0.1"}.items() <= blocks[0].items()
    viewer = await logged_in(app, "view", "10.0.0.6")
    assert (await viewer.post("/api/v1/users/view/unblock")).status_code == 403
    answer = await admin.post("/api/v1/users/view/unblock")
    assert answer.status_code == 200 and answer.json()["addresses"] == 1
    assert (await login(client_of(app), "view")).status_code == 200
    assert any(e.action == "user.unblock" and e.target == "view" for e in auth.audit_log.list())

    # `pacslb user unblock` writes to the users store; the controller reads it at the user's next login
    for i in range(FREE_FAILURES):
        await auth.login("view", f"wrong-{i}", "127.0.0.1")
    assert (await login(client_of(app), "view")).status_code == 429
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pacslb", "user", "unblock", "view", "--state-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (await login(client_of(app), "view")).status_code == 200


async def test_throttled_logins_are_one_audit_row_per_user_and_address(auth):
    for i in range(FREE_FAILURES):
        await auth.login("view", f"wrong-{i}", "10.3.0.1")
    for _ in range(500):
        with pytest.raises(LoginThrottled):
            await auth.login("view", PASSWORDS["view"], "10.3.0.1")
    auth.flush_throttled()
    rows = auth.audit_log.list(outcome="throttled")
    assert len(rows) == 1, [r.as_dict() for r in rows]
    assert (rows[0].username, rows[0].client_ip, rows[0].detail["count"]) == ("view", "10.3.0.1", 500)
    # refused for the address: one row for the address, with the names tried
    for i in range(ADDRESS_FREE_FAILURES):
        await auth.login(f"n{i}", "some-password", "10.3.0.2")
    for i in range(300):
        with pytest.raises(LoginThrottled):
            await auth.login(f"other{i}", "some-password", "10.3.0.2")
    auth.flush_throttled()
    by_address = [r for r in auth.audit_log.list(outcome="throttled") if r.client_ip == "10.3.0.2"]
    assert len(by_address) == 1 and by_address[0].username == ANY_USER and by_address[0].detail["count"] == 300
    assert len(by_address[0].detail["users"]) == 20


def test_audit_log_keeps_a_bounded_history(tmp_path):
    clock = Clock()
    audit = AuditLog(tmp_path / "audit.sqlite", clock=clock, retention_days=30, max_rows=50)
    for _ in range(10):
        audit.record("old", "login")
    clock.now += 31 * DAY
    for _ in range(70):
        audit.record("new", "login")
    assert audit.prune() >= 0
    events = audit.list(limit=1000)
    assert {e.username for e in events} == {"new"} and len(events) == 50


async def test_bodies_are_limited_before_they_are_read(app, auth):
    async with client_of(app) as client:
        huge = await client.post("/api/v1/login", content=b"x" * (LOGIN_LIMIT + 1), headers={"content-type": "application/json"})
        assert huge.status_code == 413 and "64 KiB" in huge.json()["message"]
        assert huge.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

        pulled = 0

        async def endless():  # 256 MB without a Content-Length: cut at the limit, drained a while, never read whole
            nonlocal pulled
            for _ in range(4096):
                pulled += 65536
                yield b"x" * 65536

        cut = await client.post("/api/v1/login", content=endless(), headers={"content-type": "application/json"})
        assert cut.status_code == 413 and pulled <= LOGIN_LIMIT + LINGER_BYTES + 2 * 65536
        # no credentials at all: nothing to send but a login
        anonymous = await client.put("/api/v1/config", content=b"{" + b" " * (LOGIN_LIMIT + 10) + b"}",
                                     headers={"content-type": "application/json"})  # fmt: skip
        assert anonymous.status_code == 413
        assert (await login(client, "admin")).status_code == 200  # a normal login still works
    admin = await logged_in(app, "admin")
    big = {"username": "x" * (1024 * 1024), "password": "y", "role": "viewer"}
    assert (await admin.post("/api/v1/users", json=big)).status_code == 422  # 1 MiB, authenticated: read and judged
    too_big = await admin.post("/api/v1/users", content=b"x" * (WRITE_LIMIT + 1), headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and "8192 KiB" in too_big.json()["message"]
    # a backup upload has a limit of its own, over WRITE_LIMIT: 9 MiB reaches the route, which judges it
    backup = await admin.post("/api/v1/restore", content=b"\x1f\x8b" + b"x" * (9 * 1024 * 1024),
                              headers={"content-type": "application/octet-stream"})  # fmt: skip
    assert backup.status_code in (400, 422) and "KiB" not in backup.json()["message"], backup.text
    too_big = await admin.post(
        "/api/v1/restore", content=b"x" * (RESTORE_LIMIT + 1), headers={"content-type": "application/octet-stream"}
    )
    assert too_big.status_code == 413 and "65536 KiB" in too_big.json()["message"]


# --- item 8: smaller items -----------------------------------------------------------------------------------


async def test_openapi_document_and_docs_need_credentials_and_answers_carry_a_csp(app):
    anonymous = client_of(app)
    assert (await anonymous.get("/api/openapi.json")).status_code == 401
    assert (await anonymous.get("/api/docs")).status_code == 401
    health = await anonymous.get("/api/v1/health")
    assert health.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    viewer = await logged_in(app, "view")
    document = await viewer.get("/api/openapi.json")
    assert document.status_code == 200 and "/api/v1/login" in document.json()["paths"]
    docs = await viewer.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp  # no inline script


def test_sessions_end_at_their_absolute_lifetime_however_busy():
    clock = Clock()
    sessions = SessionStore(timeout=60, clock=clock, lifetime=3600)

    class U:
        username, role = "a", "viewer"

    session = sessions.create(U(), "127.0.0.1")
    for _ in range(359):  # the dashboard's polling: a request every 10 s keeps it from going idle
        clock.now += 10
        assert sessions.get(session.id) is session
    clock.now += 11
    assert sessions.get(session.id) is None, "an hour after the login, the session ends"


async def test_a_self_password_change_needs_the_current_password_even_for_an_admin(app, auth):
    admin = await logged_in(app, "admin")
    path = "/api/v1/users/admin/password"
    missing = await admin.put(path, json={"password": "a-new-admin-secret"})
    assert missing.status_code == 403 and "current_password" in missing.json()["message"]
    wrong = await admin.put(path, json={"password": "a-new-admin-secret", "current_password": "not-it-at-all"})
    assert wrong.status_code == 403
    assert auth.users.verify("admin", PASSWORDS["admin"]) is not None
    ok = await admin.put(path, json={"password": "a-new-admin-secret", "current_password": PASSWORDS["admin"]})
    assert ok.status_code == 200, ok.text
    assert auth.users.verify("admin", "a-new-admin-secret") is not None
    admin.headers["X-CSRF-Token"] = ok.json()["csrf_token"]  # the change renewed this session
    # an admin still sets another user's password without theirs
    assert (await admin.put("/api/v1/users/view/password", json={"password": "another-viewer-secret"})).status_code == 200


async def test_password_policy_refuses_common_passwords_and_the_user_name(app, auth):
    for password, why in (("Password123!", "too common"), ("qwertyuiop", "too common"), ("Welcome2024", "too common"),
                          ("carol12345", "user name"), ("Carol", "too short"), ("zzzzzzzzzzzz", "repeats"),
                          ("1234509876", "no letters")):  # fmt: skip
        with pytest.raises(UserError, match=why):
            auth.users.add("carol", password, "viewer")
    admin = await logged_in(app, "admin")
    refused = await admin.post("/api/v1/users", json={"username": "carol", "password": "letmein123", "role": "viewer"})
    assert refused.status_code == 422 and "too common" in refused.json()["message"]
    assert (await admin.post("/api/v1/users", json={"username": "carol", "password": "violet tram ladder",
                                                    "role": "viewer"})).status_code == 200  # fmt: skip


async def test_api_keys_expire_cannot_make_keys_and_die_with_the_password(tmp_path, app, auth):
    clock = Clock()
    auth.users.clock = clock
    key, token = auth.users.add_api_key("op", "monitoring")
    assert key.expires_at == clock.now + DEFAULT_API_KEY_DAYS * DAY
    clock.now += DEFAULT_API_KEY_DAYS * DAY - 1
    assert auth.users.verify_api_key(token) is not None
    clock.now += 2
    assert auth.users.verify_api_key(token) is None, "expired"
    short, short_token = auth.users.add_api_key("op", "one day", days=1)
    with pytest.raises(UserError, match="expires_in_days"):
        auth.users.add_api_key("op", "forever", days=100_000)

    bearer = client_of(app)
    bearer.headers["Authorization"] = f"Bearer {short_token}"
    assert (await bearer.get("/api/v1/me")).json()["via"] == "api-key"
    minted = await bearer.post("/api/v1/users/op/api-keys", json={"name": "successor"})
    assert minted.status_code == 403 and "cannot make API keys" in minted.json()["message"]
    session = await logged_in(app, "op")
    made = await session.post("/api/v1/users/op/api-keys", json={"name": "ci", "expires_in_days": 7})
    assert made.status_code == 200 and made.json()["api_key"]["expires_at"] > 0
    assert (await session.post("/api/v1/users/op/api-keys", json={"expires_in_days": 0})).status_code == 422

    # a password change deletes the user's keys
    changed = await session.put("/api/v1/users/op/password",
                                json={"password": "a-fresh-operator-secret", "current_password": PASSWORDS["op"]})  # fmt: skip
    assert changed.status_code == 200 and changed.json()["api_keys_deleted"] == 3
    assert (await bearer.get("/api/v1/me")).status_code == 401
    assert auth.users.api_keys("op") == []


async def test_store_made_before_key_expiry_is_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the schema of the previous release, with one key
        db.executescript("""
            CREATE TABLE users (username TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
                                created_at REAL NOT NULL, changed_at REAL NOT NULL);
            CREATE TABLE api_keys (id TEXT PRIMARY KEY, username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
                                   name TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at REAL NOT NULL, last_used REAL);
            INSERT INTO users VALUES ('u', 'viewer', 'x', 1, 1);
            INSERT INTO api_keys VALUES ('k1', 'u', 'old', 'h', 1, NULL);
            PRAGMA user_version = 1;
        """)
    clock = Clock()
    users = UserStore(path, clock=clock)
    (key,) = users.api_keys()
    assert key.expires_at == clock.now + DEFAULT_API_KEY_DAYS * DAY


async def test_logins_from_another_site_are_refused(app):
    async with client_of(app) as client:
        evil = await login(client, "admin", headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and "another site" in evil.json()["message"]
        assert (await login(client, "admin", headers={"Origin": "null"})).status_code == 403
        null_cross = await login(client, "admin", headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
        assert null_cross.status_code == 403
        # a browser under Referrer-Policy no-referrer says "Origin: null"; its fetch metadata vouches for it
        assert (await login(client, "admin", headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})).status_code == 200
        assert (await login(client, "admin", headers={"Origin": "http://testserver"})).status_code == 403
        assert (await login(client, "admin", headers={"Sec-Fetch-Site": "cross-site"})).status_code == 403
        assert (await login(client, "admin", headers={"Origin": "https://testserver"})).status_code == 200
        assert (await login(client, "admin", headers={"Sec-Fetch-Site": "same-origin"})).status_code == 200
        assert (await login(client, "admin")).status_code == 200  # scripts send neither


async def test_the_controller_log_does_not_name_the_user_of_a_failed_login(caplog, tmp_path):
    """Every role reads the controller log; a mistyped password often lands in the user name field."""
    import logging

    from pacslb.api.auth import AuthService
    from pacslb.store.audit import AuditLog
    from pacslb.store.users import UserStore

    users = UserStore(tmp_path / "users.sqlite")
    users.add("alice", "a long enough pass phrase", "viewer")
    auth = AuthService(users, AuditLog(tmp_path / "audit.sqlite"))
    with caplog.at_level(logging.INFO, logger="pacslb.api"):
        assert await auth.login("my-Secret-passw0rd", "wrong", "127.0.0.9") is None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed login from 127.0.0.9" in text and "my-Secret-passw0rd" not in text
    (row,) = [r for r in auth.audit_log.list() if r.action == "login"]
    assert row.username == "my-Secret-passw0rd"  # the audit log, admins only, keeps it
