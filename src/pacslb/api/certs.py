"""Certificates of the virtual services: validate an upload and describe a PEM file.

`validate_bundle` is pure (the time is an argument): certificate, key and optional chain in, the single
PEM file HAProxy's `crt` takes out (certificate, chain, key), or CertificateProblems with a field path
each (`certificate`, `key`, `chain[1]`) so the WebUI shows them beside the fields. It checks that the
key matches the certificate, that the certificate is valid now, and that the chain is in order (each
certificate issued, and signed, by the next).

Storing one and swapping it into a running HAProxy without a reload is a change like any other
(change/service.py `swap_certificate`, through the HAProxy engine's runtime client).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .. import pki
from ..model.checks import resolve
from ..model.files import MAX_PEM_BYTES, Problem, read_named_file

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_KEY_RE = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.+?-----END (?:[A-Z]+ )?PRIVATE KEY-----", re.S)


@dataclass
class CertificateProblems(Exception):
    problems: list[dict[str, str]]

    def __str__(self) -> str:
        return "; ".join(f"{p['path']}: {p['message']}" for p in self.problems)


def _problem(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message, "severity": "error"}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name.endswith((".key", ".csr")):
        raise CertificateProblems([_problem("name", f"{name!r} is not a certificate name: 1 to 64 letters, digits, "
                                            "'.', '_' or '-', starting with a letter or digit (e.g. 'wfc-2026')")])  # fmt: skip
    return name.removesuffix(".pem")


def certificate_file(certs_dir: Path, name: str) -> Path:
    """<certs>/NAME.pem for a valid name; CertificateProblems (field `name`) otherwise."""
    return certs_dir / f"{check_name(name)}.pem"


def used_by(controller: Any, path: Path) -> list[tuple[str, str]]:
    """(virtual service, the path as HAProxy loaded it) for each running service that terminates TLS with `path`."""
    real = os.path.realpath(path)
    found = []
    for vs in controller.config.virtual_services:
        for cert in vs.tls.certificates if vs.tls else []:
            loaded = resolve(cert, controller.base_dir)
            if os.path.realpath(loaded) == real:
                found.append((vs.name, str(loaded)))
    return found


def certificates_in(pem: bytes) -> list[bytes]:
    return _CERT_RE.findall(pem)


def _load_certs(pem: bytes, path: str) -> list[x509.Certificate]:
    blocks = certificates_in(pem)
    found = []
    for i, block in enumerate(blocks):
        try:
            found.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise CertificateProblems([_problem(f"{path}[{i}]" if len(blocks) > 1 else path,
                                                "this certificate cannot be read (damaged PEM)")]) from None  # fmt: skip
    return found


def _public(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def validate_bundle(
    certificate: str, key: str | None, chain: str | None = None, *, now: dt.datetime | None = None, key_file: bytes | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The PEM bundle to store, and its description; raises CertificateProblems (every problem found).

    The key may be given in `key`, in `certificate` after the certificate, or come from `key_file` (the key
    kept when a CSR was made). Extra certificates after the first in `certificate` are taken as chain.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    problems: list[dict[str, str]] = []
    cert_bytes = (certificate or "").encode()
    certs = _load_certs(cert_bytes, "certificate")
    if not certs:
        raise CertificateProblems([_problem("certificate", "no PEM certificate found: paste the block from "
                                            "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----")])  # fmt: skip
    leaf, extra = certs[0], certs[1:]
    chain_certs = extra + (_load_certs(chain.encode(), "chain") if chain else [])
    key_blocks = _KEY_RE.findall((key or "").encode()) or _KEY_RE.findall(cert_bytes) or (
        _KEY_RE.findall(key_file) if key_file else [])  # fmt: skip
    private = None
    if not key_blocks:
        problems.append(_problem("key", "no private key found: paste the key (-----BEGIN PRIVATE KEY-----), "
                                 "or make the certificate from a CSR of this appliance"))  # fmt: skip
    else:
        try:
            private = serialization.load_pem_private_key(key_blocks[0], password=None)
        except (ValueError, TypeError) as exc:
            problems.append(_problem("key", f"the key cannot be read ({exc}); HAProxy needs it without a passphrase"))
        if private is not None and not isinstance(
            private, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
        ):
            problems.append(_problem("key", "only RSA, EC and Ed25519 keys are supported"))
        elif private is not None and _public(private.public_key()) != _public(leaf.public_key()):
            problems.append(_problem("key", "this key does not belong to the certificate (their public keys differ)"))
    if leaf.not_valid_after_utc <= now:
        problems.append(_problem("certificate", f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"))
    elif leaf.not_valid_before_utc > now:
        problems.append(
            _problem("certificate", f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        )
    problems += _chain_problems(leaf, chain_certs, now)
    if problems:
        raise CertificateProblems(problems)
    assert private is not None
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [leaf, *chain_certs]) + key_pem
    return bundle, describe(bundle, now=now)


def _chain_problems(leaf: x509.Certificate, chain: list[x509.Certificate], now: dt.datetime) -> list[dict[str, str]]:
    """Each certificate must be issued (and signed) by the next one; chain certificates must be valid now."""
    problems = []
    sequence = [leaf, *chain]
    for i, (child, parent) in enumerate(zip(sequence, sequence[1:], strict=False)):
        where = f"chain[{i}]"
        if child.issuer != parent.subject:
            problems.append(_problem(where, f"out of order: {_name(child.subject)} is issued by {_name(child.issuer)}, "
                                     f"but the next certificate is {_name(parent.subject)}; put the chain in order, "
                                     "issuer after issued"))  # fmt: skip
            continue
        try:
            child.verify_directly_issued_by(parent)
        except Exception:  # noqa: BLE001 - InvalidSignature, ValueError, TypeError: all mean "not its issuer"
            problems.append(_problem(where, f"{_name(parent.subject)} did not sign {_name(child.subject)}"))
        if parent.not_valid_after_utc <= now:
            problems.append(_problem(where, f"{_name(parent.subject)} expired on {parent.not_valid_after_utc:%Y-%m-%d}"))
    return problems


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except Exception:  # noqa: BLE001
        return str(name)


def describe(pem: bytes, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Subject, SANs, issuer, validity and days left of the first certificate in a PEM file."""
    now = now or dt.datetime.now(dt.timezone.utc)
    blocks = certificates_in(pem)
    if not blocks:
        raise ValueError("no PEM certificate in it")
    cert = x509.load_pem_x509_certificate(blocks[0])
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in san.get_values_for_type(x509.DNSName)] + [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    left = cert.not_valid_after_utc - now
    return {
        "subject": _name(cert.subject),
        "sans": sans,
        "issuer": _name(cert.issuer),
        "self_signed": cert.issuer == cert.subject,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": left.days if left.total_seconds() >= 0 else -((-left).days),
        "expired": left.total_seconds() <= 0,
        "chain_length": len(blocks) - 1,
        "has_key": bool(_KEY_RE.search(pem)),
        "serial": format(cert.serial_number, "x"),
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
    }


# --- the flows the management API (routes_certs.py) and the WebUI (web/cert_actions.py) share -------------------


def pending_key(certs_dir: Path, name: str) -> bytes | None:
    """The key a CSR made here left waiting for its certificate (NAME.key), or None; CertificateProblems (field
    `key`) when it cannot be read."""
    key = certs_dir / f"{name}.key"
    if not key.exists():
        return None
    found = read_named_file(key.name, key, MAX_PEM_BYTES, "key file")
    if isinstance(found, Problem):
        raise CertificateProblems([_problem("key", found.message)])
    return found.data


@dataclass
class Stored:
    """What storing a certificate came to: `ok`, the change front door's answer, and the running services that
    use the file ((virtual service, path as HAProxy loaded it): hot-swapped when ok)."""

    ok: bool
    result: Any
    users: list[tuple[str, str]]

    def message(self, name: str) -> str:
        if not self.ok:
            return self.result.message
        where = f"; HAProxy serves it now for {', '.join(vs for vs, _ in self.users)} (no reload)" if self.users else ""
        return f"certificate {name} stored{where}"


async def store(controller: Any, origin: Any, name: str, bundle: bytes, action: str) -> Stored:
    """Write NAME.pem through the change front door, one transaction that also records it in the audit log: when
    running services use it, it is hot-swapped in HAProxy (the old file comes back if HAProxy refuses). Once
    stored, a CSR's key (inside the bundle now) and request go."""
    certs_dir = controller.paths.certs_dir
    path = certificate_file(certs_dir, name)  # NAME or NAME.pem
    users = used_by(controller, path)
    result = await controller.changes.swap_certificate(path, bundle, [loaded for _, loaded in users], origin, action, name)
    if result.outcome.value != "applied":
        return Stored(False, result, users)
    for leftover in (certs_dir / f"{path.stem}.key", certs_dir / f"{path.stem}.csr"):
        try:
            leftover.unlink()
        except OSError:
            pass
    return Stored(True, result, users)


def make_csr(common_name: str, sans: list[str], organization: str | None, key_type: str) -> tuple[bytes, str]:
    """A new private key (PEM) and the certificate signing request for it (PEM text); ValueError on a bad name."""
    from cryptography.x509.oid import NameOID

    names = pki.subject_alt_names(sans or [common_name])
    key = pki.new_key(key_type)  # type: ignore[arg-type]
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
               .add_extension(x509.SubjectAlternativeName(names), critical=False).sign(key, hashes.SHA256()))  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem, request.public_bytes(serialization.Encoding.PEM).decode()


def make_request(certs_dir: Path, name: str, common_name: str, sans: list[str], organization: str | None, key_type: str) -> str:
    """A key kept here (NAME.key, mode 0600) and its CSR (NAME.csr) for the hospital's CA to sign; the CSR's text.
    ValueError on a bad name (nothing is written then)."""
    key_pem, text = make_csr(common_name, sans, organization, key_type)
    certs_dir.mkdir(parents=True, exist_ok=True)
    pki.write_pem(certs_dir / f"{name}.key", key_pem, private=True)
    pki.write_pem(certs_dir / f"{name}.csr", text.encode(), private=False)
    return text


def make_default(vs: dict[str, Any], path: Path, base_dir: Path) -> None:
    """Make `path` the default (first) certificate of the virtual service `vs` (its configuration data): the one it
    replaces goes, any further ones stay for SNI."""
    tls = vs.get("tls") or {}
    others = [c for c in tls.get("certificates", [])
              if os.path.realpath(resolve(c, base_dir)) != os.path.realpath(path)]  # fmt: skip
    vs["tls"] = {**tls, "certificates": [str(path), *others[1:]]}
