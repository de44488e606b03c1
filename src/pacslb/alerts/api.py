"""Alerts on the controller API: GET /api/v1/alerts (queues and counters per receiver, the last alerts) and
POST /api/v1/alerts/test[?receiver=NAME] (`pacslb alerts status|test`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..controller import API_PREFIX
from .service import AlertService


def alerts_router(service: AlertService) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/alerts")

    @router.get("")
    async def status() -> dict:
        return service.status()

    @router.post("/test")
    async def test(receiver: str | None = None) -> JSONResponse:
        if receiver is not None and receiver not in service.outboxes:
            known = ", ".join(service.outboxes) or "none"
            return JSONResponse({"detail": f"no alert receiver called {receiver!r} (alerts.receivers: {known})"}, 404)
        return JSONResponse({"results": await service.test(receiver)})

    return router
