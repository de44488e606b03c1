"""What every WebUI page shares: templates, the logged-in principal, the controller, flash messages.

Pages depend on `page_principal` (any role) or `page_role("operator")`: a browser without a session (or
with an expired one) is sent to /login instead of getting the API's JSON 401.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..api.auth import PasswordChangeRequired, Principal, optional_principal
from ..model.diff import format_value
from . import view

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals.update(
    state_class=view.state_class,
    state_label=view.state_label,
    check_class=view.check_class,
    duration=view.duration,
    timestamp=view.timestamp,
    expiry_class=view.expiry_class,
    fmt=format_value,
    service_overview=view.service_overview,
)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True

NAV = [("/", "Dashboard"), ("/services", "Services"), ("/revisions", "Revisions"), ("/certificates", "Certificates"),
       ("/graphs", "Graphs"), ("/log", "Log"), ("/verify", "Verify"), ("/gslb", "GSLB"), ("/waf", "WAF"),
       ("/backup", "Backup"), ("/users", "Users"), ("/audit", "Audit")]  # fmt: skip
NAV += [("/ha", "HA pair"), ("/alerts", "Alerts")]  # issue 16: web/ha.py, web/alerts.py
NAV += [("/cluster", "Cluster")]  # issue 20: web/cluster.py
ADMIN_PAGES = frozenset({"/backup", "/users", "/audit"})  # shown in the nav bar to admins only


class LoginRedirect(HTTPException):
    """Not logged in on a page: 303 to the login form (FastAPI answers an HTTPException with its headers)."""

    def __init__(self) -> None:
        super().__init__(303, detail="log in first", headers={"Location": "/login"})


# What a user who must change a one-time password may open in the WebUI (every other page leads to /account).
PASSWORD_CHANGE_PAGES = frozenset({"/account", "/account/password", "/logout"})


class PasswordChangeRedirect(HTTPException):
    """A one-time password not changed yet: 303 to /account, whatever page was asked for."""

    def __init__(self) -> None:
        super().__init__(303, detail="change your one-time password first", headers={"Location": "/account"})


async def page_principal(request: Request) -> Principal:
    """The principal of a page request; no session, or an expired one: to /login; a one-time password not
    changed yet: to /account (with a message), but for the pages that change it."""
    try:
        principal = await optional_principal(request)
    except PasswordChangeRequired as exc:
        if request.url.path in PASSWORD_CHANGE_PAGES:
            return exc.principal
        flash(request, exc.principal, "Choose your own password first: the one you logged in with was a one-time password.",
              "info")  # fmt: skip
        raise PasswordChangeRedirect() from None
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        principal = None
    if principal is None:
        raise LoginRedirect()
    return principal


def page_role(*roles: str) -> Callable[..., Any]:
    """A page or form post for these roles (admin always): 403 with the role needed for the others."""

    async def dependency(principal: Principal = Depends(page_principal)) -> Principal:
        if not principal.allowed(*roles):
            needed = " or ".join(dict.fromkeys((*roles, "admin")))
            raise HTTPException(403, detail=f"this needs the role {needed}; {principal.username} is {principal.role}")
        return principal

    return dependency


def controller_of(request: Request) -> Any:
    return request.app.state.controller


# --- flash messages: one line after a redirect, kept per session in memory ------------------------

_FLASH_LIMIT = 1000
_FLASH_TTL = 300.0


def _flashes(request: Request) -> "OrderedDict[str, tuple[float, str, str]]":
    return request.app.state.web_flash  # made by mount_web


def flash(request: Request, principal: Principal, message: str, kind: str = "ok") -> None:
    """Show `message` on the next page this session opens (kind: ok | error | info)."""
    key = principal.session_id or principal.username
    store = _flashes(request)
    store[key] = (time.monotonic(), kind, message)
    store.move_to_end(key)
    while len(store) > _FLASH_LIMIT:
        store.popitem(last=False)


def take_flash(request: Request, principal: Principal) -> tuple[str, str] | None:
    key = principal.session_id or principal.username
    found = _flashes(request).pop(key, None)
    if found is None or time.monotonic() - found[0] > _FLASH_TTL:
        return None
    return found[1], found[2]


def render(request: Request, name: str, principal: Principal | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the layout: nav bar, who is logged in, the flash message."""
    context.update(
        request=request,
        principal=principal,
        nav=[]
        if principal and principal.must_change_password
        # nothing else opens until then
        else [item for item in NAV if item[0] not in ADMIN_PAGES or (principal and principal.allowed("admin"))],
        can_operate=bool(principal and principal.allowed("operator")),
        can_edit=bool(principal and principal.allowed("admin")),
        flash=take_flash(request, principal) if principal is not None and not name.startswith("_") else None,
    )
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
