"""What the WebUI's certificate forms do: upload, self-signed, key + CSR, assign to a virtual service, delete.

The same operations and checks as the management API's /api/v1/certificates (api/routes_certs.py), over the
same files (<state>/certs/NAME.pem; a CSR's key waits in NAME.key, the request itself in NAME.csr, until the
signed certificate is uploaded under the same name). Each returns an `Action`: done, or the problems with the
form field each belongs to (`certificate`, `key`, `chain`, `name`, ...) so the page shows them beside it.
Nothing is written when there is a problem; a certificate a running service uses is hot-swapped in HAProxy
(change/service.py `swap_certificate`: the old file comes back if HAProxy refuses).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import pki
from ..api import certs
from ..api.certs import CertificateProblems, certificate_file, used_by, validate_bundle
from ..change.result import Outcome
from ..change.service import EditError, Origin

# the management API's limits (api/routes_certs.py CertificateUpload), per uploaded part
MAX_CERTIFICATE_BYTES = 200_000
MAX_KEY_BYTES = 100_000
MAX_CHAIN_BYTES = 200_000
MAX_SANS = 100


@dataclass
class Action:
    """The outcome of one form: `ok`, a line for the flash message, and the problems by form field."""

    ok: bool
    message: str
    problems: list[dict[str, str]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def by_field(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for p in self.problems:
            found.setdefault(p["path"].split("[", 1)[0], []).append(p["message"])
        return found


def problem(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message, "severity": "error"}


def invalid(message: str, *problems: dict[str, str]) -> Action:
    return Action(False, message, list(problems))


def split_names(text: str) -> list[str]:
    """Subject alternative names as typed in one field: separated by commas, spaces or new lines."""
    return [n for n in text.replace(",", " ").split() if n]


def pending_requests(certs_dir: Path) -> list[dict[str, Any]]:
    """CSRs made here whose signed certificate has not come back yet: a NAME.key without its NAME.pem."""
    if not certs_dir.is_dir():
        return []
    found = []
    for key in sorted(certs_dir.glob("*.key")):
        if (certs_dir / f"{key.stem}.pem").exists():
            continue
        csr = certs_dir / f"{key.stem}.csr"
        found.append({"name": key.stem, "csr": csr.read_text() if csr.exists() else None, "since": key.stat().st_mtime})
    return found


async def store(controller: Any, origin: Origin, name: str, bundle: bytes, action: str) -> Action:
    """Write NAME.pem through the change front door (api/certs.py `store`: hot swap where it runs)."""
    stored = await certs.store(controller, origin, name, bundle, action)
    if not stored.ok:
        return Action(False, f"certificate {name} was not stored: {stored.message(name)}")
    return Action(True, stored.message(name))


async def upload(controller: Any, origin: Origin, name: str, certificate: str, key: str, chain: str, replace: bool) -> Action:
    """A certificate with its key (or a CSR's key kept here) and chain, checked whole before anything is written."""
    certs_dir = controller.paths.certs_dir
    try:
        path = certificate_file(certs_dir, name)
        name = path.stem
        if path.exists() and not replace:
            return invalid(f"certificate {name} exists already",
                           problem("name", f"{name} exists already: tick 'replace' to replace it (a running service gets "
                                   "the new one without a reload), or choose another name"))  # fmt: skip
        if not path.exists() and replace:
            return invalid(f"there is no certificate {name} to replace", problem("name", f"there is no certificate {name}: "
                           "untick 'replace' to upload a new one"))  # fmt: skip
        bundle, _ = validate_bundle(certificate, key or None, chain or None, key_file=certs.pending_key(certs_dir, name))
    except CertificateProblems as exc:
        return invalid("the certificate cannot be used: nothing was stored", *exc.problems)
    return await store(controller, origin, name, bundle, "certificate.replace" if replace else "certificate.create")


async def self_signed(controller: Any, origin: Origin, name: str, common_name: str, sans: list[str], days: int,
                      key_type: str) -> Action:  # fmt: skip
    """A new self-signed certificate and key (for tests and internal services: clients will not trust it)."""
    try:
        path = certificate_file(controller.paths.certs_dir, name)
    except CertificateProblems as exc:
        return invalid("nothing was made", *exc.problems)
    found = _name_problems(common_name, sans) + ([] if 1 <= days <= 3650 else [problem("days", "1 to 3650 days")])
    if path.exists():
        found.append(problem("name", f"{path.stem} exists already: choose another name"))
    if found:
        return invalid("nothing was made", *found)
    try:
        issued = await asyncio.to_thread(pki.self_signed, common_name, sans, days=days, key_type=key_type)
    except ValueError as exc:
        return invalid("nothing was made", problem("sans", str(exc)))
    return await store(controller, origin, path.stem, issued.bundle(), "certificate.self-signed")


def _name_problems(common_name: str, sans: list[str]) -> list[dict[str, str]]:
    found = []
    if not 1 <= len(common_name) <= 64:
        found.append(problem("common_name", "1 to 64 characters, e.g. pacs.hospital.example"))
    if len(sans) > MAX_SANS:
        found.append(problem("sans", f"at most {MAX_SANS} names ({len(sans)} given)"))
    return found


async def csr(controller: Any, name: str, common_name: str, sans: list[str], organization: str, key_type: str) -> Action:
    """A key kept here (NAME.key, mode 0600) and its CSR (NAME.csr) for the hospital's CA to sign."""
    certs_dir = controller.paths.certs_dir
    try:
        path = certificate_file(certs_dir, name)
    except CertificateProblems as exc:
        return invalid("nothing was made", *exc.problems)
    found = _name_problems(common_name, sans)
    if len(organization) > 64:
        found.append(problem("organization", "at most 64 characters"))
    if path.exists() or (certs_dir / f"{path.stem}.key").exists():
        found.append(problem("name", f"{path.stem} exists already (a certificate or a request waiting): choose another name"))
    if found:
        return invalid("nothing was made", *found)
    try:
        text = await asyncio.to_thread(certs.make_request, certs_dir, path.stem, common_name, sans, organization, key_type)
    except ValueError as exc:
        return invalid("nothing was made", problem("sans", str(exc)))
    return Action(True, f"key and CSR {path.stem} made: have your CA sign the CSR, then upload the certificate as "
                  f"{path.stem} (the key stays here)", detail={"name": path.stem, "csr": text})  # fmt: skip


def delete(controller: Any, name: str) -> Action:
    """Remove NAME.pem (refused while a virtual service uses it), or discard a CSR waiting for its certificate."""
    certs_dir = controller.paths.certs_dir
    try:
        path = certificate_file(certs_dir, name)
    except CertificateProblems as exc:
        return invalid("nothing was deleted", *exc.problems)
    pending = [p for p in (certs_dir / f"{path.stem}.key", certs_dir / f"{path.stem}.csr") if p.exists()]
    if not path.exists():
        if not pending:
            return Action(False, f"there is no certificate {path.stem}")
        for p in pending:
            p.unlink()
        return Action(True, f"the request {path.stem} and its key were discarded")
    users = [vs for vs, _ in used_by(controller, path)]
    if users:
        return Action(False, f"certificate {path.stem} was not deleted: {', '.join(users)} "
                      f"{'uses' if len(users) == 1 else 'use'} it for TLS; assign another certificate first",
                      detail={"used_by": users})  # fmt: skip
    path.unlink()
    return Action(True, f"certificate {path.stem} deleted")


def assign_edit(controller: Any, service: str, path: Path):
    """The configuration edit that makes `path` the default certificate of `service` (others stay for SNI)."""

    def edit(data: dict[str, Any]) -> None:
        services = data.setdefault("virtual_services", [])
        found = [vs for vs in services if vs.get("name") == service]
        if not found:  # removed by a change made since the page was shown
            raise EditError(Outcome.NOT_FOUND, f"there is no virtual service {service}")
        certs.make_default(found[0], path, controller.base_dir)

    return edit


async def assign(controller: Any, origin: Origin, service: str, name: str, base_revision: int | None) -> Action:
    """A new revision in which `service` terminates TLS with certificate `name` (its default one)."""
    try:
        path = certificate_file(controller.paths.certs_dir, name)
    except CertificateProblems as exc:
        return invalid("nothing was changed", *exc.problems)
    if not path.exists():
        return Action(False, f"there is no certificate {path.stem}")
    if service not in {vs.name for vs in controller.config.virtual_services}:
        return invalid("nothing was changed", problem("service", f"there is no virtual service {service}"))
    result = await controller.changes.apply(
        edit=assign_edit(controller, service, path), origin=origin, base_revision=base_revision,
        message=f"certificate {path.stem} for {service} (WebUI)", action="certificate.assign", target=f"{service}/{path.stem}",
    )  # fmt: skip
    ok = result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED)
    problems = [problem("service", f"{p.path}: {p.message}") for p in result.problems]
    return Action(ok, result.message, problems)
