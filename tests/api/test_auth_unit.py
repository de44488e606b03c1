"""Unit tests of authentication (no appliance): the user store, API keys, sessions and their expiry, the login
throttle, CSRF and roles on a tiny in-process app, the audit log and the initial admin."""

from __future__ import annotations

import os
import stat

import httpx
import pytest
from fastapi import Depends, FastAPI

from pacslb.api import state
from pacslb.api.auth import (
    AuthService,
    LoginThrottle,
    LoginThrottled,
    Principal,
    SessionStore,
    current_principal,
    require_role,
    set_session_cookie,
)
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserError, UserStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users(tmp_path) -> UserStore:
    return UserStore(tmp_path / "users.sqlite")


@pytest.fixture
def service(tmp_path, users) -> tuple[AuthService, Clock]:
    clock = Clock()
    users.clock = clock
    users.add("admin", "admin-password", "admin")
    users.add("op", "operator-password", "operator")
    users.add("view", "viewer-password", "viewer")
    clock.now += 1
    return AuthService(users, AuditLog(tmp_path / "audit.sqlite", clock=clock), session_timeout=60, clock=clock), clock


def test_user_store_hashes_passwords_and_keeps_the_last_admin(tmp_path, users):
    users.add("admin", "a-long-password", "admin")
    assert users.verify("admin", "a-long-password").role == "admin"
    assert users.verify("admin", "wrong-password") is None
    assert users.verify("nobody", "a-long-password") is None
    raw = (tmp_path / "users.sqlite").read_bytes()
    assert b"a-long-password" not in raw and b"$argon2id$" in raw
    assert stat.S_IMODE(os.stat(tmp_path / "users.sqlite").st_mode) == 0o600
    with pytest.raises(UserError, match="exists already"):
        users.add("admin", "another-password", "viewer")
    with pytest.raises(UserError, match="too short"):
        users.add("bob", "short", "viewer")
    with pytest.raises(UserError, match="not a role"):
        users.add("bob", "long-enough-pw", "root")
    with pytest.raises(UserError, match="not a valid user name"):
        users.add("bob smith", "long-enough-pw", "viewer")
    with pytest.raises(UserError, match="last admin"):
        users.delete("admin")
    with pytest.raises(UserError, match="last admin"):
        users.set_role("admin", "viewer")
    users.add("second", "long-enough-pw", "admin")
    users.delete("admin")
    assert [u.username for u in users.list()] == ["second"]


