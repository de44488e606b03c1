"""Backup and restore over the management API (admin only, audited): docs/operations.md and docs/api.md.

  POST /api/v1/backup    {passphrase?}  -> the backup file (application/gzip, or application/octet-stream
                                           when encrypted), as an attachment
  POST /api/v1/support-bundle?hours=24  -> the support bundle (application/gzip), secrets redacted (backup/bundle.py)
  POST /api/v1/restore   the backup file as the body (application/octet-stream, at most
                         limits.RESTORE_LIMIT); its passphrase in the X-Backup-Passphrase header;
                         ?replace_certificates=true overwrites certificate files that exist with other content

A restore applies the backup's configuration as one revision through the change front door (config.restore
in the audit log), then replaces users and API keys; the answer is the change's, with `restored`.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..backup import bundle
from ..backup.archive import BackupError
from ..backup.crypto import MAX_PASSPHRASE_LENGTH, BackupCryptoError
from ..backup.operations import backup_name, make_backup, restore_running
from .answers import BACKUP, GZIP, RestoreAnswer
from .auth import Principal, client_ip, require_role
from .contract import answers
from .limits import RESTORE_LIMIT
from .writes import origin_of

ADMIN = require_role("admin")
PASSPHRASE_HEADER = "X-Backup-Passphrase"


class BackupRequest(BaseModel):
    passphrase: str | None = Field(default=None, max_length=MAX_PASSPHRASE_LENGTH,
                                   description="encrypt the backup with this passphrase (scrypt + AES-256-GCM)")  # fmt: skip


def backup_router(controller, auth) -> APIRouter:
    router = APIRouter(tags=["backup"])

    def audit(request: Request, principal: Principal, action: str, outcome: str, detail) -> None:
        auth.audit(principal.username, action, target="appliance", outcome=outcome, client_ip=client_ip(request),
                   via=principal.via, detail=detail)  # fmt: skip

    @router.post("/backup", summary="A backup of the appliance (revisions, secrets, users, API keys, certificates)",
                 **answers(None, 401, 403, 422, media=BACKUP, description="the backup file (octet-stream when encrypted)"))  # fmt: skip
    async def backup(request: Request, body: BackupRequest | None = None, principal: Principal = Depends(ADMIN)) -> Response:
        passphrase = body.passphrase if body is not None else None
        try:
            data, about = await make_backup(controller.paths, passphrase)
        except (BackupError, BackupCryptoError) as exc:
            audit(request, principal, "backup.create", "refused", {"message": str(exc)})
            return JSONResponse({"outcome": "invalid", "message": f"{exc}; no backup was made"}, status_code=422)
        audit(request, principal, "backup.create", "ok", about)
        name = backup_name(time.time())
        return Response(data, media_type="application/octet-stream" if about["encrypted"] else "application/gzip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    @router.post("/restore", summary="Restore a backup: its configuration as one revision, its users and API keys",
                 **answers(RestoreAnswer, 400, 401, 403, 404, 409, 413, 422),
                 openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                "format": "binary"}}}, "required": True}})  # fmt: skip
    async def restore(
        request: Request, replace_certificates: bool = False, principal: Principal = Depends(ADMIN)
    ) -> JSONResponse:
        data = await request.body()
        if len(data) > RESTORE_LIMIT:  # the middleware refuses larger bodies first; this keeps the route honest
            return JSONResponse({"outcome": "invalid", "message": f"a backup is at most {RESTORE_LIMIT} bytes here"}, 413)
        passphrase = request.headers.get(PASSPHRASE_HEADER) or None
        answer = await restore_running(controller.changes, controller.paths, data, passphrase, origin=origin_of(request, principal),
                                       replace_certificates=replace_certificates)  # fmt: skip
        audit(request, principal, "backup.restore", "ok" if answer.ok else answer.body.get("outcome", "refused"),
              {"message": answer.body.get("message"), **(answer.body.get("restored") or {})})  # fmt: skip
        return JSONResponse(answer.body, status_code=answer.status)

    @router.post("/support-bundle", summary="The support bundle: versions, configuration, status, logs, engine files; "
                 "secrets redacted", **answers(None, 401, 403, media=GZIP, description="the support bundle"))  # fmt: skip
    async def support_bundle(request: Request, hours: float = Query(bundle.DEFAULT_HOURS, gt=0, le=bundle.MAX_HOURS),
                             principal: Principal = Depends(ADMIN)) -> Response:  # fmt: skip
        def run() -> bytes:
            status = controller.status().model_dump(mode="json")
            return bundle.pack_bundle(bundle.collect_bundle(controller.paths, status, hours=hours, running=controller.config))

        data = await asyncio.to_thread(run)
        audit(request, principal, "support-bundle.create", "ok", {"hours": hours, "bytes": len(data)})
        name = time.strftime("pacslb-support-%Y%m%d-%H%M%S.tar.gz", time.gmtime())
        return Response(data, media_type="application/gzip", headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return router
