"""The health-check service without HAProxy: which servers it watches, what it tells HAProxy, the agent port."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pacslb.health.agent_server import AgentServer
from pacslb.health.base import Result, Target
from pacslb.health.probes import ConnectProbe
from pacslb.health.runner import Watch
from pacslb.health.service import HealthService, agent_reply, appliance_checked, context, reason_text, watches
from pacslb.model import load_text
from support.net import free_port

CONFIG = """
version: 1
settings: {health: {agent_port: 4444}}
virtual_services:
  - name: dicom
    mode: layer7-tcp
    listen: [{address: 192.0.2.1, port: 104}]
    health_check: {type: dicom-echo, called_ae: ARCHIVE, interval: 2s, timeout: 1s, rise: 3, fall: 2}
    real_servers:
      - {name: a1, address: 192.0.2.11, port: 11112}
      - {name: a2, address: 192.0.2.12, port: 11112}
  - name: hl7
    mode: layer7-tcp
    listen: [{address: 192.0.2.2, port: 2575}]
    health_check: {type: hl7, port: 2600}
    real_servers: [{name: e1, address: 192.0.2.21, port: 2575}]
  - name: web
    mode: layer7-http
    listen: [{address: 192.0.2.3, port: 80}]
    default_service: app
    real_servers: [{name: w1, address: 192.0.2.31, port: 80}]
  - name: app
    mode: backend-only
    health_check: {type: external, script: /bin/true}
    real_servers: [{name: p1, address: 192.0.2.41, port: 8080}]
  - name: l4
    mode: layer4-nat
    listen: [{address: 192.0.2.5, port: 104}]
    health_check: {type: dicom-echo}
    real_servers: [{name: n1, address: 192.0.2.51, port: 104}]
