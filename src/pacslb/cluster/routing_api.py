"""The cluster node's routing on the controller API (the CLI's Unix socket):

GET  /api/v1/cluster/routing   what this node announces and withholds (with reasons), drained or not, the
                               connections still established on it (cluster/established.py), and BIRD's BGP
                               and BFD sessions
POST /api/v1/cluster/drain     {"drained": true|false}: drain this node (every VIP withdrawn) or return it;
                               answers the routing status once BIRD runs the result
"""

from __future__ import annotations

from typing import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from ..controller import API_PREFIX
from ..model.base import Strict


class DrainRequest(Strict):
    drained: bool = Field(description="true: announce no VIP (maintenance); false: announce what the node can serve")


def routing_router(status: Callable[[], dict], drain: Callable[[bool], Awaitable[dict]]) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/cluster")

    @router.get("/routing", summary="The VIPs this node announces and withholds, BGP and BFD sessions")
    async def routing() -> dict:
        return status()

    @router.post("/drain", summary="Drain this cluster node (withdraw every VIP) or return it", response_model=None)
    async def set_drain(request: DrainRequest) -> dict | JSONResponse:
        if not status().get("configured"):
            return JSONResponse({"detail": "this node is not in a cluster (the configuration has no cluster section): "
                                 "nothing to drain; an HA pair drains real servers with `pacslb server drain`"}, 409)  # fmt: skip
        return await drain(request.drained)

    return router
