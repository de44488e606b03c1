"""GSLB on the management API (issue 19): GET /api/v1/gslb, per name which sites are answered to which client
networks and why, and every site's health (the same dictionary as `pacslb gslb status --json`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from .answers import GslbAnswer
from .auth import Principal, require_role
from .contract import answers

READ = require_role("viewer", "operator")


def gslb_router(controller) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/gslb",
        tags=["status"],
        summary="GSLB: per name, which sites are answered to which client networks and why",
        **answers(GslbAnswer, 401),
    )
    async def gslb(_: Principal = Depends(READ)) -> dict:
        return await asyncio.to_thread(controller.gslb_status)

    return router
