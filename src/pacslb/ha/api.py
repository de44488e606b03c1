"""The HA pair on the controller API: GET /api/v1/ha (both nodes, VRRP record, split brain, last push),
POST /api/v1/ha/promote and /api/v1/ha/demote (`pacslb ha status|promote|demote`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ..controller import API_PREFIX
from .pair import HAPair


def ha_router(pair: HAPair) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/ha")

    @router.get("")
    async def status() -> dict:
        return await asyncio.to_thread(pair.status)

    @router.post("/promote")
    async def promote() -> dict:
        return pair.promote()

    @router.post("/demote")
    async def demote() -> dict:
        return pair.demote()

    return router
