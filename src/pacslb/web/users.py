"""The WebUI's /users page (admin only): users with their role, last login and login blocks; add a user, change a
role, reset a password, lift a login block, delete a user; every API key with its owner.

The same store and rules as the API (api/routes_users.py), audited the same way: the last admin can be neither
deleted nor demoted (store/users.py refuses it), a new user and a reset password get a one-time password shown
once, which its user must change at the next login (must_change_password).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import Principal, client_ip
from ..store.users import ROLES, UserError, check_role, check_username, new_password
from .context import flash, page_role, render
from .fields import PlacedProblems

router = APIRouter(include_in_schema=False)
ADMIN = page_role("admin")


def _audit(request: Request, principal: Principal, action: str, target: str, outcome: str = "ok", detail=None) -> None:
    request.app.state.auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                                 via=principal.via, detail=detail)  # fmt: skip


def _overview(auth) -> dict:
    """Users (with their last successful login, when the audit log still has it), every API key, the login blocks."""
    users = auth.users.list()
    return {"users": users, "last_login": auth.audit_log.last_logins([u.username for u in users]),
            "keys": auth.users.api_keys(), "blocks": auth.throttle.blocked()}  # fmt: skip


async def _page(request: Request, principal: Principal, status_code: int = 200, placed: PlacedProblems | None = None,
                **context) -> Response:  # fmt: skip
    overview = await asyncio.to_thread(_overview, request.app.state.auth)
    return render(request, "users.html", principal, status_code=status_code, placed=placed or PlacedProblems(), roles=ROLES,
                  **overview, **context)  # fmt: skip


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, principal: Principal = Depends(ADMIN)) -> Response:
    return await _page(request, principal)


@router.post("/users", response_class=HTMLResponse)
async def add_user(
    request: Request,
    username: str = Form("", max_length=64),
    role: str = Form("viewer", max_length=16),
    principal: Principal = Depends(ADMIN),
) -> Response:
    """A new user with a one-time password, shown once in the answer."""
    auth = request.app.state.auth
    username = username.strip()
    placed = PlacedProblems()
    for name, check, value in (("username", check_username, username), ("role", check_role, role)):
        try:
            check(value)
        except UserError as exc:
            placed.by_field[name] = [str(exc)]
    password = new_password()
    if not placed.any:
        try:
            await asyncio.to_thread(auth.users.add, username, password, role, True)
        except UserError as exc:
            placed.by_field["username"] = [str(exc).split(":")[0] + ": choose another name" if "exists" in str(exc) else str(exc)]
    if placed.any:
        _audit(
            request, principal, "user.create", username[:64], "invalid", {"message": "; ".join(sum(placed.by_field.values(), []))}
        )
        return await _page(request, principal, 422, placed, add_values={"username": username, "role": role})
    _audit(request, principal, "user.create", username, detail={"role": role, "must_change_password": True})
    return await _page(request, principal, one_time={"username": username, "password": password, "what": "added"})


@router.post("/users/{username}/role")
async def set_role(request: Request, username: str, role: str = Form(..., max_length=16),
                   principal: Principal = Depends(ADMIN)) -> Response:  # fmt: skip
    try:
        await asyncio.to_thread(request.app.state.auth.users.set_role, username, role)
    except UserError as exc:
        _audit(request, principal, "user.role", username, "refused", {"message": str(exc)})
        flash(request, principal, f"The role of {username} was not changed: {exc}", "error")
        return RedirectResponse("/users", status_code=303)
    _audit(request, principal, "user.role", username, detail={"role": role})
    flash(request, principal, f"{username} is now {role}.", "ok")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{username}/password", response_class=HTMLResponse)
async def reset_password(request: Request, username: str, principal: Principal = Depends(ADMIN)) -> Response:
    """A new one-time password for another user (shown once): their sessions end, their API keys are deleted."""
    auth = request.app.state.auth
    if username == principal.username:
        flash(request, principal, "Change your own password on your account page (it needs your current one).", "error")
        return RedirectResponse("/account", status_code=303)
    password = new_password()
    try:
        keys = await asyncio.to_thread(auth.users.set_password, username, password, True)
    except UserError as exc:
        flash(request, principal, f"No password was reset: {exc}", "error")
        return RedirectResponse("/users", status_code=303)
    auth.sessions.delete_user(username)
    _audit(request, principal, "user.password", username, detail={"api_keys_deleted": keys, "must_change_password": True})
    return await _page(request, principal, one_time={"username": username, "password": password, "what": "reset",
                                                     "keys_deleted": keys})  # fmt: skip


@router.post("/users/{username}/unblock")
async def unblock(request: Request, username: str, principal: Principal = Depends(ADMIN)) -> Response:
    addresses = await request.app.state.auth.unblock(username)
    _audit(request, principal, "user.unblock", username, detail={"addresses": addresses})
    flash(request, principal, f"The login back-off of {username} was lifted ({addresses} address(es)).", "ok")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{username}/delete")
async def delete_user(request: Request, username: str, principal: Principal = Depends(ADMIN)) -> Response:
    auth = request.app.state.auth
    try:
        await asyncio.to_thread(auth.users.delete, username)
    except UserError as exc:
        _audit(request, principal, "user.delete", username, "refused", {"message": str(exc)})
        flash(request, principal, f"{username} was not deleted: {exc}", "error")
        return RedirectResponse("/users", status_code=303)
    auth.sessions.delete_user(username)
    _audit(request, principal, "user.delete", username)
    flash(request, principal, f"{username} and their API keys were deleted.", "ok")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/api-keys/{key_id}/delete")
async def delete_key(request: Request, key_id: str, principal: Principal = Depends(ADMIN)) -> Response:
    auth = request.app.state.auth
    if await asyncio.to_thread(auth.users.delete_api_key, key_id):
        _audit(request, principal, "api-key.delete", key_id)
        flash(request, principal, f"API key {key_id} deleted.", "ok")
    else:
        flash(request, principal, f"There is no API key {key_id[:40]}.", "error")
    return RedirectResponse("/users", status_code=303)


__all__ = ["router"]
