"""The WebUI's certificates page: every certificate with its expiry and users (any role), and for admins the forms
that upload one (PEM certificate, key, chain), make a self-signed one, make a key and CSR (shown and downloadable,
its signed certificate uploaded later under the same name), assign one to a layer 7 virtual service, delete one.

A form with problems is shown again (422) with each problem beside its field and the values typed (never the
key); a form that worked redirects back with a flash message (303). Operations: web/cert_actions.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..api.auth import Principal, client_ip
from ..api.certs import NAME
from ..api.writes import origin_of
from . import cert_actions
from .cert_actions import Action
from .certs import list_certificates
from .context import controller_of, flash, page_principal, page_role, render

router = APIRouter(include_in_schema=False)
ADMIN = page_role("admin")
FORMS = ("upload", "self_signed", "csr")


def _audit(request: Request, principal: Principal, action: str, target: str, outcome: str, detail: Any = None) -> None:
    request.app.state.auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                                 via=principal.via, detail=detail)  # fmt: skip


def _tls_services(controller: Any) -> list[str]:
    """Virtual services a certificate can be assigned to: the layer 7 ones (HAProxy terminates their TLS)."""
    return [vs.name for vs in controller.config.virtual_services if vs.mode.is_layer7]


def _page_context(request: Request) -> dict[str, Any]:
    controller = controller_of(request)
    certs_dir = controller.paths.certs_dir
    found = list_certificates(controller.config, certs_dir, controller.base_dir)
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for c in found:
        # only the files of <state>/certs are this page's to assign and delete (others are named by path in the configuration)
        name = c.path.rsplit("/", 1)[-1].removesuffix(".pem")
        managed = c.path.startswith(str(certs_dir.resolve()) + "/") and bool(NAME.match(name))
        rows.append({"cert": c, "days": c.days_left(now), "name": name if managed else None})
    return {"certificates": rows, "pending": cert_actions.pending_requests(certs_dir), "services": _tls_services(controller),
            "base_revision": controller.changes.store.current_id(), "errors": {}, "values": {}, "open": None, "notice": None}  # fmt: skip


async def _page(request: Request, principal: Principal, status_code: int = 200, **overrides: Any) -> Response:
    context = await asyncio.to_thread(_page_context, request)
    context.update(overrides)
    return render(request, "certificates.html", principal, status_code=status_code, **context)


async def _answer(request: Request, principal: Principal, action: Action, form: str, values: dict[str, Any]) -> Response:
    """Done: back to the list with a flash message. Problems: the form again, each problem beside its field."""
    if action.ok:
        flash(request, principal, action.message, "ok")
        return RedirectResponse("/certificates", status_code=303)
    if not action.problems:
        flash(request, principal, action.message, "error")
        return RedirectResponse("/certificates", status_code=303)
    return await _page(request, principal, 422, errors={form: action.by_field()}, values={form: values}, open=form,
                       notice=action.message)  # fmt: skip


@router.get("/certificates", response_class=HTMLResponse)
async def certificates_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    return await _page(request, principal)


async def _read_part(part: UploadFile | None, limit: int, field: str) -> tuple[str, dict[str, str] | None]:
    """An uploaded PEM part as text, at most `limit` bytes (read no further); or the problem for its field."""
    if part is None or not part.filename:
        return "", None
    data = await part.read(limit + 1)
    if len(data) > limit:
        return "", cert_actions.problem(field, f"larger than {limit:,} bytes: is this a PEM file?")
    try:
        return data.decode("ascii"), None
    except UnicodeDecodeError:
        return "", cert_actions.problem(field, "not a PEM file (PEM is ASCII text; convert DER with `openssl x509 -inform der`)")


@router.post("/certificates/upload")
async def upload(
    request: Request,
    name: str = Form(""),
    certificate: UploadFile | None = File(None),
    key: UploadFile | None = File(None),
    chain: UploadFile | None = File(None),
    replace: bool = Form(False),
    principal: Principal = Depends(ADMIN),
) -> Response:
    values = {"name": name, "replace": replace}
    parts = [(certificate, cert_actions.MAX_CERTIFICATE_BYTES, "certificate"), (key, cert_actions.MAX_KEY_BYTES, "key"),
             (chain, cert_actions.MAX_CHAIN_BYTES, "chain")]  # fmt: skip
    texts, problems = {}, []
    for part, limit, field in parts:
        texts[field], found = await _read_part(part, limit, field)
        if found:
            problems.append(found)
    if problems:
        action = cert_actions.invalid("the certificate cannot be used: nothing was stored", *problems)
    else:
        action = await cert_actions.upload(controller_of(request), origin_of(request, principal), name.strip(),
                                           texts["certificate"], texts["key"], texts["chain"], replace)  # fmt: skip
    if not action.ok:
        _audit(request, principal, "certificate.replace" if replace else "certificate.create", name[:64], "invalid",
               {"problems": action.problems} if action.problems else {"message": action.message})  # fmt: skip
    return await _answer(request, principal, action, "upload", values)


@router.post("/certificates/self-signed")
async def self_signed(
    request: Request,
    name: str = Form(""),
    common_name: str = Form(""),
    sans: str = Form(""),
    days: int = Form(365),
    key_type: str = Form("ec"),
    principal: Principal = Depends(ADMIN),
) -> Response:
    values = {"name": name, "common_name": common_name, "sans": sans, "days": days, "key_type": key_type}
    action = await cert_actions.self_signed(controller_of(request), origin_of(request, principal), name.strip(),
                                            common_name.strip(), cert_actions.split_names(sans), days,
                                            "rsa" if key_type == "rsa" else "ec")  # fmt: skip
    return await _answer(request, principal, action, "self_signed", values)


@router.post("/certificates/csr")
async def csr(
    request: Request,
    name: str = Form(""),
    common_name: str = Form(""),
    sans: str = Form(""),
    organization: str = Form(""),
    key_type: str = Form("rsa"),
    principal: Principal = Depends(ADMIN),
) -> Response:
    values = {"name": name, "common_name": common_name, "sans": sans, "organization": organization, "key_type": key_type}
    action = await cert_actions.csr(controller_of(request), name.strip(), common_name.strip(), cert_actions.split_names(sans),
                                    organization.strip(), "ec" if key_type == "ec" else "rsa")  # fmt: skip
    if action.ok:
        _audit(request, principal, "certificate.csr", action.detail["name"], "applied", {"common_name": common_name})
    return await _answer(request, principal, action, "csr", values)


@router.get("/certificates/{name}/csr")
async def download_csr(request: Request, name: str, principal: Principal = Depends(page_principal)) -> Response:
    """The CSR of a request waiting for its certificate, as a file for the CA (a CSR holds no secret)."""
    if not NAME.match(name):
        return PlainTextResponse(f"{name!r} is not a certificate name", status_code=404)
    for pending in cert_actions.pending_requests(controller_of(request).paths.certs_dir):
        if pending["name"] == name and pending["csr"]:
            return PlainTextResponse(pending["csr"], media_type="application/pkcs10",
                                     headers={"Content-Disposition": f'attachment; filename="{name}.csr"'})  # fmt: skip
    return PlainTextResponse(f"there is no certificate request {name}", status_code=404)


@router.post("/certificates/{name}/assign")
async def assign(
    request: Request,
    name: str,
    service: str = Form(""),
    base_revision: str = Form(""),
    principal: Principal = Depends(ADMIN),
) -> Response:
    base = int(base_revision) if base_revision.isdigit() else None
    action = await cert_actions.assign(controller_of(request), origin_of(request, principal), service, name, base)
    if not action.ok and action.problems:
        action = Action(False, action.message + " (" + "; ".join(p["message"] for p in action.problems) + ")")
    return await _answer(request, principal, action, "assign", {})


@router.post("/certificates/{name}/delete")
async def delete(request: Request, name: str, principal: Principal = Depends(ADMIN)) -> Response:
    action = await asyncio.to_thread(cert_actions.delete, controller_of(request), name)
    outcome = "applied" if action.ok else "refused"
    _audit(request, principal, "certificate.delete", name[:64], outcome, action.detail or {"message": action.message})
    if not action.ok and action.problems:
        action = Action(False, "; ".join(p["message"] for p in action.problems))
    return await _answer(request, principal, action, "delete", {})