def test_api_keys_are_shown_once_and_stored_hashed(tmp_path, users):
    users.add("script", "long-enough-pw", "operator")
    key, token = users.add_api_key("script", "ci")
    assert token.startswith(f"pacslb_{key.id}_")
    assert token.encode() not in (tmp_path / "users.sqlite").read_bytes()
    user, found = users.verify_api_key(token)
    assert user.username == "script" and found.id == key.id
    assert users.verify_api_key(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert users.verify_api_key("Bearer nonsense") is None
    users.delete("script")  # its keys go with it
    assert users.verify_api_key(token) is None


async def test_login_throttle_backs_off_per_user_and_address(service):
    """Changed on purpose (issue 22, item 6): the back-off is keyed on (user name, address); the same name from
    another address, and another name from the same address, still log in (they used to be throttled too)."""
    auth, clock = service
    for i in range(5):
        assert await auth.login("view", f"wrong-{i}", "10.0.0.1") is None
    with pytest.raises(LoginThrottled) as throttled:
        await auth.login("view", "viewer-password", "10.0.0.1")
    assert throttled.value.retry_after == 5
    assert await auth.login("view", "viewer-password", "10.0.0.2") is not None  # the right password elsewhere
    assert await auth.login("op", "operator-password", "10.0.0.1") is not None  # another name from there
    clock.now += 5.1
    assert await auth.login("view", "wrong-again", "10.0.0.1") is None  # 6th failure from there: 10 s now
    with pytest.raises(LoginThrottled) as longer:
        await auth.login("view", "viewer-password", "10.0.0.1")
    assert longer.value.retry_after == 10
    clock.now += 10.1
    assert await auth.login("view", "viewer-password", "10.0.0.1") is not None
    auth.flush_throttled()
    outcomes = [e.outcome for e in auth.audit_log.list(username="view")]
    assert outcomes.count("failed") == 6 and outcomes.count("throttled") == 1 and outcomes[0] == "ok"


def test_throttle_is_bounded():
    clock = Clock()
    throttle = LoginThrottle(clock)
    refused = 0
    for _ in range(100):
        try:
            throttle.admit("x", "y")
        except LoginThrottled:
            refused += 1
            clock.now += throttle.maximum + 1  # wait out each back-off: it grows to the maximum, no further
    with pytest.raises(LoginThrottled) as longest:
        throttle.admit("x", "y")  # let through after the wait, it sets the longest back-off at once
        throttle.admit("x", "y")
    assert refused > 0 and longest.value.retry_after == throttle.maximum


def test_sessions_expire_when_idle():
    clock = Clock()
    sessions = SessionStore(timeout=30, clock=clock)

    class U:
        username, role = "a", "viewer"

    session = sessions.create(U(), "127.0.0.1")
    clock.now += 29
    assert sessions.get(session.id) is session  # touched: idle time starts again
    clock.now += 29
    assert sessions.get(session.id) is session
    clock.now += 31
    assert sessions.get(session.id) is None
    assert sessions.list() == []


async def test_a_changed_password_ends_older_sessions(service):
    auth, clock = service
    session = await auth.login("op", "operator-password", "127.0.0.1")
    assert auth.session_principal(session.id).role == "operator"
    clock.now += 1
    auth.users.set_password("op", "new-operator-password")
    assert auth.session_principal(session.id) is None


def tiny_app(auth: AuthService) -> FastAPI:
    app = FastAPI()
    app.state.auth = auth

    @app.post("/login")
    async def login(username: str, password: str):
        from fastapi.responses import JSONResponse

        session = await auth.login(username, password, "127.0.0.1")
        response = JSONResponse({"csrf_token": session.csrf_token})
        set_session_cookie(response, session)
        return response

    @app.get("/read")
    async def read(p: Principal = Depends(require_role("viewer"))):
        return {"user": p.username, "via": p.via}

    @app.post("/drain")
    async def drain(p: Principal = Depends(require_role("operator"))):
        return {"user": p.username}

    @app.post("/form")
    async def form(p: Principal = Depends(current_principal)):
        return {"ok": True}

    return app


async def test_csrf_and_roles_in_process(service):
    auth, _ = service
    transport = httpx.ASGITransport(app=tiny_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.get("/read")).status_code == 401
        token = (await client.post("/login", params={"username": "view", "password": "viewer-password"})).json()["csrf_token"]
        assert (await client.get("/read")).json() == {"user": "view", "via": "session"}
        denied = await client.post("/drain", headers={"X-CSRF-Token": token})
        assert denied.status_code == 403 and "operator or admin" in denied.json()["detail"]
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        token = (await client.post("/login", params={"username": "op", "password": "operator-password"})).json()["csrf_token"]
        assert (await client.post("/drain")).status_code == 403  # no CSRF token
        assert (await client.post("/drain", headers={"X-CSRF-Token": "forged"})).status_code == 403
        assert (await client.post("/drain", headers={"X-CSRF-Token": token})).status_code == 200
        assert (await client.post("/form", data={"csrf_token": token})).status_code == 200
        assert (await client.post("/form", data={"csrf_token": "forged"})).status_code == 403
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        _, secret = auth.users.add_api_key("op", "script")
        ok = await client.post("/drain", headers={"Authorization": f"Bearer {secret}"})  # no CSRF with a key
        assert ok.status_code == 200
        assert (await client.get("/read", headers={"Authorization": "Basic abc"})).status_code == 401


def test_first_admin_gets_a_one_time_password_file(tmp_path, users):
    password = state.ensure_first_admin(users, tmp_path)
    assert password and users.verify("admin", password) is not None
    path = state.initial_password_file(tmp_path)
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state.ensure_first_admin(users, tmp_path) is None  # only on a fresh state directory
    state.forget_initial_password(tmp_path, "admin")
    assert not path.exists()


def test_require_role_names_known_roles_only():
    with pytest.raises(ValueError):
        require_role("root")
