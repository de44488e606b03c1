"""The WebUI's WAF page: events and counts per rule and per service, and one click to exclude a rule for a false
positive (a revision through the change front door, as the management API's POST /api/v1/waf/exclusions)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import Principal
from ..api.writes import origin_of
from ..change.result import Outcome
from ..change.waf_exclusions import ExclusionRequest, exclusion_edit, exclusion_message
from ..engines.waf.events import read_events, summarize
from ..engines.waf.paths import WafPaths
from .context import controller_of, flash, page_principal, page_role, render

router = APIRouter(include_in_schema=False)
SHOWN = 200


@router.get("/waf", response_class=HTMLResponse)
async def waf_page(request: Request, service: str | None = None, principal: Principal = Depends(page_principal)) -> Response:
    controller = controller_of(request)
    events = await asyncio.to_thread(read_events, WafPaths(controller.paths.root), service, SHOWN)
    return render(request, "waf.html", principal, events=events, summary=summarize(events), service=service)


@router.post("/waf/exclusions")
async def add_exclusion(
    request: Request,
    policy: str = Form(...),
    rule_id: int = Form(...),
    parameter: str = Form(""),
    reason: str = Form(""),
    principal: Principal = Depends(page_role("admin")),
) -> Response:
    """The 'exclude' button of an event: the rule, for the parameter it matched when there is one."""
    exclusion: dict = {
        "rule_ids": [rule_id],
        "reason": reason or f"false positive excluded from the WebUI by {principal.username}",
    }
    if parameter:
        exclusion["parameter"] = parameter
    body = ExclusionRequest(policy=policy, exclusion=exclusion)
    result = await controller_of(request).changes.apply(
        edit=exclusion_edit(body), origin=origin_of(request, principal), message=exclusion_message(body) + " (WebUI)",
        action="waf.exclusion.add", target=policy,
    )  # fmt: skip
    ok = result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED)
    problems = "; ".join(f"{p.path}: {p.message}" for p in result.problems)
    flash(request, principal, result.message + (f" ({problems})" if problems else ""), "ok" if ok else "error")
    return RedirectResponse("/waf", status_code=303)
