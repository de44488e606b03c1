"""Login and logout, the caller's identity, users, API keys and the audit log.

POST /api/v1/login is the one route (with GET /api/v1/health) that answers without credentials; a browser's
login must come from the management address itself (auth.login_origin_problem).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..store.users import DEFAULT_API_KEY_DAYS, MAX_API_KEY_DAYS, MIN_PASSWORD_LENGTH, UserError
from .answers import (
    ApiKeysAnswer,
    AuditAnswer,
    DeletedAnswer,
    LoginAnswer,
    LoginBlocksAnswer,
    LogoutAnswer,
    MeAnswer,
    NewApiKeyAnswer,
    PasswordAnswer,
    RoleAnswer,
    UnblockAnswer,
    UserAnswer,
    UsersAnswer,
)
from .auth import (
    AuthService,
    LoginThrottled,
    Principal,
    clear_session_cookie,
    client_ip,
    current_principal,
    login_origin_problem,
    require_role,
    set_session_cookie,
)
from .contract import answers
from .state import forget_initial_password

ADMIN = require_role("admin")
Role = Literal["admin", "operator", "viewer"]  # store.users.ROLES, in the schema


class LoginRequest(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class UserCreate(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    role: Role
    must_change_password: bool = Field(default=True, description="a one-time password: the user must change it at the "
                                       "first login before anything else (false: the user keeps it)")  # fmt: skip


class PasswordChange(BaseModel):
    password: str = Field(max_length=1024, description=f"the new password ({MIN_PASSWORD_LENGTH} characters or more, "
                          "not the user name, not a common password)")  # fmt: skip
    current_password: str | None = Field(default=None, max_length=1024, description="needed to change your own password")
    must_change_password: bool = Field(default=True, description="an admin setting another user's password: the user must "
                                       "change it at the next login (ignored for your own password)")  # fmt: skip


class RoleChange(BaseModel):
    role: Role


class ApiKeyCreate(BaseModel):
    name: str = Field(default="", max_length=200, description="what the key is for (e.g. 'monitoring')")
    expires_in_days: int = Field(default=DEFAULT_API_KEY_DAYS, ge=1, le=MAX_API_KEY_DAYS,
                                 description="the key stops working after this many days")  # fmt: skip


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"outcome": "error", "message": message}, status_code=status)


def users_router(auth: AuthService) -> APIRouter:
    router = APIRouter(tags=["authentication"])

    def audit(request: Request, principal: Principal, action: str, target: str, outcome: str = "ok", detail: Any = None) -> None:
        auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                   via=principal.via, detail=detail)  # fmt: skip

    @router.post(
        "/login", summary="Log in: a session cookie and the CSRF token for unsafe requests", **answers(LoginAnswer, 401, 403, 429)
    )
    async def login(body: LoginRequest, request: Request) -> JSONResponse:
        problem = login_origin_problem(request)
        if problem is not None:
            return _error(403, problem)
        try:
            session = await auth.login(body.username, body.password, client_ip(request))
        except LoginThrottled as exc:
            return JSONResponse({"outcome": "throttled", "message": str(exc), "retry_after": exc.retry_after},
                                status_code=429, headers={"Retry-After": str(exc.retry_after)})  # fmt: skip
        if session is None:
            return _error(401, "unknown user or wrong password")
        user = await asyncio.to_thread(auth.users.get, session.username)
        response = JSONResponse({"username": session.username, "role": session.role, "csrf_token": session.csrf_token,
                                 "session_timeout": auth.sessions.timeout, "session_lifetime": auth.sessions.lifetime,
                                 "must_change_password": bool(user and user.must_change_password)})  # fmt: skip
        set_session_cookie(response, session, auth)
        return response

    @router.post("/logout", summary="End this session", **answers(LogoutAnswer, 401, 403))
    async def logout(request: Request, principal: Principal = Depends(current_principal)) -> JSONResponse:
        response = JSONResponse({"logged_out": principal.session_id is not None})
        if principal.session_id:
            auth.logout(principal.session_id)
        clear_session_cookie(response)
        return response

    @router.get("/me", summary="Who you are: user name, role, and the session's CSRF token", **answers(MeAnswer, 401))
    async def me(principal: Principal = Depends(current_principal)) -> dict:
        return {"username": principal.username, "role": principal.role, "via": principal.via,
                "csrf_token": principal.csrf_token, "must_change_password": principal.must_change_password}  # fmt: skip

    # --- users (admin; anyone for their own password) ----------------------------------------------

    @router.get("/users", summary="Every user (admin)", **answers(UsersAnswer, 401, 403))
    async def list_users(_: Principal = Depends(ADMIN)) -> dict:
        users = await asyncio.to_thread(auth.users.list)
        return {"users": [u.as_dict() for u in users]}

    @router.post("/users", summary="Add a user (admin)", **answers(UserAnswer, 401, 403, 409))
    async def add_user(body: UserCreate, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            user = await asyncio.to_thread(auth.users.add, body.username, body.password, body.role, body.must_change_password)
        except UserError as exc:
            audit(request, principal, "user.create", body.username, "invalid", {"message": str(exc)})
            return _error(409 if "exists" in str(exc) else 422, str(exc))
        audit(request, principal, "user.create", user.username,
              detail={"role": user.role, "must_change_password": user.must_change_password})  # fmt: skip
        return JSONResponse({"user": user.as_dict()})

    @router.delete(
        "/users/{username}", summary="Delete a user and their API keys (admin)", **answers(DeletedAnswer, 401, 403, 404, 409)
    )
    async def delete_user(username: str, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            await asyncio.to_thread(auth.users.delete, username)
        except UserError as exc:
            audit(request, principal, "user.delete", username, "refused", {"message": str(exc)})
            return _error(404 if "no user" in str(exc) else 409, str(exc))
        auth.sessions.delete_user(username)
        audit(request, principal, "user.delete", username)
        return JSONResponse({"deleted": username})

    @router.put("/users/{username}/role", summary="Change a user's role (admin)", **answers(RoleAnswer, 401, 403, 404))
    async def set_role(username: str, body: RoleChange, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            await asyncio.to_thread(auth.users.set_role, username, body.role)
        except UserError as exc:
            audit(request, principal, "user.role", username, "refused", {"message": str(exc)})
            return _error(404 if "no user" in str(exc) else 422, str(exc))
        audit(request, principal, "user.role", username, detail={"role": body.role})
        return JSONResponse({"username": username, "role": body.role})

    @router.put(
        "/users/{username}/password",
        summary="Change a password (your own with the current one; admin: anyone's)",
        **answers(PasswordAnswer, 401, 403, 404, 429),
    )
    async def set_password(username: str, body: PasswordChange, request: Request,
                           principal: Principal = Depends(current_principal)) -> JSONResponse:  # fmt: skip
        if principal.username != username and principal.role != "admin":
            audit(request, principal, "user.password", username, "denied")
            return _error(403, "this needs the role admin: you may change only your own password")
        if principal.username == username:  # every role, admin too: a session left open must not take the account
            if not body.current_password:
                audit(request, principal, "user.password", username, "denied", {"message": "no current password"})
                return _error(403, "give your current password (current_password) to change it")
            try:  # counted like a login: guessing the current password through this route is throttled the same way
                admission = auth.throttle.admit(username, client_ip(request))
            except LoginThrottled as exc:
                return JSONResponse({"outcome": "throttled", "message": str(exc), "retry_after": exc.retry_after},
                                    status_code=429, headers={"Retry-After": str(exc.retry_after)})  # fmt: skip
            ok = await asyncio.to_thread(auth.users.verify, username, body.current_password)
            if ok is None:
                audit(request, principal, "user.password", username, "denied", {"message": "wrong current password"})
                return _error(403, "the current password is wrong")
            auth.throttle.succeeded(admission)
        try:
            # someone else's password is a one-time one (unless the admin says not): the user changes it at the next login
            one_time = principal.username != username and body.must_change_password
            keys_deleted = await asyncio.to_thread(auth.users.set_password, username, body.password, one_time)
        except UserError as exc:
            audit(request, principal, "user.password", username, "invalid", {"message": str(exc)})
            return _error(404 if "no user" in str(exc) else 422, str(exc))
        if auth.state_dir is not None:
            forget_initial_password(auth.state_dir, username)
        # the password changed: every other session of the user ends (this one goes on, with a fresh login)
        auth.sessions.delete_user(username, keep=principal.session_id)
        answer = {"username": username, "changed": True, "api_keys_deleted": keys_deleted, "must_change_password": one_time}
        response = JSONResponse(answer)
        if principal.session_id and principal.username == username:
            auth.sessions.delete(principal.session_id)
            user = await asyncio.to_thread(auth.users.get, username)
            if user is not None:
                session = auth.sessions.create(user, client_ip(request))
                set_session_cookie(response, session, auth)
                response = JSONResponse({**answer, "csrf_token": session.csrf_token},
                                        headers={k: v for k, v in response.headers.items() if k == "set-cookie"})  # fmt: skip
        audit(request, principal, "user.password", username, detail={"api_keys_deleted": keys_deleted} if keys_deleted else None)
        return response

    @router.post(
        "/users/{username}/unblock",
        summary="Lift a user's login back-off, from every address (admin)",
        **answers(UnblockAnswer, 401, 403),
    )
    async def unblock(username: str, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        addresses = await auth.unblock(username)
        audit(request, principal, "user.unblock", username, detail={"addresses": addresses})
        return JSONResponse({"username": username, "unblocked": True, "addresses": addresses})

    @router.get(
        "/login-blocks",
        summary="User names and addresses whose logins back off now (admin)",
        **answers(LoginBlocksAnswer, 401, 403),
    )
    async def login_blocks(_: Principal = Depends(ADMIN)) -> dict:
        return {"blocked": auth.throttle.blocked()}

    # --- API keys ----------------------------------------------------------------------------------

    @router.get("/api-keys", summary="API keys: yours; every key for an admin", **answers(ApiKeysAnswer, 401))
    async def list_keys(principal: Principal = Depends(current_principal)) -> dict:
        keys = await asyncio.to_thread(auth.users.api_keys, None if principal.role == "admin" else principal.username)
        return {"api_keys": [k.as_dict() for k in keys]}

    @router.post(
        "/users/{username}/api-keys",
        summary="A new API key (shown once): your own, or anyone's for an admin",
        **answers(NewApiKeyAnswer, 401, 403, 404),
    )
    async def add_key(username: str, body: ApiKeyCreate, request: Request,
                      principal: Principal = Depends(current_principal)) -> JSONResponse:  # fmt: skip
        if principal.via == "api-key":  # a leaked key must not be able to make itself a successor
            audit(request, principal, "api-key.create", username, "denied", {"message": "made with an API key"})
            return _error(403, "an API key cannot make API keys: log in with your password (or use 'pacslb user apikey')")
        if principal.username != username and principal.role != "admin":
            audit(request, principal, "api-key.create", username, "denied")
            return _error(403, "this needs the role admin: you may make keys only for yourself")
        try:
            key, token = await asyncio.to_thread(auth.users.add_api_key, username, body.name, body.expires_in_days)
        except UserError as exc:
            return _error(404, str(exc))
        audit(request, principal, "api-key.create", username, detail={"id": key.id, "name": key.name})
        return JSONResponse({"api_key": key.as_dict(), "token": token,
                             "note": "keep the token now: it is stored hashed and cannot be shown again"})  # fmt: skip

    @router.delete(
        "/api-keys/{key_id}", summary="Delete an API key: your own, or any for an admin", **answers(DeletedAnswer, 401, 403, 404)
    )
    async def delete_key(key_id: str, request: Request, principal: Principal = Depends(current_principal)) -> JSONResponse:
        keys = await asyncio.to_thread(auth.users.api_keys, None if principal.role == "admin" else principal.username)
        if not any(k.id == key_id for k in keys):
            return _error(404, f"there is no API key {key_id} of yours")
        await asyncio.to_thread(auth.users.delete_api_key, key_id)
        audit(request, principal, "api-key.delete", key_id)
        return JSONResponse({"deleted": key_id})

    # --- audit -------------------------------------------------------------------------------------

    @router.get("/audit", summary="The audit log, latest first (admin)", **answers(AuditAnswer, 401, 403))
    async def audit_log(
        _: Principal = Depends(ADMIN),
        limit: int = Query(100, ge=1, le=10_000),
        before: int | None = Query(None, ge=1, le=2**53, description="events older than this id"),
        username: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        target: str | None = Query(None, max_length=500, description="events whose object contains this text"),
        since: float | None = Query(None, ge=0, le=2**42, description="events at or after this time (Unix seconds)"),
        until: float | None = Query(None, ge=0, le=2**42, description="events at or before this time (Unix seconds)"),
    ) -> dict:
        await asyncio.to_thread(auth.flush_throttled)  # the counts of throttled logins not written yet
        events = await asyncio.to_thread(auth.audit_log.list, limit, before, username, action, outcome, target, since, until)
        return {"events": [e.as_dict() for e in events]}

    return router
