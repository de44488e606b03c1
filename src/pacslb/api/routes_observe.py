"""Reading the appliance: liveness, live status, revisions (and rollback), logs, metrics."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..change.requests import RollbackChange
from ..controller.status import ApplianceStatus
from ..store import StoreError
from ..store.history import revision_diff
from .answers import PROMETHEUS, ChangeAnswer, DiffAnswer, HealthAnswer, LogAnswer, RevisionAnswer, RevisionsAnswer
from .auth import Principal, current_principal, require_role
from .contract import REVISION_OPTIONAL, answers
from .metrics import ControllerMetrics
from .writes import ApiError, Writer, base_revision_of, origin_of

READ = require_role("viewer", "operator")
ADMIN = require_role("admin")
MAX_LOG_LINES = 5000
MAX_ID = 2**53  # SQLite integers are 64-bit: larger ids exist nowhere, and must not reach the store
RevId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a revision id")]
OptionalRevId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


RollbackWrite = RollbackChange  # the one request schema of a change (change/requests.py)


def tail(path: Path, lines: int, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
    """The last `lines` lines of a file (reading at most `max_bytes` from its end); [] when it does not exist."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            step, data = 64 * 1024, b""
            while size > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
                start = max(0, size - step)
                f.seek(start)
                data = f.read(size - start) + data
                size = start
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:] if lines else []


def observe_router(writer: Writer, metrics: ControllerMetrics, controller_log: Path | None) -> APIRouter:
    router = APIRouter()
    controller = writer.controller

    @router.get(
        "/health",
        tags=["status"],
        summary="Liveness (no authentication): 200 when HAProxy serves, else 503",
        responses={
            200: {"model": HealthAnswer, "description": "HAProxy serves"},
            503: {"model": HealthAnswer, "description": "HAProxy does not serve: `reason` says why"},
        },
        response_model=None,
    )
    async def health() -> JSONResponse:
        ok, reason = await asyncio.to_thread(controller.healthy)
        return JSONResponse({"ok": ok, "reason": reason}, status_code=200 if ok else 503)

    @router.get("/status", tags=["status"], response_model=ApplianceStatus,
                summary="Live state of every virtual service and real server", responses=answers(None, 401)["responses"])  # fmt: skip
    async def status(_: Principal = Depends(READ)) -> ApplianceStatus:
        return await asyncio.to_thread(controller.status)

    # --- revisions -------------------------------------------------------------------------------

    @router.get(
        "/revisions",
        tags=["revisions"],
        summary="The latest revisions first (without their configurations)",
        **answers(RevisionsAnswer, 401),
    )
    async def revisions(_: Principal = Depends(READ), limit: int = Query(50, ge=1, le=10_000),
                        before: OptionalRevId = None) -> dict:  # fmt: skip
        store = controller.changes.store
        found = await asyncio.to_thread(store.list, limit, before)
        return {"current": await asyncio.to_thread(store.current_id), "revisions": [r.summary() for r in found]}

    @router.get(
        "/revisions/{rev_id}",
        tags=["revisions"],
        summary="One revision, with its whole configuration",
        **answers(RevisionAnswer, 401, 404),
    )
    async def revision(rev_id: RevId, _: Principal = Depends(READ)) -> JSONResponse:
        found = await asyncio.to_thread(controller.changes.store.get, rev_id)
        if found is None:
            return ApiError(404, await asyncio.to_thread(controller.changes.store.missing, rev_id)).response()
        return JSONResponse(found.as_dict())

    async def diff_answer(from_id: int | None, to_id: int | None) -> JSONResponse:
        """The diff between two revisions (None: the current one, its parent); 404 naming a missing one."""
        try:
            found = await asyncio.to_thread(
                revision_diff, controller.changes.store, from_id, to_id, controller.changes.secret_store()
            )
        except StoreError as exc:
            return ApiError(404, str(exc)).response()
        return JSONResponse(found.as_dict())

    @router.get("/revisions/{rev_id}/diff", tags=["revisions"],
                summary="What changed from `from` (default: its parent) to this revision, in the model's words",
                **answers(DiffAnswer, 401, 404))  # fmt: skip
    async def revision_diff_route(rev_id: RevId, _: Principal = Depends(READ),
                                  from_id: int | None = Query(None, alias="from", ge=1, le=MAX_ID)) -> JSONResponse:  # fmt: skip
        return await diff_answer(from_id, rev_id)

    @router.get(
        "/diff",
        tags=["revisions"],
        summary="Diff between two revisions (default: the current one and its parent)",
        **answers(DiffAnswer, 401, 404),
    )
    async def diff(_: Principal = Depends(READ), from_id: int | None = Query(None, alias="from", ge=1, le=MAX_ID),
                   to_id: int | None = Query(None, alias="to", ge=1, le=MAX_ID)) -> JSONResponse:  # fmt: skip
        return await diff_answer(from_id, to_id)

    @router.post(
        "/revisions/{rev_id}/rollback",
        tags=["revisions"],
        summary="Run an earlier revision again (admin)",
        openapi_extra=REVISION_OPTIONAL,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409),
    )
    async def rollback(
        rev_id: RevId, body: RollbackWrite, request: Request, principal: Principal = Depends(ADMIN)
    ) -> JSONResponse:
        try:
            base = base_revision_of(request, body.base_revision, required=False)
        except ApiError as exc:
            writer._audit(request, principal, "revision.rollback", f"revision {rev_id}", exc.outcome.value,
                          {"message": exc.message})  # fmt: skip
            return exc.response()
        result = await controller.changes.rollback(rev_id, origin=origin_of(request, principal), message=body.message,
                                                   dry_run=body.dry_run, base_revision=base)  # fmt: skip
        return await writer.answer(result)

    # --- logs ------------------------------------------------------------------------------------

    @router.get(
        "/logs/{name}",
        tags=["status"],
        summary="The tail of the HAProxy log or the controller log",
        **answers(LogAnswer, 401, 404),
    )
    async def logs(name: str, _: Principal = Depends(READ), lines: int = Query(200, ge=1, le=MAX_LOG_LINES)) -> JSONResponse:
        files = {"haproxy": controller.paths.haproxy_log, "controller": controller_log}
        path = files.get(name)
        if name not in files:
            return ApiError(404, f"there is no log {name!r}: choose haproxy or controller").response()
        if path is None:
            return ApiError(404, "the controller logs to stderr only (no log file)").response()
        found = await asyncio.to_thread(tail, path, lines)
        return JSONResponse({"log": name, "file": str(path), "lines": found})

    return router


