"""Health probes and the rise/fall counting, without sockets where possible; one real loopback connect."""

from __future__ import annotations

import asyncio

from pacslb.health import ConnectProbe, HTTPProbe, Result, Target, Watch, probe_for
from pacslb.model.config import ConnectCheck, HTTPCheck, NoCheck


def test_http_judge() -> None:
    probe = HTTPProbe(timeout=1, expect_status=(200, 204), expect_body="OK")
    assert probe.judge(b"HTTP/1.1 200 Fine\r\n\r\nall OK") == Result(True, "HTTP 200")
    assert not probe.judge(b"HTTP/1.1 503 No\r\n\r\n").up
    assert "lacks" in probe.judge(b"HTTP/1.1 204 x\r\n\r\nnope").reason
    assert "not an HTTP answer" in probe.judge(b"SSH-2.0-x\r\n").reason
    assert b"Host: [2001:db8::1]" in HTTPProbe(timeout=1).request(Target("2001:db8::1", 80))


def test_watch_rise_and_fall() -> None:
    w = Watch(("vs", "rs"), Target("127.0.0.1", 1), ConnectProbe(1), 1, rise=2, fall=3)
    down, up = Result(False, "x"), Result(True, "y")
    assert [w.record(down), w.record(down), w.record(down)] == [False, False, True] and not w.up
    assert [w.record(up), w.record(down), w.record(up), w.record(up)] == [False, False, False, True] and w.up


def test_probe_for_model_checks() -> None:
    assert probe_for(NoCheck(type="none")) is None
    assert isinstance(probe_for(ConnectCheck(type="connect")), ConnectProbe)
    https = probe_for(HTTPCheck(type="https", path="/health"))
    assert isinstance(https, HTTPProbe) and https.tls and https.path == "/health"


async def test_connect_probe_on_loopback() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert (await ConnectProbe(2).probe(Target("127.0.0.1", port))).up
        http = await HTTPProbe(timeout=2).probe(Target("127.0.0.1", port))
        assert not http.up
    result = await ConnectProbe(2).probe(Target("127.0.0.1", port))
    assert not result.up and "connect failed" in result.reason
