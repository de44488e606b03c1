"""The WAF engine on the real Apache, without the rest of the appliance: start, a change whose graceful restart
fails half-way (a port taken between the check and the commit), undo back to the previous file, adopt, stop."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from pacslb.engines.contract import EngineError
from pacslb.engines.waf import process
from pacslb.engines.waf.engine import WafEngine
from pacslb.engines.waf.paths import WafPaths
from pacslb.model import validate_data
from support.net import free_port
from support.wait import wait_until

pytestmark = [pytest.mark.engine, pytest.mark.root]


def _config(first_port: int, services: int):
    vss = [{"name": f"s{i}", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 20000 + i}],
            "real_servers": [{"name": "rs", "address": "127.0.0.1", "port": 9}], "waf": {"mode": "block"}}
           for i in range(services)]  # fmt: skip
    loaded = validate_data({"version": 1, "settings": {"waf": {"first_port": first_port}}, "virtual_services": vss})
    assert loaded.ok, loaded.problems
    return loaded.config


def _answers(port: int) -> bool:
    """Apache answers on the port (503: nothing behind it here, which is enough to show that it serves)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def test_a_commit_that_fails_half_way_is_undone_and_the_previous_file_serves(tmp_path: Path):
    assert shutil.which("apache2"), "make deps"
    first = free_port()
    while not process.port_free(first + 1):
        first = free_port()
    one, two = _config(first, 1), _config(first, 2)
    state = tmp_path / "state"
    paths = WafPaths(state)
    engine = WafEngine(state, asyncio.Lock())

    async def scenario():
        await engine.start(one, tmp_path)
        pid = engine.pid
        assert pid is not None and _answers(first)
        previous = paths.config.read_text()
        prepared = engine.plan(one, two, tmp_path)
        assert prepared.changed and prepared.data.new_ports == (first + 1,)
        await engine.check(prepared)
        with socket.socket() as holder:  # taken after the check: the graceful restart cannot bind it
            holder.bind(("127.0.0.1", first + 1))
            holder.listen()
            with pytest.raises(EngineError):
                await engine.commit(prepared)
            await engine.undo(prepared)
        assert paths.config.read_text() == previous
        assert engine.applied_digest() is not None
        wait_until(lambda: _answers(first), 30, what="Apache on the previous file")
        # a controller restart adopts the Apache that runs (no second one)
        successor = WafEngine(state, asyncio.Lock())
        await successor.start(one, tmp_path)
        assert successor.pid == engine.pid and successor.orphans() == []
        await successor.stop()
        wait_until(lambda: not process.alive(successor.pid), 15, what="Apache stopped")
        assert pid != 0

    try:
        asyncio.run(scenario())
    finally:
        found = process.adopt(paths)
        if found is not None:
            process.stop(found)
        shutil.rmtree(paths.run, ignore_errors=True)
