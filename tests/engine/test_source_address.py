"""source_address against the real HAProxy on loopback: a real server sees the chosen address as its peer.

All of 127.0.0.0/8 is local, so HAProxy can leave from 127.X.Y.55 while the real server listens on
127.X.Y.1; a second service without source_address leaves from the route's address (127.0.0.1), which
shows that the address seen is the one chosen, not loopback's default.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from pacslb import files
from pacslb.engines.haproxy import process
from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from support.net import LOOPBACK, free_port, loopback_host
from support.peer_server import PeerServer

pytestmark = [pytest.mark.engine, pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")]


@pytest.fixture
def paths():
    root = Path(tempfile.mkdtemp(prefix="pacslb-src-", dir="/tmp"))  # short: HAProxy's socket paths are limited
    paths = StatePaths(root)
    paths.haproxy_dir.mkdir()
    yield paths
    for pid in process.masters_of(paths):
        process.stop(pid)
    shutil.rmtree(root, ignore_errors=True)


def first_line(port: int) -> str:
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        return s.makefile().readline().strip()


def http_body(port: int) -> str:
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    return answer.decode().split("\r\n\r\n", 1)[1].strip()


def test_real_servers_see_the_chosen_source_address(paths: StatePaths) -> None:
    server_host, source = loopback_host(1), loopback_host(55)
    tcp_port, http_port = free_port(server_host), free_port(server_host)
    listen = {name: free_port() for name in ("dicom", "web", "plain")}

    def vs(name: str, mode: str, port: int, **fields) -> dict:
        return {"name": name, "mode": mode, "listen": [{"address": LOOPBACK, "port": listen[name]}],
                "health_check": {"type": "none"}, "real_servers": [{"name": "rs1", "address": server_host, "port": port}],
                **fields}  # fmt: skip

    loaded = validate_data({"version": 1, "virtual_services": [
        vs("dicom", "layer7-tcp", tcp_port, source_address=source),
        vs("web", "layer7-http", http_port, source_address=source),
        vs("plain", "layer7-tcp", tcp_port),
    ]})  # fmt: skip
    assert loaded.ok, [str(p) for p in loaded.problems]
    files.atomic_write(paths.haproxy_config, render(loaded.config, HAProxyEnv(state_dir=paths.root, base_dir=paths.root)))
    assert process.check(paths.haproxy_config).ok
    servers = [PeerServer("pacs", server_host, tcp_port).start(), PeerServer("web", server_host, http_port, http=True).start()]
    try:
        process.start(paths)
        assert first_line(listen["dicom"]) == f"pacs {source}"
        assert http_body(listen["web"]) == f"web {source}"
        assert first_line(listen["plain"]) == "pacs 127.0.0.1"  # the route's address when none is chosen
    finally:
        for server in servers:
            server.stop()
