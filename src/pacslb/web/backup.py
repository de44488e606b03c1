"""The WebUI's backup page (admin only): download a backup (optionally encrypted), upload one to restore.

The same operations as the API (backup/operations.py), audited the same way; the restore's outcome comes
back as the page's flash message after a redirect.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import Principal, client_ip
from ..api.limits import RESTORE_LIMIT
from ..api.writes import origin_of
from ..backup.archive import BackupError
from ..backup.crypto import MIN_PASSPHRASE_LENGTH, BackupCryptoError
from ..backup.operations import backup_name, make_backup, restore_running
from .context import controller_of, flash, page_role, render

router = APIRouter(include_in_schema=False)
ADMIN = page_role("admin")


def _audit(request: Request, principal: Principal, action: str, outcome: str, detail) -> None:
    request.app.state.auth.audit(principal.username, action, target="appliance", outcome=outcome,
                                 client_ip=client_ip(request), via=principal.via, detail=detail)  # fmt: skip


@router.get("/backup", response_class=HTMLResponse)
async def backup_page(request: Request, principal: Principal = Depends(ADMIN)) -> Response:
    return render(request, "backup.html", principal, min_passphrase=MIN_PASSPHRASE_LENGTH, limit_mib=RESTORE_LIMIT // 2**20)


@router.post("/backup/download")
async def download(request: Request, passphrase: str = Form(""), principal: Principal = Depends(ADMIN)) -> Response:
    try:
        data, about = await make_backup(controller_of(request).paths, passphrase or None)
    except (BackupError, BackupCryptoError) as exc:
        _audit(request, principal, "backup.create", "refused", {"message": str(exc)})
        flash(request, principal, f"No backup was made: {exc}", "error")
        return RedirectResponse("/backup", status_code=303)
    _audit(request, principal, "backup.create", "ok", about)
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{backup_name(time.time())}"'})  # fmt: skip


@router.post("/backup/restore")
async def upload(
    request: Request,
    file: UploadFile = File(...),
    passphrase: str = Form(""),
    replace_certificates: bool = Form(False),
    principal: Principal = Depends(ADMIN),
) -> Response:
    data = await file.read(RESTORE_LIMIT + 1)
    controller = controller_of(request)
    answer = await restore_running(controller.changes, controller.paths, data, passphrase or None,
                                   origin=origin_of(request, principal), replace_certificates=replace_certificates,
                                   source=file.filename or "an uploaded backup")  # fmt: skip
    _audit(request, principal, "backup.restore", "ok" if answer.ok else answer.body.get("outcome", "refused"),
           {"message": answer.body.get("message"), **(answer.body.get("restored") or {})})  # fmt: skip
    problems = [f"{p['path']}: {p['message']}" if p.get("path") else p["message"] for p in answer.body.get("problems", [])]
    flash(request, principal, " ".join([answer.body.get("message", ""), *problems]), "ok" if answer.ok else "error")
    return RedirectResponse("/backup", status_code=303)
