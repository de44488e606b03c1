"""Authentication and roles of the management API and WebUI (the interface the WebUI builds on).

Two ways in:
  - a session cookie `pacslb_session` (Secure, HttpOnly, SameSite=Strict, Path=/) made by a login
    (POST /api/v1/login, or the WebUI's login form calling `AuthService.login`); every unsafe request
    (POST, PUT, PATCH, DELETE) with a cookie must also carry the session's CSRF token, in the header
    `X-CSRF-Token` or the form field `csrf_token`, else 403;
  - an API key for scripts: `Authorization: Bearer pacslb_<id>_<secret>` (no CSRF: not ambient); it
    expires, cannot make other keys, and dies when its user's password changes (store/users.py).

A session ends after `timeout` idle seconds or `lifetime` seconds after its login, whichever comes first.
A login is throttled (throttle.py: per user name and address, per address; a user name is slowed, never
locked) and, from a browser, must come from the management address itself (`login_origin_problem`).

Roles: admin (everything), operator (drain / halt / online and weights of real servers, and reads),
viewer (reads). `require_role("operator")` lets operators and admins in: admin passes every check.

Used from a route:

    from pacslb.api.auth import Principal, current_principal, require_role

    @router.get("/x")
    async def x(principal: Principal = Depends(current_principal)): ...        # any role
    @router.post("/y")
    async def y(principal: Principal = Depends(require_role("operator"))): ...  # operator or admin

The AuthService is `request.app.state.auth`:
    session = await auth.login(username, password, client_ip)   # Session | None; raises LoginThrottled
    await auth.unblock(username)                                 # an admin lifts a user's back-off
    set_session_cookie(response, session, auth)                  # then render the page with session.csrf_token
    auth.logout(session_id); clear_session_cookie(response)
    auth.audit(username, "action", target=..., outcome="ok", client_ip=..., via=..., detail={...})
    auth.sessions (SessionStore), auth.users (UserStore), auth.audit_log (AuditLog)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response

from ..store.audit import AuditLog
from ..store.users import ROLES, User, UserStore
from .throttle import FREE_FAILURES, LoginThrottle, LoginThrottled, ThrottledAudit

log = logging.getLogger("pacslb.api")

SESSION_COOKIE = "pacslb_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_SESSION_TIMEOUT = 30 * 60.0  # idle seconds
DEFAULT_SESSION_LIFETIME = 12 * 3600.0  # absolute: the dashboard's polling keeps a session busy, never past this
MAX_VERIFYING = 4  # argon2 verifications at once (19 MiB each): a burst of logins waits its turn instead of ballooning

# Login throttling lives in throttle.py (LoginThrottled is re-exported here for the WebUI).


@dataclass
class Principal:
    """Who makes a request: their user name, role, and how they came in."""

    username: str
    role: str  # "admin" | "operator" | "viewer"
    via: str  # "session" | "api-key"
    csrf_token: str | None = None  # sessions only: put it in forms (csrf_token) or the X-CSRF-Token header
    session_id: str | None = None
    api_key_id: str | None = None  # API keys only: which key
    must_change_password: bool = False  # a one-time password: nothing but changing it (and me, logout) until then

    def allowed(self, *roles: str) -> bool:
        """True when the role is one of `roles` (admin is always allowed)."""
        return self.role == "admin" or self.role in roles


@dataclass
class Session:
    """A logged-in browser. `id` is the cookie's value; the CSRF token goes with every unsafe request."""

    id: str
    username: str
    role: str
    csrf_token: str
    client_ip: str | None
    created_at: float
    last_seen: float

    def principal(self) -> Principal:
        return Principal(self.username, self.role, "session", self.csrf_token, self.id)


