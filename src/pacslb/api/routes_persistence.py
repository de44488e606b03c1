"""Clearing a virtual service's persistence table (issue 15; src/pacslb/persistence.py):

  DELETE /api/v1/virtual-services/{service}/persistence   operator or admin; 200 {service, table, cleared, remaining,
                                                          message}; 404 no such service; 409 no table to clear;
                                                          503 HAProxy did not answer. Audited as persistence.clear.

It changes no configuration and makes no revision: the table is run-time state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..persistence import ClearRefused, clear_persistence
from .answers import PersistenceClearedAnswer
from .auth import Principal, client_ip, require_role
from .contract import answers

OUTCOME = {404: "not-found", 409: "conflict", 503: "failed"}


def persistence_router(controller: Any) -> APIRouter:
    router = APIRouter(tags=["virtual services"])

    @router.delete(
        "/virtual-services/{service}/persistence",
        summary="Clear a virtual service's persistence table: each client is scheduled again (operator)",
        **answers(PersistenceClearedAnswer, 401, 403, 404, 409, 503),
    )
    async def clear(service: str, request: Request, principal: Principal = Depends(require_role("operator"))) -> JSONResponse:
        auth = request.app.state.auth
        try:
            cleared = await asyncio.to_thread(
                clear_persistence, controller.config, controller.paths.haproxy_admin_socket, service, auth.audit_log.path,
                username=principal.username, via=principal.via, client_ip=client_ip(request),
            )  # fmt: skip
        except ClearRefused as refused:
            return JSONResponse({"outcome": OUTCOME[refused.status], "message": refused.message}, status_code=refused.status)
        return JSONResponse({"outcome": "cleared", **cleared.as_dict()})

    return router
