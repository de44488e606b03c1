"""`POST /api/v1/verify`: the same as `pacslb verify`, run by the controller."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from ..engines.haproxy.runtime import RuntimeAPIError
from ..verify.report import report_data
from ..verify.runner import verify
from .answers import VerifyAnswer
from .auth import Principal, require_role
from .contract import answers


def verify_router(controller: Any) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/verify",
        tags=["status"],
        summary="Send a request through every virtual service, listener and rule; report who answered (operator)",
        **answers(VerifyAnswer, 401, 403, 503),
    )
    async def run_verify(
        timeout: float = Query(5.0, ge=0.1, le=60.0, description="seconds per route"),
        _: Principal = Depends(require_role("operator")),  # it sends traffic to the real servers
    ) -> dict:
        """Each route with its request, the service and real server that answered, status, time and verdict;
        `ok` is false when any expectation failed or a rule is shadowed (the CLI then exits 1)."""
        try:
            report = await verify(controller.config, controller.paths.haproxy_admin_socket, timeout)
        except RuntimeAPIError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        return report_data(report)

    return router
