"""Certificates the appliance holds: the PEM files under <state>/certs and those the configuration names.

`certificate_info` reads one PEM's first certificate (subject, names, expiry); `list_certificates` finds
the files and says which virtual services use each. Keys are never read, only certificates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..model import Config
from ..model.files import MAX_PEM_BYTES, Problem, read_named_file


@dataclass
class CertificateInfo:
    path: str
    subject: str = ""
    issuer: str = ""
    names: list[str] = field(default_factory=list)
    not_after: dt.datetime | None = None
    used_by: list[str] = field(default_factory=list)  # virtual services that terminate TLS with it
    ca_for: list[str] = field(default_factory=list)  # virtual services that verify their real servers with it
    error: str | None = None  # why it could not be read

    def days_left(self, now: dt.datetime) -> float | None:
        return None if self.not_after is None else (self.not_after - now).total_seconds() / 86400

    @property
    def self_signed(self) -> bool:
        return bool(self.subject) and self.subject == self.issuer


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else name.rfc4514_string()


def certificate_info(path: Path) -> CertificateInfo:
    """The first certificate of a PEM file (a CA file or a bundle with its key)."""
    info = CertificateInfo(str(path))
    try:
        found = read_named_file(str(path), path, MAX_PEM_BYTES, "PEM file")
        if isinstance(found, Problem):
            info.error = found.message
            return info
        data = found.data
        if b"-----BEGIN CERTIFICATE-----" not in data:
            info.error = "no certificate in this file (a key only?)"
            return info
        cert = x509.load_pem_x509_certificate(data[data.index(b"-----BEGIN CERTIFICATE-----") :])
    except (OSError, ValueError) as exc:
        info.error = f"cannot read it: {exc}"
        return info
    info.subject = _common_name(cert.subject)
    info.issuer = _common_name(cert.issuer)
    info.not_after = cert.not_valid_after_utc
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        info.names = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        pass
    return info


def list_certificates(config: Config, certs_dir: Path, base_dir: Path) -> list[CertificateInfo]:
    """Every certificate file of the configuration (TLS termination, server CA files) and of `certs_dir`,
    soonest expiry first; unreadable files last."""
    uses: dict[Path, tuple[list[str], list[str]]] = {}
    for vs in config.virtual_services:
        if vs.tls is not None:
            for name in vs.tls.certificates:
                uses.setdefault((base_dir / name).resolve(), ([], []))[0].append(vs.name)
        if vs.server_tls.ca_file and any(rs.encrypted for rs in vs.real_servers):
            uses.setdefault((base_dir / vs.server_tls.ca_file).resolve(), ([], []))[1].append(vs.name)
    if certs_dir.is_dir():
        for path in sorted(certs_dir.glob("*.pem")):
            uses.setdefault(path.resolve(), ([], []))
    found = []
    for path, (used_by, ca_for) in uses.items():
        info = certificate_info(path)
        if info.error and "key only" in info.error and not (used_by or ca_for):
            continue  # a private key file beside its certificate: nothing to list
        info.used_by, info.ca_for = used_by, ca_for
        found.append(info)
    far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    return sorted(found, key=lambda c: (c.not_after is None, c.not_after or far, c.path))
