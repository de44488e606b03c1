"""The WebUI's /account page, for every role: change my password, my API keys.

The same rules as the API (api/routes_users.py): the current password is needed and its guesses are throttled like
logins; the password policy's problem shows beside the new password's field; a change ends the user's other sessions
and deletes their API keys, and this browser gets a fresh session. A one-time password (the first admin's, or one an
admin set) must be changed here before any other page opens (context.page_principal sends the user here).

A new API key's token is shown once, in the answer to the form that made it (never stored, never in a redirect).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import LoginThrottled, Principal, client_ip, set_session_cookie
from ..api.state import forget_initial_password
from ..store.users import DEFAULT_API_KEY_DAYS, MAX_API_KEY_DAYS, MIN_PASSWORD_LENGTH, UserError
from .context import flash, page_principal, render
from .fields import PlacedProblems

router = APIRouter(include_in_schema=False)
MAX_KEY_NAME = 200


def _audit(request: Request, principal: Principal, action: str, target: str, outcome: str = "ok", detail=None) -> None:
    request.app.state.auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                                 via=principal.via, detail=detail)  # fmt: skip


async def _page(request: Request, principal: Principal, status_code: int = 200, placed: PlacedProblems | None = None,
                **context) -> Response:  # fmt: skip
    keys = await asyncio.to_thread(request.app.state.auth.users.api_keys, principal.username)
    return render(request, "account.html", principal, status_code=status_code, placed=placed or PlacedProblems(), keys=keys,
                  min_length=MIN_PASSWORD_LENGTH, default_days=DEFAULT_API_KEY_DAYS, max_days=MAX_API_KEY_DAYS,
                  **context)  # fmt: skip


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    return await _page(request, principal)


def password_problems(current: str, password: str, again: str, username: str) -> PlacedProblems:
    """The form's problems that need no store (pure): each beside its field."""
    from ..store.users import check_password

    placed = PlacedProblems()
    if not current:
        placed.by_field["current_password"] = ["give your current password"]
    try:
        check_password(password, username)
    except UserError as exc:
        placed.by_field["password"] = [str(exc)]
    if password != again:
        placed.by_field["password_again"] = ["the two new passwords differ: type the same one twice"]
    return placed


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(
    request: Request,
    current_password: str = Form("", max_length=1024),
    password: str = Form("", max_length=1024),
    password_again: str = Form("", max_length=1024),
    principal: Principal = Depends(page_principal),
) -> Response:
    auth = request.app.state.auth
    username = principal.username
    if principal.via != "session":
        return await _page(request, principal, 403, notice="Log in with your password to change it (not with an API key).")
    placed = password_problems(current_password, password, password_again, username)
    if placed.any:
        _audit(
            request, principal, "user.password", username, "invalid", {"message": "; ".join(sum(placed.by_field.values(), []))}
        )
        return await _page(request, principal, 422, placed)
    try:  # counted like a login: guessing the current password through this form is throttled the same way
        admission = auth.throttle.admit(username, client_ip(request))
    except LoginThrottled as exc:
        return await _page(request, principal, 429, notice=f"Too many wrong passwords. Try again in {exc.retry_after} s.")
    if await asyncio.to_thread(auth.users.verify, username, current_password) is None:
        _audit(request, principal, "user.password", username, "denied", {"message": "wrong current password"})
        return await _page(
            request, principal, 403, PlacedProblems(by_field={"current_password": ["the current password is wrong"]})
        )
    auth.throttle.succeeded(admission)
    try:
        keys_deleted = await asyncio.to_thread(auth.users.set_password, username, password)
    except UserError as exc:
        return await _page(request, principal, 422, PlacedProblems(by_field={"password": [str(exc)]}))
    if auth.state_dir is not None:
        forget_initial_password(auth.state_dir, username)
    # the user's sessions end (their user changed after they began): this browser gets a new one
    auth.sessions.delete_user(username)
    _audit(request, principal, "user.password", username, detail={"api_keys_deleted": keys_deleted} if keys_deleted else None)
    user = await asyncio.to_thread(auth.users.get, username)
    session = auth.sessions.create(user, client_ip(request))
    response = RedirectResponse("/account", status_code=303)
    set_session_cookie(response, session, auth)
    note = f" Your {keys_deleted} API key(s) were deleted with the old password." if keys_deleted else ""
    flash(request, session.principal(), "Your password was changed; your other sessions ended." + note, "ok")
    return response


@router.post("/account/api-keys", response_class=HTMLResponse)
async def add_key(
    request: Request,
    name: str = Form("", max_length=MAX_KEY_NAME),
    expires_in_days: str = Form(str(DEFAULT_API_KEY_DAYS), max_length=12),
    principal: Principal = Depends(page_principal),
) -> Response:
    auth = request.app.state.auth
    if principal.via == "api-key":  # a leaked key must not be able to make itself a successor
        return await _page(request, principal, 403, notice="An API key cannot make API keys: log in with your password.")
    days = int(expires_in_days) if expires_in_days.strip().isdigit() else 0
    if not 1 <= days <= MAX_API_KEY_DAYS:
        problem = f"a whole number of days from 1 to {MAX_API_KEY_DAYS}"
        return await _page(request, principal, 422, PlacedProblems(by_field={"expires_in_days": [problem]}),
                           key_values={"name": name, "expires_in_days": expires_in_days})  # fmt: skip
    key, token = await asyncio.to_thread(auth.users.add_api_key, principal.username, name.strip(), days)
    _audit(request, principal, "api-key.create", principal.username, detail={"id": key.id, "name": key.name})
    return await _page(request, principal, new_key=key, token=token)


@router.post("/account/api-keys/{key_id}/delete")
async def delete_key(request: Request, key_id: str, principal: Principal = Depends(page_principal)) -> Response:
    auth = request.app.state.auth
    keys = await asyncio.to_thread(auth.users.api_keys, principal.username)
    if not any(k.id == key_id for k in keys):
        flash(request, principal, f"You have no API key {key_id[:40]}.", "error")
    else:
        await asyncio.to_thread(auth.users.delete_api_key, key_id)
        _audit(request, principal, "api-key.delete", key_id)
        flash(request, principal, f"API key {key_id} deleted.", "ok")
    return RedirectResponse("/account", status_code=303)


__all__ = ["router", "password_problems"]
