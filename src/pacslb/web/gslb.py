"""The WebUI's GSLB page (issue 19): per name, which sites are answered to which client networks and why, and
every site's health; the same dictionary as GET /api/v1/gslb (linked as the page's JSON alternate)."""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ..api.auth import Principal
from .context import controller_of, page_principal, render

router = APIRouter(include_in_schema=False)


def since(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


@router.get("/gslb", response_class=HTMLResponse)
async def gslb_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    status = await asyncio.to_thread(controller_of(request).gslb_status)
    return render(request, "gslb.html", principal, gslb=status, since=since)


__all__ = ["router"]
