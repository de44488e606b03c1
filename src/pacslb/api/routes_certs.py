"""Certificates: upload (validated), list with expiry, self-signed, CSR, assign to a virtual service, hot swap.

Files live in <state>/certs/NAME.pem (certificate, chain, key; mode 0600); a CSR's key waits in
NAME.key until its certificate is uploaded. Replacing a certificate that a running virtual service
uses writes the file and hands it to HAProxy with `set ssl cert` + `commit ssl cert`: no reload. If
HAProxy refuses, the previous file is put back and nothing changed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .. import pki
from ..model.files import MAX_PEM_BYTES, Problem, read_named_file
from . import certs
from .answers import CertificateInfo, CertificatesAnswer, CertificateStored, ChangeAnswer, CSRAnswer, OutcomeAnswer
from .auth import Principal, client_ip, require_role
from .certs import CertificateProblems, certificate_file, check_name, describe, validate_bundle
from .certs import used_by as services_using
from .contract import REVISION_REQUIRED, answers
from .writes import ApiError, Writer, base_revision_of, find, origin_of

READ = require_role("viewer", "operator")
ADMIN = require_role("admin")


class CertificateUpload(BaseModel):
    name: str = Field(max_length=64, description="file name in the state directory's certs/ (NAME.pem)")
    certificate: str = Field(max_length=200_000, description="PEM certificate (a chain may follow it)")
    key: str | None = Field(default=None, max_length=100_000, description="PEM private key; omitted after a CSR made here")
    chain: str | None = Field(default=None, max_length=200_000, description="PEM intermediate certificates, issuer after issued")


class CertificateReplace(BaseModel):
    certificate: str = Field(max_length=200_000)
    key: str | None = Field(default=None, max_length=100_000)
    chain: str | None = Field(default=None, max_length=200_000)


class SelfSignedRequest(BaseModel):
    name: str = Field(max_length=64)
    common_name: str = Field(min_length=1, max_length=64)
    sans: list[str] = Field(default_factory=list, max_length=100, description="DNS names and IP addresses")
    days: int = Field(default=365, ge=1, le=3650)
    key_type: Literal["ec", "rsa"] = "ec"


class CSRRequest(BaseModel):
    name: str = Field(max_length=64)
    common_name: str = Field(min_length=1, max_length=64)
    sans: list[str] = Field(default_factory=list, max_length=100)
    organization: str | None = Field(default=None, max_length=64)
    # ECDSA P-256 unless asked: several times more TLS handshakes per core than RSA 2048 (bench/README.md);
    # "rsa" for a CA or clients that know no ECDSA
    key_type: Literal["ec", "rsa"] = "ec"


class AssignRequest(BaseModel):
    name: str = Field(max_length=64, description="a certificate of GET /api/v1/certificates")
    base_revision: int | None = None
    message: str | None = Field(default=None, max_length=2000)


def certificates_router(writer: Writer) -> APIRouter:
    router = APIRouter(tags=["certificates"])
    controller = writer.controller
    auth = writer.auth
    certs_dir: Path = controller.paths.certs_dir

    def file_of(name: str) -> Path:
        return certificate_file(certs_dir, name)

    def used_by(path: Path) -> list[tuple[str, str]]:
        return services_using(controller, path)

    def entry(path: Path) -> dict[str, Any]:
        item: dict[str, Any] = {"name": path.stem, "file": str(path), "used_by": [vs for vs, _ in used_by(path)]}
        found = read_named_file(path.name, path, MAX_PEM_BYTES, "PEM file")
        if isinstance(found, Problem):
            item["error"] = found.message
            return item
        try:
            item.update(describe(found.data))
        except ValueError as exc:
            item["error"] = str(exc)
        return item

    def audit(request: Request, principal: Principal, action: str, target: str, outcome: str, detail: Any = None) -> None:
        auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                   via=principal.via, detail=detail)  # fmt: skip

    def problems(exc: CertificateProblems) -> JSONResponse:
        return JSONResponse({"outcome": "invalid", "message": f"the certificate cannot be used: {exc}",
                             "problems": exc.problems}, status_code=422)  # fmt: skip

    @router.get(
        "/certificates",
        summary="Every certificate with subject, SANs, issuer, expiry and days left",
        **answers(CertificatesAnswer, 401),
    )
    async def list_certificates(_: Principal = Depends(READ)) -> dict:
        def read() -> list[dict[str, Any]]:
            return [entry(p) for p in sorted(certs_dir.glob("*.pem"))] if certs_dir.is_dir() else []

        return {"certificates": await asyncio.to_thread(read)}

    @router.get("/certificates/{name}", summary="One certificate", **answers(CertificateInfo, 401, 404, 422))
    async def get_certificate(name: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            path = file_of(name)
        except CertificateProblems as exc:
            return problems(exc)
        if not path.exists():
            return ApiError(404, f"there is no certificate {name}").response()
        return JSONResponse(await asyncio.to_thread(entry, path))

    async def store(request: Request, principal: Principal, name: str, bundle: bytes, action: str) -> JSONResponse:
        """Write the file; when running services use it, hot-swap it in HAProxy (old file back on failure): one
        transaction of the change front door (api/certs.py `store`)."""
        stored = await certs.store(controller, origin_of(request, principal), name, bundle, action)
        if not stored.ok:
            return JSONResponse({"outcome": "refused", "message": stored.result.message, "messages": stored.result.messages},
                                status_code=409)  # fmt: skip
        info = await asyncio.to_thread(entry, file_of(name))
        return JSONResponse({"outcome": "applied", "message": stored.message(name), "certificate": info,
                             "hot_swapped": [vs for vs, _ in stored.users]})  # fmt: skip

    def pending_key(name: str) -> bytes | None:
        return certs.pending_key(certs_dir, name)

    @router.post(
        "/certificates", summary="Upload a certificate, its key and chain (admin)", **answers(CertificateStored, 401, 403, 409)
    )
    async def upload(body: CertificateUpload, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            name = check_name(body.name)
            if file_of(name).exists():
                return ApiError(
                    409, f"certificate {name} exists already: replace it with PUT /api/v1/certificates/{name}"
                ).response()
            bundle, _ = validate_bundle(body.certificate, body.key, body.chain, key_file=pending_key(name))
        except CertificateProblems as exc:
            audit(request, principal, "certificate.create", body.name, "invalid", {"problems": exc.problems})
            return problems(exc)
        return await store(request, principal, name, bundle, "certificate.create")

    @router.put(
        "/certificates/{name}",
        summary="Replace a certificate; a running service gets it without a reload (admin)",
        **answers(CertificateStored, 401, 403, 404, 409),
    )
    async def replace(
        name: str, body: CertificateReplace, request: Request, principal: Principal = Depends(ADMIN)
    ) -> JSONResponse:
        try:
            check_name(name)
            if not file_of(name).exists():
                return ApiError(404, f"there is no certificate {name}: upload it with POST /api/v1/certificates").response()
            bundle, _ = validate_bundle(body.certificate, body.key, body.chain, key_file=pending_key(name))
        except CertificateProblems as exc:
            audit(request, principal, "certificate.replace", name, "invalid", {"problems": exc.problems})
            return problems(exc)
        return await store(request, principal, name, bundle, "certificate.replace")

    @router.delete(
        "/certificates/{name}",
        summary="Delete a certificate no virtual service uses (admin)",
        **answers(OutcomeAnswer, 401, 403, 404, 409, 422),
    )
    async def delete(name: str, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            path = file_of(name)
        except CertificateProblems as exc:
            return problems(exc)
        if not path.exists():
            return ApiError(404, f"there is no certificate {name}").response()
        users = used_by(path)
        if users:
            audit(request, principal, "certificate.delete", name, "refused", {"used_by": [vs for vs, _ in users]})
            return ApiError(409, f"certificate {name} is used by {', '.join(vs for vs, _ in users)}: assign another one "
                            "first").response()  # fmt: skip
        path.unlink()
        audit(request, principal, "certificate.delete", name, "applied")
        return JSONResponse({"outcome": "applied", "message": f"certificate {name} deleted"})

    @router.post(
        "/certificates/self-signed", summary="Make a self-signed certificate (admin)", **answers(CertificateStored, 401, 403, 409)
    )
    async def self_signed(body: SelfSignedRequest, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            name = check_name(body.name)
            if file_of(name).exists():
                return ApiError(409, f"certificate {name} exists already").response()
            issued = await asyncio.to_thread(pki.self_signed, body.common_name, body.sans, days=body.days,
                                             key_type=body.key_type)  # fmt: skip
        except CertificateProblems as exc:
            return problems(exc)
        except ValueError as exc:
            return JSONResponse({"outcome": "invalid", "message": str(exc),
                                 "problems": [{"path": "sans", "message": str(exc), "severity": "error"}]}, status_code=422)  # fmt: skip
        return await store(request, principal, name, issued.bundle(), "certificate.self-signed")

    @router.post(
        "/certificates/csr",
        summary="Make a key and a certificate signing request for your CA (admin)",
        **answers(CSRAnswer, 401, 403),
    )
    async def csr(body: CSRRequest, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            name = check_name(body.name)
            pki.subject_alt_names(body.sans or [body.common_name])  # a bad name is the field `sans`'s problem
        except CertificateProblems as exc:
            return problems(exc)
        except ValueError as exc:
            return JSONResponse({"outcome": "invalid", "message": str(exc),
                                 "problems": [{"path": "sans", "message": str(exc), "severity": "error"}]}, status_code=422)  # fmt: skip

        try:
            text = await asyncio.to_thread(certs.make_request, certs_dir, name, body.common_name, body.sans,
                                           body.organization, body.key_type)  # fmt: skip
        except ValueError as exc:
            return JSONResponse({"outcome": "invalid", "message": str(exc),
                                 "problems": [{"path": "common_name", "message": str(exc), "severity": "error"}]},
                                status_code=422)  # fmt: skip
        audit(request, principal, "certificate.csr", name, "applied", {"common_name": body.common_name})
        return JSONResponse({"name": name, "csr": text,
                             "next": f"have your CA sign it, then POST /api/v1/certificates with name {name} and the "
                             "certificate (the key stays here)"})  # fmt: skip

    @router.put("/virtual-services/{service}/certificate",
                summary="Make a certificate the default one of a virtual service (admin; a configuration change)",
                openapi_extra=REVISION_REQUIRED,
                **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428))  # fmt: skip
    async def assign(service: str, body: AssignRequest, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            path = file_of(body.name)
            if not path.exists():
                raise ApiError(404, f"there is no certificate {body.name}")
            base = base_revision_of(request, body.base_revision)
        except CertificateProblems as exc:
            return problems(exc)
        except ApiError as exc:
            return exc.response()

        def edit(data: dict[str, Any]) -> None:
            services = data.setdefault("virtual_services", [])
            certs.make_default(services[find(services, service, "virtual service")], path, controller.base_dir)

        return await writer.write(request, principal, base, edit, action="certificate.assign", target=f"{service}/{body.name}",
                                  message=body.message or f"certificate {body.name} for {service}")  # fmt: skip

    return router
