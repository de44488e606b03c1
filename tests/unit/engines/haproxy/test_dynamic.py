"""`add server` words: the same options as the server's line in haproxy.cfg, or why HAProxy would refuse it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacslb.engines.haproxy.dynamic import NotDynamic, add_server_words
from pacslb.engines.haproxy.render import HAProxyEnv, backend_view, render
from pacslb.model import load_text

ENV = HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=1)

CONFIG = """
version: 1
resolvers: [{name: dns, nameservers: [192.0.2.53:53]}]
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 192.0.2.10, port: 443}]
    health_check: {type: https, path: /health, interval: 1s, timeout: 500ms, port: 8443}
    PERSISTENCE
    server_tls: {verify: none, sni: pacs.example.org}
    proxy_protocol: v2
    resolvers: dns
    real_servers:
      - {name: rs1, address: 192.0.2.21, port: 443, encrypted: true, max_connections: 50}
      - {name: rs2, address: "2001:db8::22", port: 443, state: drain, weight: 30}
      - {name: rs3, address: 192.0.2.23, port: 443, state: halt}
      - {name: rs4, address: pacs4.example.org, port: 443}
"""


def view(persistence: str = ""):
    loaded = load_text(CONFIG.replace("PERSISTENCE", persistence))
    assert loaded.ok, loaded.problems
    return loaded.config, backend_view(loaded.config, ENV, "web")


def test_words_are_the_server_line_s_plus_default_server():
    config, backend = view()
    address, options = add_server_words(backend, "rs1")
    assert address == "192.0.2.21:443"
    line = f"server rs1 {address} " + " ".join(options[: options.index("inter")])
    # the same words; the file quotes free text (check-sni "pacs.example.org"), the CLI reads no quotes
    assert line in render(config, ENV).replace('"', "")
    assert options[options.index("inter") :] == ("inter", "1s", "rise", "2", "fall", "3", "port", "8443")


def test_ipv6_drain_and_halt():
    _, backend = view()
    address, options = add_server_words(backend, "rs2")
    assert address == "[2001:db8::22]:443"
    assert options[options.index("weight") + 1] == "0"  # drain is weight 0, as in the file
    _, options = add_server_words(backend, "rs3")
    assert "disabled" not in options  # a new server starts in maintenance anyway


@pytest.mark.parametrize(
    "name, persistence, reason",
    [
        ("rs4", "", "is a DNS name"),
        ("rs1", "persistence: {type: http-cookie}", "refuses the cookie keyword"),
        ("nope", "", "has no real server nope"),
    ],
)
def test_not_dynamic(name, persistence, reason):
    _, backend = view(persistence)
    with pytest.raises(NotDynamic, match=reason):
        add_server_words(backend, name)


def test_values_that_need_quoting_are_refused():
    loaded = load_text(CONFIG.replace("PERSISTENCE", "").replace("sni: pacs.example.org", "sni: 'a b'"))
    assert loaded.ok, loaded.problems
    with pytest.raises(NotDynamic, match="needs quoting"):
        add_server_words(backend_view(loaded.config, ENV, "web"), "rs1")


def test_backend_view_of_services_without_a_backend():
    config, _ = view()
    assert backend_view(config, ENV, "missing") is None
