"""The WebUI's read-mostly pages: login, the dashboard (live), real-server buttons, log, graphs (certificates: certificates.py)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import (
    LoginThrottled,
    Principal,
    clear_session_cookie,
    client_ip,
    login_origin_problem,
    optional_principal,
    set_session_cookie,
)
from ..api.writes import origin_of
from ..change.result import Outcome
from ..model.config import RealServerState
from ..store.metrics import MetricsStore
from . import charts, graphdata
from .context import controller_of, flash, page_principal, page_role, render
from .history import metrics_path
from .logtail import MAX_LINES, tail
from .logview import COPY_TAIL_BYTES, copy_times, fold
from .topology import dashboard_view

router = APIRouter(include_in_schema=False)

GRAPH_MINUTES = (15, 60, 180, 720, 1440)
LOG_LINES = (50, 200, 1000)


# --- login ---------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    try:
        principal = await optional_principal(request)
    except Exception:  # noqa: BLE001 - an expired session: show the form
        principal = None
    if principal is not None:
        return RedirectResponse("/", status_code=303)
    return _login_form(request)


# The login form's page: Referrer-Policy same-origin instead of the app's no-referrer, so that the browser names
# this page in the Origin of the form's POST (under no-referrer it sends "Origin: null"), which the login checks.
LOGIN_REFERRER_POLICY = "same-origin"


def _login_form(request: Request, status_code: int = 200, **context) -> Response:
    response = render(request, "login.html", None, status_code=status_code, **context)
    response.headers["Referrer-Policy"] = LOGIN_REFERRER_POLICY
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, username: str = Form(""), password: str = Form("")) -> Response:
    auth = request.app.state.auth
    problem = login_origin_problem(request)
    if problem is not None:  # a form on another site posting here (login CSRF): not even counted as an attempt
        return _login_form(request, 403, username="", error=f"Refused: {problem}.")
    try:
        session = await auth.login(username.strip(), password, client_ip(request))
    except LoginThrottled as exc:
        return _login_form(request, 429, username=username, error=f"Too many failed logins. Try again in {exc.retry_after} s.")
    if session is None:
        return _login_form(request, 401, username=username, error="Wrong user name or password.")
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, session, auth)
    return response


@router.post("/logout")
async def logout(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    if principal.session_id:
        request.app.state.auth.logout(principal.session_id)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


# --- dashboard -----------------------------------------------------------------------------------


async def _dashboard_context(request: Request) -> dict:
    controller = controller_of(request)
    status = await asyncio.to_thread(controller.status)
    counts: dict[str, int] = {}
    for vs in status.virtual_services:
        for rs in vs.real_servers:
            counts[rs.state.value] = counts.get(rs.state.value, 0) + 1
    current = await asyncio.to_thread(controller.changes.store.current_id)
    return {"status": status, "counts": counts, "current_revision": current, "now": time.time(),
            **dashboard_view(controller.config, status.virtual_services)}  # fmt: skip


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    return render(request, "dashboard.html", principal, **await _dashboard_context(request))


@router.get("/fragments/dashboard", response_class=HTMLResponse)
async def dashboard_fragment(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    return render(request, "_dashboard.html", principal, **await _dashboard_context(request))


@router.post("/services/{service}/real-servers/{real_server}/state")
async def set_state(
    request: Request,
    service: str,
    real_server: str,
    state: str = Form(...),
    every_service: bool = Form(False),
    principal: Principal = Depends(page_role("operator")),
) -> Response:
    """The drain / halt / online buttons: runtime control through the change front door, author = the user."""
    try:
        wanted = RealServerState(state)
    except ValueError:
        flash(request, principal, f"'{state}' is not a state: choose online, drain or halt", "error")
        return RedirectResponse("/", status_code=303)
    changes = controller_of(request).changes
    result = await changes.set_real_server(
        service, real_server, state=wanted, every_service=every_service, origin=origin_of(request, principal),
        message=f"{wanted.value} {service}/{real_server} (WebUI)",
    )  # fmt: skip
    ok = result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED)
    detail = "; ".join(result.messages)
    flash(request, principal, result.message + (f" ({detail})" if detail else ""), "ok" if ok else "error")
    return RedirectResponse(f"/#vs-{service}", status_code=303)  # back to the dashboard, at that service


# --- log -----------------------------------------------------------------------------------------


def _log_context(request: Request, lines: int, q: str) -> dict:
    paths = controller_of(request).paths
    path = paths.haproxy_log
    copies = copy_times(tail(paths.controller_log, MAX_LINES, "pacslb.haproxy:", max_bytes=COPY_TAIL_BYTES))
    return {"lines": fold(tail(path, lines, q), copies), "count": lines, "q": q, "choices": LOG_LINES, "path": str(path)}


@router.get("/log", response_class=HTMLResponse)
async def log_page(
    request: Request, lines: int = Query(200, ge=1, le=2000), q: str = Query("", max_length=200),
    principal: Principal = Depends(page_principal),
) -> Response:  # fmt: skip
    return render(request, "log.html", principal, **await asyncio.to_thread(_log_context, request, lines, q))


@router.get("/fragments/log", response_class=HTMLResponse)
async def log_fragment(
    request: Request, lines: int = Query(200, ge=1, le=2000), q: str = Query("", max_length=200),
    principal: Principal = Depends(page_principal),
) -> Response:  # fmt: skip
    return render(request, "_log.html", principal, **await asyncio.to_thread(_log_context, request, lines, q))


# --- graphs --------------------------------------------------------------------------------------

METRICS = (("requests", "requests/s", "/s", "line-req"), ("sessions", "sessions", "", "line-ses"),
           ("errors", "errors/s", "/s", "line-err"))  # fmt: skip


def graphs_of(store: MetricsStore | None, names: list[str], minutes: int, now: float) -> list[dict]:
    """One entry per virtual service: its name and three SVG charts over the last `minutes`."""
    start = now - minutes * 60
    series = store.series(start) if store is not None else {}
    found = []
    for name in names:
        samples = series.get(name, [])
        svgs = [
            charts.line_chart(
                [(s.ts, getattr(s, key)) for s in samples], start=start, end=now, title=title, unit=unit, css_class=css
            )  # fmt: skip
            for key, title, unit, css in METRICS
        ]
        activity = sum(s.requests + s.errors + s.sessions for s in samples)
        found.append(
            {
                "name": name,
                "charts": svgs,
                "samples": len(samples),
                "activity": activity,
                "series": graphdata.columns(samples, start, now),
            }
        )  # for the browser's charts (graphs.js)
    # busy services first (in configuration order among themselves), then the idle ones
    return sorted(found, key=lambda g: g["activity"] == 0)


def _graphs_context(request: Request, minutes: int, service: str) -> dict:
    controller = controller_of(request)
    names = [vs.name for vs in controller.config.virtual_services if not vs.mode.is_layer4]
    if service:
        names = [n for n in names if n == service]
    path = metrics_path(controller.paths.root)
    store = MetricsStore(path) if path.exists() else None
    return {"graphs": graphs_of(store, names, minutes, time.time()), "minutes": minutes, "choices": GRAPH_MINUTES,
            "service": service, "all_services": [vs.name for vs in controller.config.virtual_services]}  # fmt: skip


@router.get("/graphs", response_class=HTMLResponse)
async def graphs_page(
    request: Request, minutes: int = Query(60, ge=5, le=1440), service: str = Query("", max_length=200),
    principal: Principal = Depends(page_principal),
) -> Response:  # fmt: skip
    return render(request, "graphs.html", principal, **await asyncio.to_thread(_graphs_context, request, minutes, service))


@router.get("/fragments/graphs", response_class=HTMLResponse)
async def graphs_fragment(
    request: Request, minutes: int = Query(60, ge=5, le=1440), service: str = Query("", max_length=200),
    principal: Principal = Depends(page_principal),
) -> Response:  # fmt: skip
    return render(request, "_graphs.html", principal, **await asyncio.to_thread(_graphs_context, request, minutes, service))


__all__ = ["router"]
