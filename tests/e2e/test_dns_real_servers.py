"""A real server named by DNS on the real appliance (docs/rewriting.md#real-servers-named-by-dns): HAProxy asks
the name servers of the service's resolvers while it runs, follows a new address with no reload, keeps the
last address for hold_failed when the name stops resolving, then puts the server into maintenance, and takes
it back when the name resolves again. The name server is a real UDP DNS server on loopback (support.dns_responder)."""

from __future__ import annotations

import socket
import time

import pytest

from pacslb.engines.haproxy.runtime import AdminFlag, RuntimeAPI
from support.configs import config_text, http_check, service
from support.dns_responder import DNSResponder
from support.net import free_port, http_get, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = pytest.mark.e2e

NAME = "pacs-archive.test"
HOLD_FAILED_S = 3


def settings() -> str:
    """Each appliance its own agent port: the default (334) may be held by another appliance running at the same time."""
    return f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}}}"


def _both_free(a: str, b: str) -> int:
    """A port free on both addresses: the name moves between them, the server line keeps its port."""
    for _ in range(20):
        port = free_port(a)
        with socket.socket() as probe:
            try:
                probe.bind((b, port))
            except OSError:
                continue
        return port
    raise AssertionError(f"no port free on both {a} and {b}")


@pytest.fixture
def dns():
    responder = DNSResponder().start()
    yield responder
    responder.stop()


def test_a_real_server_follows_its_name(dns, start_appliance):
    a, b = loopback_host(81), loopback_host(82)
    port = _both_free(a, b)
    servers = [TinyHTTPServer("rs-a", a, port).start(), TinyHTTPServer("rs-b", b, port).start()]
    try:
        dns.set(NAME, a)
        vip_port = free_port()
        text = config_text(
            service(
                "web",
                "layer7-http",
                "127.0.0.1",
                vip_port,
                [f"{{name: archive, address: {NAME}, port: {port}}}"],
                health_check=http_check(300),
                resolvers="site",
            ),
            settings=settings(),
        ) + (
            f"resolvers:\n  - {{name: site, nameservers: ['127.0.0.1:{dns.port}'], hold_valid: 1s, "
            f"hold_failed: {HOLD_FAILED_S}s, timeout: 200ms, system_resolver: false}}\n"
        )
        appliance = start_appliance(text)
        api = RuntimeAPI(appliance.paths.haproxy_admin_socket)
        worker = appliance.haproxy_pid()

        def answer() -> str:
            try:
                return http_get("127.0.0.1", vip_port, "/", timeout=2)[1].strip()
            except OSError:
                return ""

        def state():
            return next(r for r in api.show_servers_state("web") if r.server == "archive")

        # no address at start (init-addr last,none): the name servers give it
        wait_until(lambda: answer() == "rs-a", 20, what="the VIP to reach rs-a by its name")
        assert state().address == a

        dns.set(NAME, b)  # the name moves: HAProxy follows within hold_valid, no reload
        wait_until(lambda: answer() == "rs-b", 20, what="the VIP to follow the name to rs-b")
        assert state().address == b and appliance.haproxy_pid() == worker

        dns.forget(NAME)  # NXDOMAIN from now on: the last address is kept for hold_failed...
        gone = time.monotonic()
        assert answer() == "rs-b"
        wait_until(lambda: state().admin_flags & AdminFlag.RESOLVER_MAINT, 30, what="the server to go into maintenance")
        kept = time.monotonic() - gone
        assert kept >= HOLD_FAILED_S - 0.5, f"maintenance after {kept:.1f}s, before hold_failed ({HOLD_FAILED_S}s)"
        assert wait_until(lambda: http_get("127.0.0.1", vip_port, "/", timeout=2)[0] == 503, 10, what="503 with no server")
        vs = next(v for v in appliance.api_status()["virtual_services"] if v["name"] == "web")
        assert (vs["real_servers"][0]["state"], vs["real_servers"][0]["transition"]) == ("MAINT", "resolution")

        dns.set(NAME, a)  # ...and the server comes back when the name resolves again
        wait_until(lambda: answer() == "rs-a", 20, what="the server back at rs-a")
        assert not state().maintenance and appliance.haproxy_pid() == worker
        assert dns.queries > 3
    finally:
        for server in servers:
            server.stop()
