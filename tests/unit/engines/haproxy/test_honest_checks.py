"""HTTP checks as HAProxy rules: HTTP/1.1 with a Host header, and a connection to the traffic port when the
check runs on another port (the view, before the template lays it out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pacslb.engines.haproxy.render import Backend, HAProxyEnv, build, render_line
from pacslb.model import validate_data

ENV = HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=2)
CHECK = {"type": "https", "path": "/health", "port": 443}


def check_lines(check: dict[str, Any], ports=(80, 80), listen: str = "192.0.2.10") -> list[str]:
    """The http-check lines of backend `be` (backend-only, reached from `gw` listening on `listen`)."""
    servers = [{"name": f"rs{i}", "address": f"192.0.2.{21 + i}", "port": p} for i, p in enumerate(ports)]
    loaded = validate_data({"version": 1, "virtual_services": [
        {"name": "gw", "mode": "layer7-http", "listen": [{"address": listen, "port": 80}], "default_service": "be"},
        {"name": "be", "mode": "backend-only", "health_check": check, "real_servers": servers},
    ]})  # fmt: skip
    assert loaded.ok, [str(p) for p in loaded.problems]
    be = next(s for s in build(loaded.config, ENV).sections if isinstance(s, Backend) and s.name == "be")
    return [render_line(d) for d in be.health_check if d[0] == "http-check"]


def test_http11_with_the_vip_address_as_host_and_the_traffic_port_connected():
    assert check_lines(CHECK) == [
        "http-check connect default",
        'http-check send meth GET uri "/health" ver HTTP/1.1 hdr Host "192.0.2.10"',
        "http-check expect status 200",
        "http-check connect port 80",
    ]


def test_a_configured_host_wins_and_a_wildcard_listener_gives_localhost():
    assert 'hdr Host "pacs.example.org"' in check_lines({**CHECK, "host": "pacs.example.org"})[1]
    assert 'hdr Host "localhost"' in check_lines(CHECK, listen="0.0.0.0")[1]
    assert 'hdr Host "[2001:db8::10]"' in check_lines(CHECK, listen="2001:db8::10")[1]


def test_no_second_connection_when_there_is_nothing_more_to_check():
    plain = ['http-check send meth GET uri "/health" ver HTTP/1.1 hdr Host "192.0.2.10"', "http-check expect status 200"]
    assert check_lines({**CHECK, "check_traffic_port": False}) == plain  # switched off
    assert check_lines(CHECK, ports=(443, 443)) == plain  # the check runs on the traffic port already
    assert check_lines({k: v for k, v in CHECK.items() if k != "port"}) == plain  # no check port
    assert check_lines(CHECK, ports=(80, 8080)) == plain  # one port per backend in HAProxy: real servers differ
