"""The WAF tier's resources of the management API: events (any role) and an exclusion for a false positive (admin),
recorded as a revision through the change front door like every configuration write (writes.py)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ..change.waf_exclusions import ExclusionRequest, exclusion_edit, exclusion_message
from ..engines.waf.events import read_events, summarize
from ..engines.waf.paths import WafPaths
from .answers import ChangeAnswer, WafEventsAnswer
from .auth import Principal, require_role
from .contract import REVISION_OPTIONAL, answers
from .writes import ApiError, Writer, base_revision_of

READ = require_role("viewer", "operator")
ADMIN = require_role("admin")


def waf_router(writer: Writer) -> APIRouter:
    router = APIRouter(tags=["waf"])

    @router.get(
        "/waf/events",
        summary="Requests the WAF blocked or detected, newest first, with counts per rule and service",
        **answers(WafEventsAnswer, 401),
    )
    async def events(service: str | None = None, limit: int = Query(100, ge=1, le=10_000),
                     _: Principal = Depends(READ)) -> dict:  # fmt: skip
        found = await asyncio.to_thread(read_events, WafPaths(writer.controller.paths.root), service, limit)
        return {"events": [e.as_dict() for e in found], "summary": summarize(found)}

    @router.post(
        "/waf/exclusions",
        summary="Add an exclusion to a WAF policy (admin): a new revision",
        openapi_extra=REVISION_OPTIONAL,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409),
    )
    async def exclude(body: ExclusionRequest, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            base = base_revision_of(request, body.base_revision, required=False)
        except ApiError as exc:  # a malformed If-Match, or one that disagrees with base_revision: 400, not a 500
            return exc.response()
        return await writer.write(request, principal, base, exclusion_edit(body), action="waf.exclusion.add",
                                  target=body.policy, message=exclusion_message(body))  # fmt: skip

    return router
