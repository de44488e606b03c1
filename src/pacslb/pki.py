"""Certificates for pacslb: a self-signed placeholder, and a small CA for the demo and tests.

The functions that make keys and certificates are pure apart from key generation: they take the time
as an argument (default: now) and return `Issued` values holding PEM bytes. `write_pem` is the one
function that touches the disk; it writes atomically and keeps private keys at mode 0600.

    ca = make_ca("pacslb demo CA")
    vip = issue(ca, "pacslb demo VIP", ["127.0.0.1", "localhost"])
    write_pem(state / "certs" / "vip.pem", vip.bundle(chain=[ca]))   # HAProxy's crt file
    write_pem(state / "certs" / "ca.pem", ca.cert_pem)                # what clients and checks trust
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]

# Certificates are backdated a little so that a clock slightly behind ours still accepts them.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM (HAProxy reads it without a passphrase)."""
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def bundle(self, chain: Iterable["Issued"] = ()) -> bytes:
        """Certificate, then the chain's certificates, then the key: the single PEM file HAProxy's `crt` takes."""
        return self.cert_pem + b"".join(c.cert_pem for c in chain) + self.key_pem

    @property
    def is_self_signed(self) -> bool:
        return self.cert.issuer == self.cert.subject


def new_key(key_type: KeyType = "ec") -> PrivateKey:
    """A fresh private key: ECDSA P-256 (fast, the default) or RSA 2048 (for the oldest clients)."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}: choose 'ec' or 'rsa'")


def subject_alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries: IP addresses as IPAddress entries, anything else as a DNS name."""
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"{name!r} is neither an IP address nor a DNS name") from None
            entries.append(x509.DNSName(name))
    return entries


def _name(common_name: str, organization: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _now(now: dt.datetime | None) -> dt.datetime:
    moment = now or dt.datetime.now(dt.timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("now must carry a time zone (use datetime.timezone.utc)")
    return moment


def _server_extensions(builder: x509.CertificateBuilder, sans: list[str]) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            key_encipherment=True,  # RSA key exchange (TLS 1.2 with old clients); ignored for EC keys
            content_commitment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(subject_alt_names(sans)), critical=False)
    return builder


def _self_issued(key: PrivateKey, name: x509.Name, now: dt.datetime, days: int) -> x509.CertificateBuilder:
    """A certificate of `key` issued by itself (subject and issuer `name`), valid `days` from a little before now."""
    start = now - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )


def self_signed(
    common_name: str,
    sans: Iterable[str] = (),
    *,
    days: int = 365,
    key_type: KeyType = "ec",
    organization: str | None = "pacslb",
    now: dt.datetime | None = None,
) -> Issued:
    """A self-signed server certificate, e.g. the placeholder that `pacslb init` writes for a TLS service.

    Clients warn about it, and `pacslb validate` says so: replace it before production.
    """
    sans = list(sans)
    key = new_key(key_type)
    builder = _self_issued(key, _name(common_name, organization), _now(now), days).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    builder = _server_extensions(builder, sans)
    return Issued(builder.sign(key, hashes.SHA256()), key)


def make_ca(
    common_name: str,
    *,
    days: int = 3650,
    key_type: KeyType = "ec",
    organization: str | None = "pacslb",
    now: dt.datetime | None = None,
) -> Issued:
    """A certificate authority that signs server certificates (the demo's CA, a test's CA)."""
    key = new_key(key_type)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _self_issued(key, _name(common_name, organization), _now(now), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    common_name: str,
    sans: Iterable[str] = (),
    *,
    days: int = 825,
    key_type: KeyType = "ec",
    organization: str | None = "pacslb",
    now: dt.datetime | None = None,
) -> Issued:
    """A server certificate signed by `ca`, valid for the names and addresses in `sans`.

    Clients match the SAN, not the common name, so give every name and IP address clients will use
    (`["127.0.0.1", "localhost"]`, `["127.0.3.1"]`). The certificate's validity is clipped to the CA's.
    """
    sans = list(sans)
    if not sans:
        raise ValueError("a server certificate needs at least one subject alternative name (DNS name or IP address)")
    key = new_key(key_type)
    start = _now(now) - _BACKDATE
    end = min(start + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(start, ca.cert.not_valid_before_utc))
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    builder = _server_extensions(builder, sans)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def load_issued(pem: bytes) -> Issued:
    """Read back a bundle written by `Issued.bundle` (certificate first, key anywhere in the file)."""
    cert = x509.load_pem_x509_certificate(pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("only EC and RSA keys are supported")
    return Issued(cert, key)


def write_pem(path: Path, data: bytes, *, private: bool | None = None) -> Path:
    """Write PEM bytes to `path` atomically; a file holding a private key gets mode 0600, others 0644.

    `private` defaults to looking for a key in `data`.
    """
    if private is None:
        private = b"PRIVATE KEY-----" in data
    return write_atomic(path, data, mode=0o600 if private else 0o644)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write `data` to `path` through a temporary file, fsync and rename; create missing folders.

    A reader sees the old file or the new one, never half of one, and the file has `mode` before its
    first byte is written (a key is never readable by others, not even for a moment).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return path
