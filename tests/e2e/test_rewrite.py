"""URL rewriting on the real appliance (docs/rewriting.md): real servers behind backend-only services receive
the path and Host a rule's rewrite made, and the rule that took a request is the one whose rewrite applies
(a rewritten path does not make a later rule take it)."""

from __future__ import annotations

import http.client

import pytest

from support.configs import config_text, http_check, real_server, service
from support.net import free_port, loopback_host
from support.realservers import EchoHTTPServer
from support.wait import wait_until

pytestmark = pytest.mark.e2e


def settings() -> str:
    """Each appliance its own agent port: the default (334) may be held by another appliance running at the same time."""
    return f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}}}"


def get(port: int, path: str, host: str = "vip.example") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode().strip()
    finally:
        conn.close()


@pytest.fixture
def echo_servers():
    started = [EchoHTTPServer("archive", loopback_host(211)).start(), EchoHTTPServer("viewer", loopback_host(212)).start()]
    yield started
    for server in started:
        server.stop()


def test_real_servers_receive_the_rewritten_path_and_host(echo_servers, start_appliance):
    archive, viewer = echo_servers
    port = free_port()
    rules = (
        "[{name: dicomweb, match: {path_begins: [/dicomweb/]}, use_service: archive,"
        " rewrite: {path_prefix: {prefix: /dicomweb/, replace: /dcm4chee-arc/rs/}, host: 'archive.example:8080'}},"
        " {name: legacy, match: {path_begins: [/viewer/]}, use_service: viewer,"
        " rewrite: {path_regex: {pattern: '^/viewer/study/([0-9.]+)$', replace: '/ui/studies/\\1/view'}}},"
        " {name: native, match: {path_begins: [/dcm4chee-arc/]}, use_service: viewer}]"
    )
    check = http_check(300)
    text = config_text(
        service("vip", "layer7-http", "127.0.0.1", port, [], health_check="{type: none}", rules=rules, default_service="viewer")[
            :-1
        ],
        service("archive", "backend-only", None, None, [real_server(archive)], health_check=check),
        service("viewer", "backend-only", None, None, [real_server(viewer)], health_check=check),
        settings=settings(),
    )
    appliance = start_appliance(text)
    wait_until(lambda: get(port, "/")[0] == 200, 15, what="the VIP answers")

    # prefix and Host: the query string stays; the rule took it, so 'native' (which the new path matches) did not
    assert get(port, "/dicomweb/studies?PatientID=7") == (
        200,
        "archive /dcm4chee-arc/rs/studies?PatientID=7 archive.example:8080",
    )
    # regex: the whole path is replaced, the client's Host stays
    assert get(port, "/viewer/study/1.2.840.1") == (200, "viewer /ui/studies/1.2.840.1/view vip.example")
    # the regex does not match: the rule still takes the request, its path unchanged
    assert get(port, "/viewer/other") == (200, "viewer /viewer/other vip.example")
    # a rule without rewrite, and the default service: as sent
    assert get(port, "/dcm4chee-arc/rs/x") == (200, "viewer /dcm4chee-arc/rs/x vip.example")
    assert get(port, "/elsewhere", host="other.example") == (200, "viewer /elsewhere other.example")
    assert ("/dcm4chee-arc/rs/studies?PatientID=7", "archive.example:8080") in archive.seen
    assert all(path.startswith("/dcm4chee-arc/rs/") for path, _ in archive.seen if path != "/")
    assert appliance.haproxy_pid() is not None