class SessionStore:
    """Sessions in the controller's memory (a restart logs everyone out). A session ends after `timeout` s
    without a request (idle), and `lifetime` s after its login whatever it does (absolute)."""

    def __init__(
        self,
        timeout: float = DEFAULT_SESSION_TIMEOUT,
        clock: Callable[[], float] = time.time,
        lifetime: float = DEFAULT_SESSION_LIFETIME,
    ) -> None:
        self.timeout = timeout
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()  # used from the event loop and from worker threads

    def create(self, user: User, client_ip: str | None) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), user.username, user.role, secrets.token_urlsafe(32), client_ip, now, now)
        with self._lock:
            self._expire(now)
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str, touch: bool = True) -> Session | None:
        """The live session with this id (its idle time restarts when `touch`), or None when unknown or expired."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = self.clock()
            if self._over(session, now):
                del self._sessions[session_id]
                return None
            if touch:
                session.last_seen = now
            return session

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def delete_user(self, username: str, keep: str | None = None) -> int:
        """End every session of `username` (but `keep`); returns how many ended."""
        with self._lock:
            ended = [sid for sid, s in self._sessions.items() if s.username == username and sid != keep]
            for sid in ended:
                del self._sessions[sid]
        return len(ended)

    def list(self) -> list[Session]:
        with self._lock:
            self._expire(self.clock())
            return list(self._sessions.values())

    def _over(self, session: Session, now: float) -> bool:
        """Idle too long, or past its absolute lifetime."""
        return now - session.last_seen > self.timeout or now - session.created_at > self.lifetime

    def _expire(self, now: float) -> None:
        """Forget idle and too old sessions (the lock held)."""
        for sid in [sid for sid, s in self._sessions.items() if self._over(s, now)]:
            del self._sessions[sid]


class AuthService:
    """Users, sessions, API keys, login throttling and the audit log of one appliance."""

    def __init__(
        self,
        users: UserStore,
        audit_log: AuditLog,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        clock: Callable[[], float] = time.time,
        state_dir: Path | None = None,
        session_lifetime: float = DEFAULT_SESSION_LIFETIME,
    ) -> None:
        self.state_dir = state_dir  # where the first admin's one-time password file lives
        self.users = users
        self.audit_log = audit_log
        self.sessions = SessionStore(session_timeout, clock, session_lifetime)
        self.throttle = LoginThrottle(clock)
        self.throttled_audit = ThrottledAudit(clock)
        self.clock = clock
        self.on_failed_login: Callable[[], None] | None = None  # metrics hook
        # argon2 verifications at once: also leaves the default thread pool (cpu + 4 threads) free for the stores
        self._verifying: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def login(self, username: str, password: str, client_ip: str | None) -> Session | None:
        """A new session when the password is right; None when not (recorded in the audit log).

        Raises LoginThrottled (with `retry_after` seconds) when this user name failed too often from this
        address, or this address too often for any name (throttle.py). The attempt is counted before its
        password is checked; at most MAX_VERIFYING passwords are checked at once (the others wait).
        """
        if self.throttle.held_back(username):  # an unblock made by `pacslb user unblock` (another process)?
            at = await asyncio.to_thread(self.users.unblocked_at, username)
            if at is not None:
                self.throttle.unblock_before(username, at)
        try:
            admission = self.throttle.admit(username, client_ip)
        except LoginThrottled as exc:
            await self._audit_throttled(username or "-", client_ip, exc)
            raise
        if admission.delay > 0:  # this name failed often from many addresses: slowed down, never locked
            await asyncio.sleep(admission.delay)
        loop = asyncio.get_running_loop()
        if self._verifying is None or self._verifying[0] is not loop:  # a semaphore belongs to one event loop
            self._verifying = (loop, asyncio.Semaphore(MAX_VERIFYING))
        async with self._verifying[1]:
            user = await asyncio.to_thread(self.users.verify, username, password) if username and password else None
        if user is None:
            if self.on_failed_login is not None:
                self.on_failed_login()
            # No user name here: every role reads the controller log, and a failed login's "name" is often a
            # password typed in the wrong field. The audit log (admins only) keeps it.
            log.warning("failed login from %s (the user name is in the audit log)", client_ip)
            await self.audit_async(username or "-", "login", outcome="failed", client_ip=client_ip, via="session",
                                   detail={"reason": "unknown user or wrong password"})  # fmt: skip
            return None
        self.throttle.succeeded(admission)
        session = self.sessions.create(user, client_ip)
        await self.audit_async(user.username, "login", outcome="ok", client_ip=client_ip, via="session")
        return session

    async def unblock(self, username: str) -> int:
        """Lift the login back-off of `username` (recorded in the users store, where `pacslb user unblock` writes
        too); returns how many addresses it was blocked from here."""
        await asyncio.to_thread(self.users.unblock, username)
        return self.throttle.unblock(username)

    async def _audit_throttled(self, username: str, client_ip: str | None, exc: LoginThrottled) -> None:
        """One audit row per (user, address) per window, with a count, however many refusals come."""
        for name, address, count, names in self.throttled_audit.refused(username, client_ip, exc.by_address):
            detail: dict[str, Any] = {"retry_after": exc.retry_after}
            if names:
                detail["users"] = names
            await asyncio.to_thread(self._record_throttled, name, None if address == "-" else address, count, detail)

    def flush_throttled(self) -> None:
        """Write the throttled logins counted but not written yet (blocking; before reading the audit log)."""
        for name, address, count, names in self.throttled_audit.flush():
            self._record_throttled(name, None if address == "-" else address, count, {"users": names} if names else None)

    def _record_throttled(self, username: str, client_ip: str | None, count: int, detail: dict | None) -> None:
        try:
            self.audit_log.record_throttled(username, client_ip, count, detail=detail)
        except Exception:  # logged: the audit log is not a reason to fail a login answer
            log.exception("could not write the audit log %s", self.audit_log.path)

    def logout(self, session_id: str) -> bool:
        """End a session; True when there was one."""
        session = self.sessions.get(session_id, touch=False)
        ended = self.sessions.delete(session_id)
        if session is not None:
            self.audit(session.username, "logout", client_ip=session.client_ip, via="session")
        return ended

    def session_principal(self, session_id: str) -> Principal | None:
        """The principal of a live session, with its role as the user store says now; None when the
        session expired, or its user was deleted or changed (password or role) since it logged in."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        user = self.users.get(session.username)
        if user is None or user.changed_at > session.created_at:
            self.sessions.delete(session_id)
            return None
        session.role = user.role
        principal = session.principal()
        principal.must_change_password = user.must_change_password
        return principal

    async def api_key_principal(self, token: str) -> Principal | None:
        """The principal of a valid, unexpired API key; None otherwise."""
        found = await asyncio.to_thread(self.users.verify_api_key, token)
        if found is None:
            return None
        user, key = found
        return Principal(user.username, user.role, "api-key", api_key_id=key.id,
                         must_change_password=user.must_change_password)  # fmt: skip

    def audit(
        self,
        username: str,
        action: str,
        *,
        target: str = "",
        outcome: str = "ok",
        client_ip: str | None = None,
        via: str | None = None,
        detail: Any = None,
    ) -> None:
        """Record one event in the audit log (blocking, a few milliseconds; never raises: a failure is logged)."""
        try:
            self.audit_log.record(username, action, target=target, outcome=outcome, client_ip=client_ip, via=via,
                                  detail=detail)  # fmt: skip
        except Exception:
            log.exception("could not write the audit log %s", self.audit_log.path)

    async def audit_async(self, username: str, action: str, **kwargs: Any) -> None:
        """`audit` in a thread."""
        await asyncio.to_thread(self.audit, username, action, **kwargs)


