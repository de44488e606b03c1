"""The HA pair on the controller API: GET /api/v1/ha (both nodes, VRRP record, split brain, last push),
POST /api/v1/ha/promote and /api/v1/ha/demote (`pacslb ha status|promote|demote`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ..api.answers import HaActionAnswer, HaStatusAnswer
from ..api.contract import answers
from ..controller import API_PREFIX
from .pair import HAPair


def ha_router(pair: HAPair) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/ha")

    @router.get("", summary="Both nodes, the VRRP record, split brain, the last push", **answers(HaStatusAnswer))
    async def status() -> dict:
        return await asyncio.to_thread(pair.status)

    @router.post(
        "/promote", summary="This secondary takes changes (and no configuration from its peer)", **answers(HaActionAnswer)
    )
    async def promote() -> dict:
        return pair.promote()

    @router.post("/demote", summary="This promoted secondary takes the primary's configuration again", **answers(HaActionAnswer))
    async def demote() -> dict:
        return pair.demote()

    return router
