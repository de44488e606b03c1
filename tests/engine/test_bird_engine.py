"""The BIRD engine (engines/bird/engine.py) on the engine contract, against the real bird: start, announce (a reload,
the same PID), a change committed and undone with `birdc configure`, a killed bird started again by supervise, a
restarted controller adopting it with its announcement, the section removed. No network but loopback: the neighbour
is a free port on 127.0.0.1 nobody answers, BIRD listens on another free port, and BFD is off (its ports are fixed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import pytest

from pacslb.engines.bird import process
from pacslb.engines.bird.engine import BirdEngine
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from support.net import free_port
from support.processes import kill_pids, processes_of
from support.wait import wait_until

pytestmark = [pytest.mark.engine, pytest.mark.root]

VIP, VIP2 = "192.0.2.10", "192.0.2.11"


def config(hold: str = "9s", cluster: bool = True, *, neighbor_port: int, local_port: int):
    data = {
        "version": 1,
        "virtual_services": [{"name": "web", "mode": "layer7-tcp",
                              "listen": [{"address": VIP, "port": 443}, {"address": VIP2, "port": 444}],
                              "real_servers": [{"name": "rs1", "address": "127.0.0.1", "port": 8443}]}],
    }  # fmt: skip
    if cluster:
        data["cluster"] = {"name": "t", "node": "lb1", "nodes": [{"name": "lb1", "address": "127.0.0.1"}],
                           "bgp": {"local_as": 65010, "local_port": local_port, "hold_time": hold, "keepalive": "1s",
                                   "neighbors": [{"address": "127.0.0.2", "remote_as": 65000, "port": neighbor_port}],
                                   "bfd": {"enabled": False}}}  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def routes(engine: BirdEngine) -> str:
    return process.birdc(engine.files, "show", "route")


def test_the_bird_engine_on_the_contract(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("BIRD's capabilities need root")
    if shutil.which("bird") is None:
        pytest.fail("bird is not installed (make deps: bird2)")
    state = tmp_path / "s"
    state.mkdir(mode=0o750)
    paths = StatePaths(state)
    ports = {"neighbor_port": free_port(), "local_port": free_port()}
    first, slower = config(**ports), config("12s", **ports)

    async def scenario() -> None:
        engine = BirdEngine(paths, asyncio.Lock())
        assert engine.wanted(first) and not engine.wanted(config(cluster=False, **ports))
        await engine.start(first, tmp_path)
        pid = engine.pid
        assert pid is not None and engine.observe().running and engine.applied_digest() is not None
        assert VIP not in routes(engine)  # nothing is announced before the node is found able to serve

        assert await engine.announce([VIP], {VIP2: "web: every real server is down"})
        assert f"{VIP}/32" in routes(engine) and VIP2 not in routes(engine) and engine.pid == pid  # a reload
        assert not await engine.announce([VIP], {})  # the same: nothing done
        state_now = engine.observe()
        assert state_now.detail["announced"] == [VIP] and state_now.detail["configures"] == 1
        sessions = engine.refresh_sessions()
        assert sessions["bgp"][0]["neighbor"] == "127.0.0.2" and not sessions["bgp"][0]["established"]

        # a change of the BGP timers: checked, committed with `birdc configure` (same PID), undone
        before = engine.applied_digest()
        prepared = engine.plan(first, slower, tmp_path)
        assert prepared.changed and prepared.digest != before
        await engine.check(prepared)
        await engine.commit(prepared)
        assert engine.pid == pid and "hold time 12;" in engine.files.config.read_text()
        assert engine.applied_digest() == prepared.digest and f"{VIP}/32" in routes(engine)
        await engine.undo(prepared)
        assert engine.applied_digest() == before and "hold time 9;" in engine.files.config.read_text()
        assert not engine.plan(first, first, tmp_path).changed

        # killed: supervise starts it again on the same files (the announcement kept)
        supervisor = asyncio.get_running_loop().create_task(engine.supervise())
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: engine.restarts == 1 and engine.is_running(), 30, 0.05, "bird again")
        assert engine.pid != pid and f"{VIP}/32" in routes(engine)
        engine._stopping.set()
        await supervisor

        # a restarted controller adopts it, its announcement too
        again = BirdEngine(paths, asyncio.Lock())
        await again.start(first, tmp_path)
        assert again.pid == engine.pid and again.announced == [VIP] and again.orphans() == []

        # the cluster section removed: bird stopped within the change
        gone = again.plan(first, config(cluster=False, **ports), tmp_path)
        assert gone.changed and gone.digest is None
        await again.check(gone)
        await again.commit(gone)
        assert not again.observe().running and process.adopt(again.files) is None

    try:
        asyncio.run(scenario())
    finally:
        kill_pids(processes_of(state))
