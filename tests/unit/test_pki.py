"""Certificates: self-signed placeholders, a CA and the server certificates it signs, written safely."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from pacslb import pki
from pacslb.model import load_text

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def _sans(issued: pki.Issued) -> tuple[list[str], list[str]]:
    ext = issued.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [str(a) for a in ext.get_values_for_type(x509.IPAddress)]


def test_self_signed_carries_names_and_addresses():
    issued = pki.self_signed("placeholder", ["192.0.2.10", "localhost", "::1"], now=NOW)
    assert issued.is_self_signed
    assert _sans(issued) == (["localhost"], ["192.0.2.10", "::1"])
    assert issued.cert.not_valid_before_utc < NOW < issued.cert.not_valid_after_utc
    assert issued.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_bundle_reads_back_and_key_matches_certificate():
    issued = pki.self_signed("placeholder", ["localhost"])
    bundle = issued.bundle()
    assert bundle.startswith(b"-----BEGIN CERTIFICATE-----") and b"PRIVATE KEY-----" in bundle
    again = pki.load_issued(bundle)
    assert again.cert == issued.cert
    assert again.key.public_key().public_numbers() == issued.cert.public_key().public_numbers()


def test_ca_signs_server_certificates_with_ip_sans():
    ca = pki.make_ca("pacslb test CA", now=NOW)
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    leaf = pki.issue(ca, "real server", ["127.3.2.1"], now=NOW)
    assert not leaf.is_self_signed
    leaf.cert.verify_directly_issued_by(ca.cert)
    assert _sans(leaf) == ([], ["127.3.2.1"])
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_server_certificate_never_outlives_its_ca():
    ca = pki.make_ca("short CA", days=10, now=NOW)
    leaf = pki.issue(ca, "server", ["localhost"], days=825, now=NOW)
    assert leaf.cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_rsa_keys_for_old_clients():
    issued = pki.self_signed("old client", ["localhost"], key_type="rsa")
    assert isinstance(issued.key, rsa.RSAPrivateKey) and issued.key.key_size == 2048


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ca: pki.issue(ca, "no names", []), "at least one subject alternative name"),
        (lambda ca: pki.issue(ca, "bad name", ["two words"]), "neither an IP address nor a DNS name"),
        (lambda ca: pki.self_signed("naive", ["x"], now=dt.datetime(2030, 1, 1)), "time zone"),
        (lambda ca: pki.new_key("dsa"), "unknown key type"),  # type: ignore[arg-type]
    ],
)
def test_mistakes_are_refused(call, message):
    ca = pki.make_ca("CA")
    with pytest.raises(ValueError, match=message):
        call(ca)


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str) -> None:
    """A TLS handshake in memory, no sockets: raises ssl.SSLError when the client refuses."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_python_tls_accepts_issued_certificate_by_ip(tmp_path: Path):
    ca = pki.make_ca("pacslb demo CA")
    leaf = pki.issue(ca, "demo real server", ["127.3.2.1", "localhost"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.write_pem(tmp_path / "server.pem", leaf.bundle(chain=[ca])))
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    _handshake(server_ctx, client_ctx, "127.3.2.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ctx, client_ctx, "127.3.2.2")  # not in the SAN


def test_keys_are_written_0600_and_certificates_0644(tmp_path: Path):
    old = os.umask(0o000)  # the mode must not depend on the caller's umask
    try:
        issued = pki.self_signed("x", ["localhost"])
        key_file = pki.write_pem(tmp_path / "deep" / "er" / "x.pem", issued.bundle())
        cert_file = pki.write_pem(tmp_path / "ca.pem", issued.cert_pem)
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_file.stat().st_mode) == 0o644
    assert key_file.read_bytes() == issued.bundle()


def test_write_replaces_atomically_and_leaves_no_temporary_files(tmp_path: Path):
    target = tmp_path / "vip.pem"
    target.write_bytes(b"old")
    pki.write_pem(target, pki.self_signed("new", ["localhost"]).bundle())
    assert target.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert [p.name for p in tmp_path.iterdir()] == ["vip.pem"]


def test_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "vip.pem"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(pki.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        pki.write_pem(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["vip.pem"]


_TLS_CONFIG = """
version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8443}]
    tls: {certificates: [CERT]}
    real_servers: [{name: rs1, address: 127.0.0.2, port: 80}]
"""


def test_validation_warns_on_self_signed_but_not_on_ca_signed(tmp_path: Path):
    pki.write_pem(tmp_path / "placeholder.pem", pki.self_signed("p", ["localhost"]).bundle())
    loaded = load_text(_TLS_CONFIG.replace("CERT", "placeholder.pem"), base_dir=tmp_path)
    assert loaded.ok
    [problem] = loaded.problems
    assert problem.severity == "warning" and "self-signed" in problem.message

    ca = pki.make_ca("CA")
    pki.write_pem(tmp_path / "vip.pem", pki.issue(ca, "vip", ["127.0.0.1"]).bundle(chain=[ca]))
    loaded = load_text(_TLS_CONFIG.replace("CERT", "vip.pem"), base_dir=tmp_path)
    assert loaded.ok and loaded.problems == []


def test_sans_split_ip_addresses_from_names():
    entries = pki.subject_alt_names(["10.0.0.1", "pacs.example.org", "fe80::1"])
    assert entries == [
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.DNSName("pacs.example.org"),
        x509.IPAddress(ipaddress.ip_address("fe80::1")),
    ]
