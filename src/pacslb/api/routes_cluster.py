"""The cluster on the management API (issue 20): GET /api/v1/cluster (every node: address, health, the revision it
runs, drained, the VIPs it announces), POST /api/v1/cluster/nodes/{node}/drain and /undrain (operator), the same
dictionaries as `pacslb cluster status --json` and `pacslb cluster drain|undrain NODE`; GET /api/v1/cluster/members
and POST /api/v1/cluster/rejoin (admin: etcd's membership, `pacslb cluster members|rejoin`, cluster/members.py)."""

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


class EtcdMemberAnswer(Answer):
    name: str = Field(description="empty: added and not started yet")
    id: str = Field(description="the member's ID in hexadecimal, as etcdctl prints it")
    peer_urls: list[str]
    client_urls: list[str]
    started: bool
    leader: bool


class ClusterMembersAnswer(Answer):
    ok: bool
    members: list[EtcdMemberAnswer] = Field(default_factory=list)
    leader: str | None = Field(default=None, description="the leader's ID (null: the member asked knows none)")
    this_node: dict[str, Any] | None = Field(default=None, description="this node's member: needs_rejoin, rejoining")


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

    def not_a_node() -> JSONResponse:
        return JSONResponse({"ok": False, "outcome": "refused", "message": "this appliance is not a cluster node"}, 409)

    @router.get("/cluster/members", tags=["cluster"], summary="etcd's members: name, ID, URLs, started, leader (admin)",
                **answers(ClusterMembersAnswer, 401, 403, 409, 503))  # fmt: skip
    async def etcd_members(_: Principal = Depends(require_role("admin"))) -> JSONResponse:
        cluster = _cluster(controller)
        if cluster is None:
            return not_a_node()
        code, body = await cluster.members()
        return JSONResponse(body, status_code=code)

    @router.post("/cluster/rejoin", tags=["cluster"],
                 summary="This node's etcd member again, on an empty data directory (admin; its data lost or corrupt)",
                 **answers(ClusterActionAnswer, 401, 403, 409, 503, 504))  # fmt: skip
    async def rejoin(force: bool = False, _: Principal = Depends(require_role("admin"))) -> JSONResponse:
        cluster = _cluster(controller)
        if cluster is None:
            return not_a_node()
        code, body = await cluster.rejoin(force)
        return JSONResponse(body, status_code=code)

    return router
