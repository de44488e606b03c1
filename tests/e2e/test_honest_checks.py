"""Honest HTTP health checks, with the real HAProxy: HTTP/1.1 with a Host header, and the traffic port
checked too when the check runs on another port (True PACS VIP 3: traffic on 80, checked with HTTPS on 443).
"""

from __future__ import annotations

import http.server
import threading

import pytest

from support.appliance import Appliance
from support.configs import config_text, real_server, service
from support.net import free_port, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = pytest.mark.e2e


class _Recording(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append((self.request_version, self.headers.get("Host")))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_port_server():
    """An HTTP server on its own port that records the version and Host of every request (the checks)."""
    server = http.server.ThreadingHTTPServer((loopback_host(31), free_port(loopback_host(31))), _Recording)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def state(appliance: Appliance) -> str:
    return appliance.server(appliance.status(), "web", "rs1")["state"]


def test_the_check_sends_http11_with_host_and_a_dead_traffic_port_takes_the_server_down(start_appliance, health_port_server):
    host, health_port = health_port_server.server_address
    traffic = TinyHTTPServer("rs1", host).start()
    try:
        vip, port = loopback_host(32), free_port(loopback_host(32))
        check = f"{{type: http, path: /health, port: {health_port}, interval: 300ms, timeout: 300ms, rise: 1, fall: 1}}"
        appliance = start_appliance(config_text(
            service("web", "layer7-http", vip, port, [real_server(("rs1", host, traffic.port))], health_check=check),
            settings=f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}}}",
        ))  # fmt: skip
        wait_until(lambda: state(appliance) == "UP", 30, what="rs1 UP")
        # HTTP/1.1 with the VIP's address as Host: what a client that uses the VIP's address sends
        assert ("HTTP/1.1", vip) in health_port_server.seen, health_port_server.seen[:3]
        assert all(seen == ("HTTP/1.1", vip) for seen in health_port_server.seen), health_port_server.seen

        traffic.stop()  # the health port still answers 200: only the traffic port's connection fails
        wait_until(lambda: state(appliance) == "DOWN", 30, what="rs1 DOWN once its traffic port refuses")
        traffic.start()
        wait_until(lambda: state(appliance) == "UP", 30, what="rs1 UP again")
    finally:
        traffic.stop()
