"""The PowerDNS engine against the real pdns_server on loopback: start, health reloads without a restart, a change
that is refused leaves the old answers, adoption by a new controller, orphans, supervision after a kill -9, stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import dns.message
import dns.query
import pytest

from pacslb.engines.contract import EngineError
from pacslb.engines.powerdns import process
from pacslb.engines.powerdns.engine import PowerDNSEngine
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from support.net import free_port, loopback_host
from support.processes import kill_pids, pid_gone
from support.wait import wait_until

pytestmark = [pytest.mark.engine, pytest.mark.root]


def _config(port: int, address: str, ttl: int = 30):
    data = {"version": 1, "gslb": {
        "listen": {"address": address, "port": port},
        "zones": [{"name": "pacs.test", "nameservers": ["ns1.example.net"]}],
        "sites": [{"name": "dc1", "addresses": ["192.0.2.1"]}, {"name": "dc2", "addresses": ["192.0.2.2"]}],
        "names": [{"name": "sr.pacs.test", "policy": "failover", "sites": ["dc1", "dc2"], "ttl": ttl}]}}  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def _answer(address: str, port: int) -> tuple[list[str], int]:
    reply = dns.query.udp(dns.message.make_query("sr.pacs.test", "A"), address, port=port, timeout=2)
    return sorted(r.to_text() for rrset in reply.answer for r in rrset), reply.answer[0].ttl if reply.answer else 0


@pytest.fixture
def state(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("pdns_server binds as root before it drops to the pdns user")
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir(mode=0o750)
    yield paths
    # teardown, also after a failure: whatever pdns_server of this state directory still runs, by its PID
    pid = process.read_pidfile(process.Files(paths.powerdns_dir).pid)
    if pid is not None and process.serves(pid, process.Files(paths.powerdns_dir)):
        kill_pids([pid])


async def test_the_engine_serves_follows_health_refuses_bad_data_is_adopted_and_supervised(state: StatePaths):
    address, port = loopback_host(53), free_port(loopback_host(53))
    config = _config(port, address)
    gate = asyncio.Lock()
    engine = PowerDNSEngine(state, gate)
    await engine.start(config, state.root)
    first = engine.pid
    assert first is not None and engine.observe().running
    assert _answer(address, port) == (["192.0.2.1"], 30)
    assert oct(state.powerdns_dir.stat().st_mode & 0o777) == "0o755"
    assert Path(f"/proc/{first}/status").read_text().split("Uid:")[1].split()[0] != "0", "pdns_server runs as root"

    # health: reloaded without a restart
    await engine.health_changed({"dc1": False})
    assert _answer(address, port)[0] == ["192.0.2.2"] and engine.pid == first

    # a change: planned, checked, committed as a reload
    changed = _config(port, address, ttl=9)
    prepared = engine.plan(config, changed, state.root)
    assert prepared.changed and prepared.steps == ["powerdns: zones.yaml replaced and reloaded (pdns_control reload, no restart)"]
    await engine.check(prepared)
    await engine.commit(prepared)
    assert _answer(address, port) == (["192.0.2.2"], 9) and engine.applied_digest() == prepared.digest
    assert not engine.plan(changed, changed, state.root).changed
    # undo puts the previous data back
    await engine.undo(prepared)
    assert _answer(address, port)[1] == 30

    # data PowerDNS refuses is refused at check, before anything runs
    bad = engine.plan(config, changed, state.root)
    bad.data.zones = '{"domains": [ {"domain": '
    with pytest.raises(EngineError) as refused:
        await engine.check(bad)
    assert refused.value.refused and _answer(address, port)[1] == 30

    # a new controller adopts the pdns_server that runs (no second copy, no restart)
    adopter = PowerDNSEngine(state, gate)
    assert adopter.orphans() == [f"pdns_server PID {first}"]
    await adopter.start(config, state.root)
    assert adopter.pid == first and adopter.orphans() == []

    # supervision: a pdns_server killed with SIGKILL is started again
    supervising = asyncio.create_task(adopter.supervise())
    try:
        os.kill(first, signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: adopter.restarts == 1 and adopter.observe().running, 30, 0.1,
                                "pdns_server to be started again")  # fmt: skip
        assert adopter.pid != first
        await asyncio.to_thread(wait_until, lambda: _answer(address, port)[0] == ["192.0.2.1"], 10, 0.1, "answers again")
    finally:
        await adopter.stop()
        supervising.cancel()
    assert adopter.pid is None
    await asyncio.to_thread(wait_until, lambda: all(pid_gone(p) for p in (first,)), 10, 0.05, "the old pdns_server gone")


async def test_a_gslb_section_removed_stops_pdns_and_added_starts_it(state: StatePaths):
    address, port = loopback_host(54), free_port(loopback_host(54))
    config = _config(port, address)
    none = validate_data({"version": 1}).config
    engine = PowerDNSEngine(state, asyncio.Lock())
    await engine.start(none, state.root)
    assert engine.pid is None and not engine.plan(none, none, state.root).changed
    started = engine.plan(none, config, state.root)
    assert started.steps == ["powerdns: pdns_server started on the new pdns.conf and zones.yaml"]
    await engine.check(started)
    await engine.commit(started)
    pid = engine.pid
    assert pid is not None and _answer(address, port)[0] == ["192.0.2.1"]
    gone = engine.plan(config, none, state.root)
    assert gone.changed and gone.digest is None
    await engine.commit(gone)
    assert engine.pid is None and engine.applied_digest() is None
    await asyncio.to_thread(wait_until, lambda: pid_gone(pid), 10, 0.05, "pdns_server to end")


async def test_pacslb_stop_without_a_controller_stops_the_pdns_server_left_running(state: StatePaths):
    from typer.testing import CliRunner

    from pacslb.cli import app

    address, port = loopback_host(55), free_port(loopback_host(55))
    engine = PowerDNSEngine(state, asyncio.Lock())
    await engine.start(_config(port, address), state.root)  # as a controller killed with SIGKILL leaves it
    pid = engine.pid
    result = await asyncio.to_thread(CliRunner().invoke, app, ["stop", "--state-dir", str(state.root)])
    assert result.exit_code == 0, result.output
    assert f"stopping pdns_server (PID {pid}), which ran without a controller" in result.output
    await asyncio.to_thread(wait_until, lambda: pid_gone(pid), 10, 0.05, "pdns_server to end")
