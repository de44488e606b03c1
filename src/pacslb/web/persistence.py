"""The WebUI's "Clear persistence table" button on a service page (issue 15; src/pacslb/persistence.py).

The form asks for confirmation in the browser (data-confirm), needs the operator role (or admin) and the
session's CSRF token, and comes back to the service page with the outcome as a flash message. Audited.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ..api.auth import Principal, client_ip
from ..persistence import ClearRefused, clear_persistence
from .context import controller_of, flash, page_role

router = APIRouter(include_in_schema=False)


@router.post("/services/{service}/persistence/clear")
async def clear_persistence_table(request: Request, service: str,
                                  principal: Principal = Depends(page_role("operator"))) -> Response:  # fmt: skip
    controller = controller_of(request)
    try:
        cleared = await asyncio.to_thread(
            clear_persistence, controller.config, controller.paths.haproxy_admin_socket, service,
            request.app.state.auth.audit_log.path, username=principal.username, via=principal.via,
            client_ip=client_ip(request),
        )  # fmt: skip
    except ClearRefused as refused:
        flash(request, principal, refused.message, "error")
    else:
        flash(request, principal, cleared.message, "ok")
    return RedirectResponse(f"/services/{quote(service, safe='')}", status_code=303)
