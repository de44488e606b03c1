"""Alerts on the management API: GET /api/v1/alerts (queues, sent and dropped per receiver, the last alerts; any
role) and POST /api/v1/alerts/test[?receiver=NAME] (a test alert to each receiver; admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from .answers import AlertsAnswer, AlertTestAnswer
from .auth import require_role
from .contract import answers, error_response

READ = require_role("viewer", "operator")
ADMIN = require_role("admin")


def alerts_router(alerts: Any) -> APIRouter:
    """`alerts` is the appliance's alerts service (alerts/service.py), given by the composition root's Facade."""
    router = APIRouter(tags=["alerts"])

    @router.get(
        "/alerts",
        dependencies=[Depends(READ)],
        summary="Alert receivers: queued, sent, dropped; the last alerts",
        **answers(AlertsAnswer, 401),
    )
    async def status() -> dict:
        return alerts.status()

    @router.post(
        "/alerts/test",
        dependencies=[Depends(ADMIN)],
        summary="Send a test alert to each receiver (or one)",
        **answers(AlertTestAnswer, 401, 403, 404),
    )
    async def test(receiver: str | None = Query(None, max_length=63, description="only this receiver")) -> JSONResponse:
        if receiver is not None and receiver not in alerts.outboxes:
            return error_response(404, f"no alert receiver called {receiver!r}: see alerts.receivers")
        return JSONResponse({"results": await alerts.test(receiver)})

    return router
