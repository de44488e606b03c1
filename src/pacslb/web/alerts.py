"""The WebUI's alerts page: the receivers the configuration names (where each sends, which events, from which
severity) with what the alerts service counted for each (queued, sent, dropped, the last error), the last alerts
raised; admins send a test alert and see the result per receiver (the same as POST /api/v1/alerts/test).

`receiver_rows` is pure: the model's receivers and the service's status in, the table's rows out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from ..alerts.service import RECENT
from ..api.auth import Principal, client_ip
from ..model import Config
from .context import controller_of, page_principal, page_role, render

router = APIRouter(include_in_schema=False)
TEST_TIMEOUT_S = 75.0  # a receiver's delivery is bounded by its timeout (at most 60 s) plus 5 s (alerts/service.py)


def _where(receiver: Any) -> str:
    """Where a receiver sends, in one line."""
    if receiver.type == "email":
        port = f":{receiver.port}" if receiver.port else ""
        return f"{', '.join(receiver.to)} via {receiver.host}{port} ({receiver.security})"
    if receiver.type == "webhook":
        return receiver.url  # the model takes no user name or password in it (its secret is `secret`)
    return f"{receiver.target} ({receiver.transport}, {receiver.facility})"


def receiver_rows(config: Config, status: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per configured receiver, with the service's counters when it runs them (pure)."""
    counted = {r["name"]: r for r in status.get("receivers", [])}
    rows = []
    for receiver in config.alerts.receivers if config.alerts else []:
        rows.append({"name": receiver.name, "type": receiver.type, "where": _where(receiver), "events": list(receiver.events),
                     "min_severity": receiver.min_severity, "counters": counted.get(receiver.name)})  # fmt: skip
    return rows


def _context(request: Request) -> dict[str, Any]:
    controller = controller_of(request)
    service = getattr(controller, "alerts", None)
    status = service.status() if service is not None else {"receivers": [], "recent": []}
    config = controller.config
    return {"receivers": receiver_rows(config, status), "recent": status.get("recent", []), "settings": config.alerts,
            "node": status.get("node"), "results": None, "recent_limit": RECENT}  # fmt: skip


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    return render(request, "alerts.html", principal, **_context(request))


@router.post("/alerts/test", response_class=HTMLResponse)
async def send_test(request: Request, receiver: str = Form(""), principal: Principal = Depends(page_role("admin"))) -> Response:
    """A test alert to every receiver (or the one named), at once; the page shows each delivery's result."""
    service = getattr(controller_of(request), "alerts", None)
    if service is None:
        results: list[dict[str, Any]] = []
    else:
        try:
            results = await asyncio.wait_for(service.test(receiver or None), TEST_TIMEOUT_S)
        except asyncio.TimeoutError:
            results = [{"receiver": receiver or "all", "ok": False, "error": f"no result within {TEST_TIMEOUT_S:g}s"}]
    request.app.state.auth.audit(principal.username, "alerts.test", target=receiver or "every receiver",
                                 outcome="applied" if results and all(r["ok"] for r in results) else "failed",
                                 client_ip=client_ip(request), via=principal.via, detail={"results": results})  # fmt: skip
    context = _context(request)
    context["results"] = results
    return render(request, "alerts.html", principal, **context)
