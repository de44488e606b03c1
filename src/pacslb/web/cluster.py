"""The WebUI's cluster page (issue 20): every node, its address, health, the revision it runs, drained, the VIPs it
announces; drain and undrain for operators. The same dictionary as GET /api/v1/cluster (the page's JSON alternate)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import Principal
from .context import controller_of, flash, page_principal, render

router = APIRouter(include_in_schema=False)


def since(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S UTC") if ts else "-"


@router.get("/cluster", response_class=HTMLResponse)
async def cluster_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    cluster = getattr(controller_of(request), "cluster", None)
    status = await cluster.status() if cluster is not None else {"configured": False}
    return render(request, "cluster.html", principal, cluster=status, since=since,
                  may_drain=principal.allowed("operator"))  # fmt: skip


@router.post("/cluster/nodes/{node}/{action}", response_class=HTMLResponse)
async def cluster_drain(request: Request, node: str, action: str, principal: Principal = Depends(page_principal)) -> Response:
    cluster = getattr(controller_of(request), "cluster", None)
    if cluster is None or action not in ("drain", "undrain"):
        flash(request, principal, "this appliance is not a cluster node" if cluster is None else f"no action {action!r}", "error")
    elif not principal.allowed("operator"):
        flash(request, principal, "draining a node needs the role operator or admin", "error")
    else:
        code, body = await cluster.drain(node, action == "drain")
        flash(request, principal, str(body.get("message")), "ok" if code < 400 else "error")
    return RedirectResponse("/cluster", status_code=303)


__all__ = ["router"]
