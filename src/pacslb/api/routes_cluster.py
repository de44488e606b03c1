"""The cluster on the management API (issue 20): GET /api/v1/cluster (every node: address, health, the revision it
runs, drained, the VIPs it announces), POST /api/v1/cluster/nodes/{node}/drain and /undrain (operator), the same
dictionaries as `pacslb cluster status --json` and `pacslb cluster drain|undrain NODE`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import Field

from .auth import Principal, require_role
from .contract import Answer, answers

READ = require_role("viewer", "operator")


class ClusterNodeAnswer(Answer):
    name: str
    address: str
    etcd_member: bool
    online: bool | None = Field(description="its member key is in etcd (its controller renews its lease); null: etcd unread")
    healthy: bool | None = None
    health: str | None = None
    revision: int | None = Field(default=None, description="the cluster revision it runs")
    error: str | None = Field(default=None, description="why it does not run the latest revision")
    drained: bool | None = None
    left: bool | None = None
    vips: list[str] | None = Field(default=None, description="the VIPs it announces (when its routing engine reports them)")
    seen_at: float | None = None


class ClusterStatusAnswer(Answer):
    configured: bool = Field(description="false: this appliance has no cluster section (and nothing else is said)")
    cluster: str | None = None
    node: str | None = Field(default=None, description="this node")
    latest_revision: int | None = Field(default=None, description="the cluster's latest revision (etcd's counter)")
    runs: int | None = Field(default=None, description="the cluster revision this node runs")
    etcd: dict[str, Any] | None = None
    nodes: list[ClusterNodeAnswer] = Field(default_factory=list)


class ClusterActionAnswer(Answer):
    ok: bool
    message: str


def _cluster(controller: Any) -> Any:
    return getattr(controller, "cluster", None)


def cluster_router(controller: Any) -> APIRouter:
    router = APIRouter()

    @router.get("/cluster", tags=["status"], summary="The cluster's nodes, their health, revision and drain",
                **answers(ClusterStatusAnswer, 401))  # fmt: skip
    async def status(_: Principal = Depends(READ)) -> dict:
        cluster = _cluster(controller)
        return await cluster.status() if cluster is not None else {"configured": False}

    async def drain(node: str, drained: bool) -> JSONResponse:
        cluster = _cluster(controller)
        if cluster is None:
            return JSONResponse(
                {"ok": False, "outcome": "refused", "message": "this appliance is not a cluster node"}, status_code=409
            )
        code, body = await cluster.drain(node, drained)
        return JSONResponse(body, status_code=code)

    @router.post("/cluster/nodes/{node}/drain", tags=["cluster"], summary="Drain a node: it withdraws its VIPs (operator)",
                 **answers(ClusterActionAnswer, 401, 403, 404, 409, 503))  # fmt: skip
    async def drain_node(node: str, _: Principal = Depends(require_role("operator"))) -> JSONResponse:
        return await drain(node, True)

    @router.post("/cluster/nodes/{node}/undrain", tags=["cluster"], summary="Return a drained node (operator)",
                 **answers(ClusterActionAnswer, 401, 403, 404, 409, 503))  # fmt: skip
    async def undrain_node(node: str, _: Principal = Depends(require_role("operator"))) -> JSONResponse:
        return await drain(node, False)

    return router
