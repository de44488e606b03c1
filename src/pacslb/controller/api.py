"""The controller API: HTTP over the Unix socket StatePaths.controller_socket (mode 0600).

  GET  /api/v1/health   200 {"ok": true, ...} when HAProxy serves; 503 with the reason otherwise
  GET  /api/v1/status   every virtual service and real server with its live state (ApplianceStatus)
  POST /api/v1/stop     202: the controller stops HAProxy and everything it started, then exits

and, given the change front door (change/service.py), the routes of api_changes.py: apply, runtime control
of real servers, revisions, diff, rollback; given the HA pair, the routes of ha/api.py; given a cluster node's
routing, those of cluster/routing_api.py (GET /api/v1/cluster/routing, POST /api/v1/cluster/drain).

`create_app` takes anything with the controller's small surface (`status`, `healthy`, `request_stop`),
so the API is tested in-process with a stand-in.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ..api.answers import HealthAnswer, StopAnswer
from ..api.contract import answers
from ..api.contract import install as install_contract
from ..request_limits import CONTROLLER_BODY_LIMIT, JsonBodyLimit
from ..serving import InLoopServer
from . import API_PREFIX
from .status import ApplianceStatus


class ControllerSurface(Protocol):
    def status(self) -> ApplianceStatus: ...

    def healthy(self) -> tuple[bool, str]: ...

    def request_stop(self, reason: str) -> None: ...


def create_app(controller: ControllerSurface, changes: Any = None, ha: Any = None, gslb: Any = None,
               alerts: Any = None, cluster: Any = None, routing: Any = None) -> FastAPI:  # fmt: skip
    app = FastAPI(
        title="pacslb controller",
        description="Live state and control of one pacslb appliance.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.add_middleware(JsonBodyLimit, max_bytes=CONTROLLER_BODY_LIMIT)  # bounded bodies, JSON not nested too deep

    @app.get(f"{API_PREFIX}/health", summary="200 when HAProxy serves, else 503", response_model=None,
             responses={200: {"model": HealthAnswer, "description": "serving"}, 503: {"model": HealthAnswer,
                        "description": "not serving: `reason` says why"}})  # fmt: skip
    async def health() -> JSONResponse:
        ok, reason = await asyncio.to_thread(controller.healthy)
        return JSONResponse({"ok": ok, "reason": reason, "controller_pid": os.getpid()}, status_code=200 if ok else 503)

    @app.get(f"{API_PREFIX}/status", response_model=ApplianceStatus, summary="Every virtual service and real server")
    async def status() -> ApplianceStatus:
        return await asyncio.to_thread(controller.status)

    @app.post(f"{API_PREFIX}/stop", status_code=202, summary="Stop the appliance", **answers(StopAnswer, status=202))
    async def stop() -> dict:
        # Let the answer go out first; the controller stops in its main task.
        asyncio.get_running_loop().call_later(0.05, controller.request_stop, "asked through the API")
        return {"stopping": True, "controller_pid": os.getpid()}

    if changes is not None:
        from .api_changes import changes_router

        app.include_router(changes_router(changes))
        from .api_waf import waf_router  # the WAF tier (issue 18): events, exclusions

        app.include_router(waf_router(changes, changes.paths.root))
    if ha is not None:  # the HA pair: GET /api/v1/ha, POST promote, demote
        from ..ha.api import ha_router

        app.include_router(ha_router(ha))
    if gslb is not None:  # GSLB (issue 19): GET /api/v1/gslb, `pacslb gslb status`

        @app.get(f"{API_PREFIX}/gslb")
        async def gslb_status() -> dict:
            return await asyncio.to_thread(gslb)

    if cluster is not None:  # a cluster node (issue 20): GET /api/v1/cluster, drain, join, leave
        from ..cluster.api import cluster_router

        app.include_router(cluster_router(cluster))
    if alerts is not None:  # GET /api/v1/alerts, POST /api/v1/alerts/test
        from ..alerts.api import alerts_router

        app.include_router(alerts_router(alerts))
    if routing is not None:  # a cluster node's routing (issue 20): GET /api/v1/cluster/routing, POST .../drain
        from ..cluster.routing_api import routing_router

        app.include_router(routing_router(*routing))
    # the error body, 413 where a body is read, 405's Allow; no credentials here (the socket's mode 0600 guards it)
    install_contract(app, None, own_validation_errors=False)
    return app


class ApiServer:
    """The uvicorn server of the API, running inside the controller's event loop."""

    def __init__(self, server: InLoopServer, socket_path: Path) -> None:
        self.server = server
        self.socket_path = socket_path

    async def close(self) -> None:
        await self.server.close()
        self.socket_path.unlink(missing_ok=True)


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket readable and writable by its owner only (the API can stop the appliance)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(controller: ControllerSurface, socket_path: Path, changes: Any = None, ha: Any = None,
                gslb: Any = None, alerts: Any = None, cluster: Any = None, routing: Any = None) -> ApiServer:  # fmt: skip
    """Start uvicorn on the Unix socket inside the running event loop; return once it listens."""
    server = InLoopServer(
        create_app(controller, changes, ha, gslb, alerts, cluster, routing), bind_unix_socket(socket_path), uds=str(socket_path)
    )
    await server.start()
    return ApiServer(server, socket_path)
