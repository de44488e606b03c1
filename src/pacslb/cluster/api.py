"""The cluster on the controller API (issue 20): GET /api/v1/cluster, POST /api/v1/cluster/nodes/{node}/drain and
/undrain, POST /api/v1/cluster/join and /leave (`pacslb cluster status|drain|undrain|join|leave`), GET
/api/v1/cluster/members and POST /api/v1/cluster/rejoin (`pacslb cluster members|rejoin`: etcd's membership,
cluster/members.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..api.contract import answers
from ..api.routes_cluster import ClusterActionAnswer, ClusterMembersAnswer, ClusterStatusAnswer
from ..controller import API_PREFIX
from .state import ClusterState


def cluster_router(cluster: ClusterState) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/cluster")

    @router.get("", summary="The cluster's nodes, their health, revision and drain", **answers(ClusterStatusAnswer))
    async def status() -> dict:
        return await cluster.status()

    @router.post("/nodes/{node}/drain", summary="Drain a node", **answers(ClusterActionAnswer, 404, 409, 503))
    async def drain(node: str) -> JSONResponse:
        code, body = await cluster.drain(node, True)
        return JSONResponse(body, status_code=code)

    @router.post("/nodes/{node}/undrain", summary="Return a drained node", **answers(ClusterActionAnswer, 404, 409, 503))
    async def undrain(node: str) -> JSONResponse:
        code, body = await cluster.drain(node, False)
        return JSONResponse(body, status_code=code)

    @router.post("/join", summary="This node (back) in the cluster", **answers(ClusterActionAnswer, 409, 503))
    async def join() -> JSONResponse:
        code, body = await cluster.join()
        return JSONResponse(body, status_code=code)

    @router.post("/leave", summary="This node leaves the cluster (drained, no further revision)",
                 **answers(ClusterActionAnswer, 409, 503))  # fmt: skip
    async def leave() -> JSONResponse:
        code, body = await cluster.leave()
        return JSONResponse(body, status_code=code)

    @router.get("/members", summary="etcd's members: name, ID, URLs, started, leader",
                **answers(ClusterMembersAnswer, 409, 503))  # fmt: skip
    async def members() -> JSONResponse:
        code, body = await cluster.members()
        return JSONResponse(body, status_code=code)

    @router.post("/rejoin", summary="This node's etcd member again, on an empty data directory",
                 **answers(ClusterActionAnswer, 409, 503, 504))  # fmt: skip
    async def rejoin(force: bool = False) -> JSONResponse:
        code, body = await cluster.rejoin(force)
        return JSONResponse(body, status_code=code)

    return router