"""


def config():
    loaded = load_text(CONFIG)
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config


def test_watches_cover_layer7_and_backend_only_appliance_checks_only() -> None:
    c = config()
    assert [vs.name for vs in appliance_checked(c)] == ["dicom", "hl7", "app"]  # not the connect check, not Layer 4
    found = {w.key: w for w in watches(c)}
    assert set(found) == {("dicom", "a1"), ("dicom", "a2"), ("hl7", "e1"), ("app", "p1")}
    a1 = found[("dicom", "a1")]
    assert (a1.target, a1.interval, a1.rise, a1.fall) == (Target("192.0.2.11", 11112), 2.0, 3, 2)
    assert found[("hl7", "e1")].target == Target("192.0.2.21", 2600)  # health_check.port wins
    assert context(c.service("dicom")).vip == "192.0.2.1" and context(c.service("dicom")).vip_port == 104
    assert context(c.service("app")).vip is None  # a backend-only service has no VIP of its own


def _watch(rise: int = 2, fall: int = 2) -> Watch:
    return Watch(("dicom", "a1"), Target("127.0.0.1", 1), ConnectProbe(1), 1, rise=rise, fall=fall)


def test_agent_reply_says_nothing_until_decided_then_up_or_down_with_the_reason() -> None:
    w = _watch()
    assert agent_reply(None) == "" and agent_reply(w) == ""
    w.record(Result(False, "association rejected: called AE title not recognised"))
    assert agent_reply(w) == ""  # one failure of fall=2: HAProxy keeps what it has
    w.record(Result(False, "association rejected: called AE title not recognised"))
    assert agent_reply(w) == "down #association rejected: called AE title not recognised"
    w.record(Result(True, "C-ECHO success"))
    assert agent_reply(w).startswith("down")  # rise=2
    w.record(Result(True, "C-ECHO success"))
    assert agent_reply(w) == "up"


def test_a_restarted_watch_that_passes_says_up_without_a_change() -> None:
    """After a controller restart a server HAProxy holds down is brought up once `rise` passes are seen."""
    w = _watch(rise=2)
    assert not w.record(Result(True, "ok")) and agent_reply(w) == ""
    assert not w.record(Result(True, "ok")) and agent_reply(w) == "up"  # no change of state, but decided


def test_reason_text_is_one_safe_bounded_line() -> None:
    assert reason_text("bad\r\nthing # here") == "bad  thing   here"
    assert len(reason_text("x" * 1000)) == 200
    assert reason_text("\n") == "check failed"


def test_service_answers_by_service_and_real_server() -> None:
    service = HealthService(None)
    w = _watch(fall=1)
    w.record(Result(False, "refused"))
    service.checker.watches[w.key] = w
    assert service.answer("dicom/a1\n") == "down #refused"
    assert service.answer("dicom/nope") == "" and service.answer("") == ""
    results = service.check_results()
    assert results[("dicom", "a1")]["up"] is False and results[("dicom", "a1")]["reason"] == "refused"


async def test_agent_server_answers_one_line_per_connection() -> None:
    server = AgentServer(lambda request: "down #x" if request == "dicom/a1" else "", "127.0.0.1", 0)
    await server.start()
    try:

        async def ask(line: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            writer.write(line)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answer

        assert await ask(b"dicom/a1\n") == b"down #x\n"
        assert await ask(b"other/x\n") == b""  # nothing known: closed without a word
    finally:
        await server.close()


async def test_feedback_style_server_answers_without_a_request() -> None:
    async def respond(_request: str) -> str:
        return "up 42%"

    server = AgentServer(respond, "127.0.0.1", 0, reads_request=False)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        assert await asyncio.wait_for(reader.read(), 5) == b"up 42%\n"
        writer.close()
    finally:
        await server.close()


def with_agent_port(c, port: int):
    health = c.settings.health.model_copy(update={"agent_port": port})
    return c.model_copy(update={"settings": c.settings.model_copy(update={"health": health})})


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_service_holds_the_agent_port_even_without_checks_and_reports_a_busy_port() -> None:
    """A port the appliance does not hold is a port a local user can answer HAProxy on (docs/security.md)."""
    from pacslb.serving import SubsystemError

    service = HealthService(None)
    c = config()
    port = free_port()
    await service.start(with_agent_port(c.model_copy(update={"virtual_services": [c.service("web")]}), port))
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    busy = blocker.sockets[0].getsockname()[1]
    try:
        assert service.agent is not None and service.agent.bound_port == port  # nothing to check, held all the same
        assert listening(port)
        await service.stop()  # the watches stop; the port is held until close (after the engines stopped)
        assert listening(port)
        with pytest.raises(SubsystemError, match=r"settings.health.agent_port: cannot listen on 127.0.0.1:\d+ .*below 1024"):
            await HealthService(None).start(with_agent_port(c, busy))
    finally:
        blocker.close()
        await service.close()
    assert not listening(port)


async def test_a_new_agent_port_is_bound_before_the_change_and_the_old_one_closed_after() -> None:
    service = HealthService(None)
    old_port, new_port = free_port(), free_port()
    old = with_agent_port(config(), old_port)
    new = with_agent_port(config(), new_port)
    await service.start(old)
    try:
        assert await service.prepare(old, new) is None
        assert listening(old_port) and listening(new_port)  # HAProxy may ask either while the change commits
        await service.applied(new)
        assert service.agent.port == new_port and listening(new_port) and not listening(old_port)
        assert await service.prepare(new, new) is None and not service._prepared  # the same port: nothing to bind
    finally:
        await service.close()


async def test_a_change_to_a_busy_agent_port_is_refused_and_a_change_that_did_not_land_releases_its_port() -> None:
    service = HealthService(None)
    old_port, free = free_port(), free_port()
    old = with_agent_port(config(), old_port)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    busy = blocker.sockets[0].getsockname()[1]
    await service.start(old)
    try:
        refusal = await service.prepare(old, with_agent_port(config(), busy))
        assert refusal is not None and refusal.startswith(f"settings.health.agent_port: cannot listen on 127.0.0.1:{busy}")
        assert "nothing was changed" in refusal
        assert await service.prepare(old, with_agent_port(config(), free)) is None and listening(free)
        await service.release(old)  # the engines refused that change: the old configuration runs on
        assert not listening(free) and listening(old_port) and service.agent.port == old_port
    finally:
        blocker.close()
        await service.close()
