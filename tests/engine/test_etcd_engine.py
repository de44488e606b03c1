"""The etcd engine against the real etcd on loopback (a one-member cluster, which the model allows for a test): start,
the JSON gateway answers, a new client port is a commit that restarts the member on it and keeps its data, undo puts
the previous file back, a new controller adopts the member, orphans, supervision after a kill -9, stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import pytest

from pacslb.engines.etcd import process
from pacslb.engines.etcd.engine import EtcdEngine
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from support.net import free_port, loopback_host
from support.processes import kill_pids, pid_gone
from support.wait import wait_until

pytestmark = [pytest.mark.engine]


def _config(address: str, client_port: int, peer_port: int):
    data = {"version": 1, "cluster": {
        "name": "t", "node": "a", "nodes": [{"name": "a", "address": address}],
        "etcd": {"client_port": client_port, "peer_port": peer_port},
        "bgp": {"local_as": 65010, "neighbors": [{"address": loopback_host(250), "remote_as": 65000}]}}}  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


async def _put_get(address: str, port: int, key: str, value: str | None = None) -> str | None:
    from pacslb.cluster.etcd import EtcdClient

    client = EtcdClient([f"http://{address}:{port}"], timeout=5)
    try:
        if value is not None:
            await client.put(key, value)
        found, _ = await client.get(key)
        return found.decode() if found is not None else None
    finally:
        await client.close()


@pytest.fixture
def state(tmp_path: Path):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: `make deps` installs Debian's etcd-server")
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir(mode=0o750)
    yield paths
    # teardown, also after a failure: the etcd of this state directory that still runs, by its PID
    pid = process.adopt(process.Files(paths.etcd_dir))
    if pid is not None:
        kill_pids([pid])


async def test_the_member_starts_restarts_on_a_new_port_with_its_data_is_adopted_and_supervised(state: StatePaths):
    address = loopback_host(240)
    ports = [free_port(address) for _ in range(3)]
    config = _config(address, ports[0], ports[1])
    engine = EtcdEngine(state, asyncio.Lock())
    assert engine.wanted(config)
    await engine.start(config, state.root)
    first = engine.pid
    assert first is not None and engine.applied_digest() is not None
    assert await _put_get(address, ports[0], "/k", "v1") == "v1"

    moved = _config(address, ports[2], ports[1])
    prepared = engine.plan(config, moved, state.root)
    assert prepared.changed and prepared.steps == ["etcd: etcd.conf.yml replaced, etcd restarted"]
    await engine.check(prepared)
    await engine.commit(prepared)
    assert pid_gone(first) and engine.pid != first
    assert await _put_get(address, ports[2], "/k") == "v1"  # the same data directory: the member keeps its data
    assert not engine.plan(moved, moved, state.root).changed

    await engine.undo(prepared)  # back on the first port
    assert await _put_get(address, ports[0], "/k") == "v1"

    # a new controller adopts the member that runs this state directory
    adopting = EtcdEngine(state, asyncio.Lock())
    await adopting.start(config, state.root)
    assert adopting.pid == engine.pid and adopting.orphans() == []

    # supervision: a member killed with SIGKILL is started again
    supervise = asyncio.create_task(adopting.supervise())
    killed = adopting.pid
    os.kill(killed, signal.SIGKILL)
    # the supervisor counts the restart once start_again returned, after the new PID is set: wait for the count
    await asyncio.to_thread(wait_until, lambda: adopting.restarts == 1 and adopting.is_running(), 30, 0.1, "a new member")
    assert adopting.pid != killed
    assert await _put_get(address, ports[0], "/k") == "v1"
    await adopting.stop()
    await supervise
    assert adopting.pid is None and process.adopt(process.Files(state.etcd_dir)) is None
    assert (state.etcd_dir / "data").is_dir()  # stop leaves the cluster's data

    # a configuration without the cluster section stops it within a change
    await adopting.start(config, state.root)
    gone = adopting.plan(config, validate_data({"version": 1}).config, state.root)
    assert gone.changed and "no longer an etcd member" in gone.steps[0]
    pid = adopting.pid
    await adopting.commit(gone)
    assert pid_gone(pid)
