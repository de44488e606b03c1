"""The peer link of an HA pair: node certificates, mutually authenticated HTTPS, what is synced.

Each node has a certificate of its own (<state>/ha/node.pem and node.key, made at first start or by
`pacslb ha pair`): self-signed, not a CA (basicConstraints CA:FALSE), for both TLS server and client
use. Each node is given the other's certificate (`ha.sync.peer_certificate`) and trusts exactly that
one, as a server (it asks every client for a certificate and accepts no other) and as a client; the
optional `ha.sync.peer_fingerprint` must then match that file. There is no password and no CA.

What is synced: the whole configuration but its node-local parts (`model.ha.NODE_LOCAL`: the `ha`
section, settings.management), which the receiving node keeps from its own configuration. Secrets (the
AMQP check's password) are synced with their values: the peer's probes log in with them, and the link is
mutually authenticated TLS between two pinned certificates (docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..model.config import Config
from ..model.files import MAX_PEM_BYTES, Problem, read_named_file
from ..model.ha import with_own_node_local, without_node_local
from ..model.secrets import revealed_dump
from ..paths import StatePaths

CERT_DAYS = 3650
# TLS 1.2 suites with forward secrecy and authenticated encryption only (no CBC, no RSA key exchange); every
# TLS 1.3 suite is AEAD already. Set in code, on both ends, whatever the system's OpenSSL configuration says.
AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def node_files(state_dir: Path) -> tuple[Path, Path]:
    """(certificate, key) of this node's peer-link identity."""
    paths = StatePaths(state_dir)
    return paths.ha_node_certificate, paths.ha_node_key


def ensure_node_certificate(state_dir: Path, name: str = "pacslb HA node", addresses: list[str] | None = None) -> Path:
    """This node's certificate, made when it does not exist yet; returns its path."""
    cert_path, key_path = node_files(state_dir)
    if cert_path.exists() and key_path.exists():
        return cert_path
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(cert_path.parent, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    sans: list[x509.GeneralName] = [x509.DNSName("pacslb-ha-node")]
    for address in addresses or []:
        sans.append(x509.IPAddress(ipaddress.ip_address(address)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_tmp = key_path.with_name(key_path.name + ".tmp")
    fd = os.open(key_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.replace(key_tmp, key_path)
    cert_tmp = cert_path.with_name(cert_path.name + ".tmp")
    cert_tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(cert_tmp, cert_path)
    return cert_path


def fingerprint(pem_or_der: bytes) -> str:
    """SHA-256 of a certificate (PEM or DER), lower-case hex without colons."""
    if b"-----BEGIN" in pem_or_der:
        pem_or_der = x509.load_pem_x509_certificate(pem_or_der).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(pem_or_der).hexdigest()


def colon_fingerprint(hex_digest: str) -> str:
    return ":".join(hex_digest[i : i + 2] for i in range(0, len(hex_digest), 2)).upper()


class PeerLinkError(Exception):
    """The peer link cannot be set up (certificates) or the peer does not answer as it should."""


def read_pinned(peer_certificate: Path) -> bytes:
    """The pinned certificate's bytes, read as every configured file is (model/files.py: regular, bounded)."""
    found = read_named_file("ha.sync.peer_certificate", peer_certificate, MAX_PEM_BYTES, "PEM file")
    if isinstance(found, Problem):
        raise PeerLinkError(str(found))
    return found.data


def check_pin(peer_certificate: Path, peer_fingerprint: str | None) -> None:
    """The pinned file holds one non-CA certificate, and matches the fingerprint when one is given."""
    pem = read_pinned(peer_certificate)
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PeerLinkError(f"ha.sync.peer_certificate: cannot read {peer_certificate}: {exc}") from None
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise PeerLinkError(f"ha.sync.peer_certificate: {peer_certificate} is a CA certificate; pin the peer's own "
                                "certificate (`pacslb ha pair` on the peer names it), not a CA")  # fmt: skip
    except x509.ExtensionNotFound:
        pass
    if peer_fingerprint is not None and fingerprint(pem) != peer_fingerprint:
        raise PeerLinkError(
            f"ha.sync.peer_fingerprint does not match {peer_certificate} ({colon_fingerprint(fingerprint(pem))}): "
            "copy the peer's certificate again, or correct the fingerprint"
        )


def harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 at least, AEAD_CIPHERS only, no compression or renegotiation: both ends of the peer link."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(AEAD_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_options(state_dir: Path, peer_certificate: Path) -> dict[str, Any]:
    """uvicorn's TLS options of the peer link's server: this node's certificate, a client certificate required
    and verified against the peer's alone, AEAD ciphers (then `harden_server` sets the minimum version)."""
    cert, key = node_files(state_dir)
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_ca_certs": str(peer_certificate),
            "ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ciphers": AEAD_CIPHERS}  # fmt: skip


def harden_server(server: Any) -> None:
    """`harden` the TLS context of an InLoopServer made with `server_options` (uvicorn sets no minimum version)."""
    context = server.tls_context()
    if context is None:
        raise PeerLinkError("the peer link's server has no TLS context: it would serve in plain text")
    harden(context)


def client_context(state_dir: Path, peer_certificate: Path) -> ssl.SSLContext:
    """TLS client side of the peer link: this node's certificate, the peer's as the only trust anchor."""
    cert, key = node_files(state_dir)
    ctx = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False  # identity is the pinned certificate itself, not a name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=read_pinned(peer_certificate).decode("ascii", errors="replace"))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def server_socket(address: str, port: int) -> socket.socket:
    """A listening TCP socket on this node's own address; IP_FREEBIND lets it bind before the address is up."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND
    sock.bind((address, port))
    sock.listen(16)
    sock.setblocking(False)
    return sock


# --- what is synced -----------------------------------------------------------------------------------


def synced_data(config: Config) -> dict[str, Any]:
    """The configuration without its node-local parts (plain JSON data), secrets with their values."""
    return without_node_local(revealed_dump(config))


def synced_digest(config: Config) -> str:
    return hashlib.sha256(json.dumps(synced_data(config), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def merge_local(received: dict[str, Any], own: Config) -> dict[str, Any]:
    """The received configuration with this node's own node-local parts put back."""
    return with_own_node_local(received, revealed_dump(own))
