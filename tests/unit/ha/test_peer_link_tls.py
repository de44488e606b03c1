"""The HA peer link's TLS, set in code on both ends: TLS 1.2 at least and AEAD suites only (issue 22, item 8).

The server is the one HAPair._serve makes (peer_link.server_options + harden_server on an InLoopServer), on
127.0.0.1; the clients are the peer's own (peer_link.client_context) and two that offer only what must be
refused: CBC suites over TLS 1.2, and TLS 1.1.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pacslb.ha import peer_link
from pacslb.serving import InLoopServer


def nodes(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Two nodes' state directories and certificates: (a, a's certificate, b, b's certificate)."""
    a, b = tmp_path / "a", tmp_path / "b"
    return a, peer_link.ensure_node_certificate(a, addresses=["127.0.0.1"]), b, peer_link.ensure_node_certificate(b)


def test_the_client_side_offers_tls12_and_aead_only(tmp_path):
    a, cert_a, b, _ = nodes(tmp_path)
    ctx = peer_link.client_context(b, cert_a)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    ciphers = ctx.get_ciphers()
    assert ciphers and all(c["aead"] for c in ciphers), [c["name"] for c in ciphers if not c["aead"]]
    assert not any("CBC" in c["description"] or c["name"].endswith("-SHA") for c in ciphers)


def handshake(port: int, ctx: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        return tls.cipher()[0]


def weak_client(b: Path, *, cbc: bool = False, tls11: bool = False) -> ssl.SSLContext:
    cert, key = peer_link.node_files(b)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(cert), str(key))
    if cbc:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    if tls11:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 offers TLS 1.1 only at security level 0
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


async def test_the_server_side_refuses_cbc_and_old_versions(tmp_path):
    a, cert_a, b, cert_b = nodes(tmp_path)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ha/v1/state")
    async def state() -> dict:
        return {"ok": True}

    sock = peer_link.server_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = InLoopServer(app, sock, **peer_link.server_options(a, cert_b))
    peer_link.harden_server(server)
    assert server.tls_context().minimum_version == ssl.TLSVersion.TLSv1_2
    await server.start()
    try:
        async with httpx.AsyncClient(verify=peer_link.client_context(b, cert_a), timeout=10) as peer:
            answer = await peer.get(f"https://127.0.0.1:{port}/ha/v1/state")
        assert answer.json() == {"ok": True}
        cipher = await asyncio.to_thread(handshake, port, peer_link.client_context(b, cert_a))
        assert "GCM" in cipher or "CHACHA20" in cipher, cipher
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.to_thread(handshake, port, weak_client(b, cbc=True))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.to_thread(handshake, port, weak_client(b, tls11=True))
    finally:
        await server.close()
