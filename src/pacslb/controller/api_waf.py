"""The WAF tier's routes of the controller API (its Unix socket, for `pacslb waf`): events, and an exclusion
added as a revision through the change front door."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..api.answers import ChangeAnswer, WafEventsAnswer
from ..api.contract import answers
from ..change.waf_exclusions import ExclusionRequest, exclusion_edit, exclusion_message
from ..engines.waf.events import read_events, summarize
from ..engines.waf.paths import WafPaths
from . import API_PREFIX
from .api_changes import _answer, _origin


class AuthoredExclusion(ExclusionRequest):
    author: str | None = None


def waf_router(changes: Any, state_dir: Path) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)

    @router.get("/waf/events", summary="Requests the WAF blocked or detected, newest first", **answers(WafEventsAnswer))
    async def events(service: str | None = None, limit: int = Query(100, ge=1, le=10_000)) -> dict:
        found = await asyncio.to_thread(read_events, WafPaths(state_dir), service, limit)
        return {"events": [e.as_dict() for e in found], "summary": summarize(found)}

    @router.post(
        "/waf/exclusions", summary="Add an exclusion to a WAF policy: a new revision", **answers(ChangeAnswer, 400, 404, 409)
    )
    async def exclude(request: AuthoredExclusion) -> JSONResponse:
        result = await changes.apply(
            edit=exclusion_edit(request), base_revision=request.base_revision, origin=_origin(request.author),
            message=exclusion_message(request), action="waf.exclusion.add", target=request.policy,
        )  # fmt: skip
        return _answer(result)

    return router