async def haproxy_metrics(socket_path: Path) -> str:
    """HAProxy's own exporter, through its Unix-socket frontend; '' when it does not answer."""
    if not socket_path.exists():
        return ""
    import httpx

    try:
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket_path)), timeout=5.0) as client:
            response = await client.get("http://haproxy/metrics")
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


def metrics_response(text: str) -> Response:
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def metrics_router(controller: Any, metrics: ControllerMetrics, socket_path: Path, authenticated: bool = True) -> APIRouter:
    """GET /metrics: the controller's metrics, then HAProxy's (behind authentication, any role, unless not `authenticated`)."""
    router = APIRouter(tags=["metrics"])
    dependencies = [Depends(current_principal)] if authenticated else []

    declared = answers(None, 401, media=PROMETHEUS, description="Prometheus text format")
    if not authenticated:
        declared["responses"].pop(401)

    @router.get("/metrics", dependencies=dependencies,
                summary="Prometheus metrics: the controller's and HAProxy's exporter", **declared)  # fmt: skip
    async def get_metrics() -> Response:
        ours = metrics.render(await asyncio.to_thread(_live_gauges, controller))
        return metrics_response(ours + await haproxy_metrics(socket_path))

    return router


def _live_gauges(controller: Any) -> dict:
    """Gauges read at scrape time: the current revision, whether HAProxy serves."""
    try:
        current = controller.changes.store.current_id() or 0
    except StoreError:
        current = 0
    ok, _ = controller.healthy()
    up: list[tuple[dict[str, str], float]] = []
    passed: list[tuple[dict[str, str], float]] = []
    if ok:
        try:
            status = controller.status()
        except Exception:  # noqa: BLE001 - a scrape must answer even when HAProxy does not
            status = None
        for vs in status.virtual_services if status else []:
            for rs in vs.real_servers:
                labels = {"virtual_service": vs.name, "real_server": rs.name}
                up.append(({**labels, "state": rs.state.value}, 1 if rs.state.value in ("UP", "no-check") else 0))
                if rs.check.outcome.value in ("passed", "failed"):
                    passed.append((labels, 1 if rs.check.outcome.value == "passed" else 0))
    alerts = getattr(controller, "alerts", None)
    receivers = alerts.status()["receivers"] if alerts is not None else []
    return {
        "pacslb_alerts_sent_total": (
            "alerts delivered, by receiver",
            "counter",
            [({"receiver": r["name"]}, r["sent"]) for r in receivers],
        ),
        "pacslb_alerts_dropped_total": (
            "alerts dropped (queue full, or every attempt failed), by receiver",
            "counter",
            [({"receiver": r["name"]}, r["dropped"]) for r in receivers],
        ),
        "pacslb_alerts_queued": (
            "alerts waiting for delivery, by receiver",
            "gauge",
            [({"receiver": r["name"]}, r["queued"]) for r in receivers],
        ),
        "pacslb_revision_current": ("id of the revision that runs", "gauge", [({}, current)]),
        "pacslb_haproxy_up": ("1 when HAProxy serves and its stats socket answers", "gauge", [({}, 1 if ok else 0)]),
        "pacslb_real_server_up": (
            "1 when the real server takes new traffic (UP, or not checked); its state as a label",
            "gauge",
            up,
        ),
        "pacslb_health_check_passed": (
            "1 when the last health check of the real server passed, 0 when it failed",
            "gauge",
            passed,
        ),
    }