# --- request helpers -----------------------------------------------------------------------------


def client_ip(request: Request) -> str | None:
    """The address the request came from (the management API is reached directly, never through a proxy)."""
    return request.client.host if request.client else None


def login_origin_problem(request: Request) -> str | None:
    """Why a login must be refused as cross-site (login CSRF: a page elsewhere logging the browser in as its
    author), or None. A browser names the page that sends a POST in `Origin`: it must be this management
    address itself (https://<the Host the browser asked for>). `Origin: null` (sent under a no-referrer
    policy, or from a sandboxed frame) proves nothing: then `Sec-Fetch-Site: same-origin` must vouch for it.
    Without `Origin` (scripts: curl, httpx), a `Sec-Fetch-Site` other than same-origin or none is refused;
    a request with neither header is a script's (no browser sends a cross-site POST without `Origin`)."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    site = (request.headers.get("sec-fetch-site") or "").lower()
    if origin is not None and origin.strip().lower() == "null":
        if site == "same-origin":
            return None
        return f"this login comes from an unknown page (Origin: null): log in from https://{host}/ itself"
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme != "https" or not parts.netloc or parts.netloc.lower() != host.lower():
            return f"this login comes from another site ({origin[:100]}): log in from https://{host}/ itself"
        return None
    if site and site not in ("same-origin", "none"):
        return f"this login comes from another site (Sec-Fetch-Site: {site[:40]}): log in from https://{host}/ itself"
    return None


def set_session_cookie(response: Response, session: Session, auth: AuthService | None = None) -> None:
    """Put the session cookie on a response: Secure, HttpOnly, SameSite=Strict, Path=/ (a browser-session cookie:
    the server ends it after the idle timeout)."""
    response.set_cookie(SESSION_COOKIE, session.id, path="/", secure=True, httponly=True, samesite="strict")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


class PasswordChangeRequired(HTTPException):
    """403: the user logs in with a one-time password (the first admin's, or one an admin set) and must change it
    before anything else. The WebUI sends such a user to /account instead (web/context.py), hence the principal."""

    def __init__(self, principal: Principal) -> None:
        super().__init__(403, detail=f"{principal.username} must change the one-time password before anything else: "
                         f"PUT /api/v1/users/{principal.username}/password with current_password and the new password "
                         "(or log in to the WebUI, which asks for it)")  # fmt: skip
        self.principal = principal


def allowed_before_password_change(method: str, path: str, username: str) -> bool:
    """What a user who must change a one-time password may still do: change it, see who they are, log out."""
    return (method, path) in (("GET", "/api/v1/me"), ("POST", "/api/v1/logout"),
                              ("PUT", f"/api/v1/users/{username}/password"))  # fmt: skip


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="pacslb"'})


async def _csrf_token_of(request: Request) -> str | None:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form()  # Starlette caches it: the route reads the same form
        except Exception:  # noqa: BLE001 - a broken form carries no token
            return None
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def optional_principal(request: Request) -> Principal | None:
    """Like `current_principal`, but None instead of 401 when the request carries no credentials at all
    (for pages that redirect to the login form). Bad credentials and a missing CSRF token still fail."""
    if not request.headers.get("authorization") and not request.cookies.get(SESSION_COOKIE):
        return None
    return await current_principal(request)


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the Principal of the request, from `Authorization: Bearer <API key>` or the
    `pacslb_session` cookie. 401 without valid credentials; 403 when a cookie session sends an unsafe
    request (POST, PUT, PATCH, DELETE) without its CSRF token (header X-CSRF-Token or form field csrf_token).
    The principal is also left in `request.state.principal`."""
    auth: AuthService = request.app.state.auth
    header = request.headers.get("authorization")
    principal: Principal | None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("use 'Authorization: Bearer <API key>', or log in (POST /api/v1/login)")
        principal = await auth.api_key_principal(token.strip())
        if principal is None:
            raise _unauthorized("this API key is not valid (unknown or deleted): make one with 'pacslb user apikey NAME'")
    else:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise _unauthorized("authentication required: log in (POST /api/v1/login) or send an API key")
        principal = await asyncio.to_thread(auth.session_principal, session_id)
        if principal is None:
            raise _unauthorized("the session expired or ended: log in again")
        if request.method in UNSAFE_METHODS:
            token = await _csrf_token_of(request)
            if not token or not hmac.compare_digest(token.encode(), (principal.csrf_token or "").encode()):
                raise HTTPException(
                    403, detail=f"missing or wrong CSRF token: send the session's token in the {CSRF_HEADER} header "
                    f"or the {CSRF_FIELD} form field"
                )  # fmt: skip
    request.state.principal = principal
    if principal.must_change_password and not allowed_before_password_change(request.method, request.url.path,
                                                                              principal.username):  # fmt: skip
        raise PasswordChangeRequired(principal)
    return principal


def require_role(*roles: str) -> Callable[..., Any]:
    """Dependency factory: the Principal when its role is one of `roles` (admin always is); else 403 naming the role needed."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"unknown roles {unknown}: choose from {ROLES}")
    needed = " or ".join(sorted(set(roles) | {"admin"}, key=ROLES.index, reverse=True))

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.allowed(*roles):
            raise HTTPException(403, detail=f"this needs the role {needed}; {principal.username} is {principal.role}")
        return principal

    return dependency


__all__ = [
    "DEFAULT_SESSION_LIFETIME",
    "FREE_FAILURES",
    "AuthService",
    "LoginThrottle",
    "LoginThrottled",
    "PasswordChangeRequired",
    "Principal",
    "Session",
    "SessionStore",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "clear_session_cookie",
    "client_ip",
    "current_principal",
    "login_origin_problem",
    "optional_principal",
    "require_role",
    "set_session_cookie",
]
