"""The WebUI's verify page: a button that runs `pacslb verify` in the controller, and its report as a table."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ..api.auth import Principal
from ..engines.haproxy.runtime import RuntimeAPIError
from ..verify.report import report_data
from ..verify.runner import verify
from .context import controller_of, page_principal, page_role, render

router = APIRouter(include_in_schema=False)


@router.get("/verify", response_class=HTMLResponse)
async def verify_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    return render(request, "verify.html", principal, report=None, error=None)


@router.post("/verify", response_class=HTMLResponse)
async def run_verify(request: Request, principal: Principal = Depends(page_role("operator"))) -> Response:
    controller = controller_of(request)
    try:
        report = await verify(controller.config, controller.paths.haproxy_admin_socket)
    except RuntimeAPIError as exc:
        return render(request, "verify.html", principal, report=None, error=str(exc))
    return render(request, "verify.html", principal, report=report_data(report), error=None)
