"""The health service's check workers with real servers: 2 workers decide as 1 does (dicom-echo against dcmtk,
hl7 against MLLP listeners, external scripts), a worker killed with SIGKILL is started again and checks its
real servers anew, a change back to 1 worker stops them, and the workers end when the controller ends
(stopped, or killed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from health_peers import MLLPResponder

from pacslb.health.service import HealthService
from pacslb.model import load_text
from support.net import LOOPBACK, free_port
from support.processes import cmdline, kill_pids, pid_gone
from support.wait import wait_until

pytestmark = pytest.mark.engine  # dcmtk's storescp and dcmqrscp

CONFIG = """
version: 1
settings: {{health: {{agent_port: {agent_port}, workers: {workers}}}}}
virtual_services:
  - name: dicom
    mode: layer7-tcp
    listen: [{{address: 192.0.2.1, port: 104}}]
    health_check: {{type: dicom-echo, called_ae: ARCHIVE, interval: 2s, timeout: 2s, rise: 1, fall: 1}}
    real_servers:
      - {{name: a1, address: 127.0.0.1, port: {storescp1}}}
      - {{name: a2, address: 127.0.0.1, port: {storescp2}}}
      - {{name: rejects, address: 127.0.0.1, port: {dcmqrscp}}}
      - {{name: closed, address: 127.0.0.1, port: {closed}}}
  - name: hl7
    mode: layer7-tcp
    listen: [{{address: 192.0.2.2, port: 2575}}]
    health_check: {{type: hl7, interval: 2s, timeout: 2s, rise: 1, fall: 1}}
    real_servers:
      - {{name: aa, address: 127.0.0.1, port: {hl7_aa}}}
      - {{name: ae, address: 127.0.0.1, port: {hl7_ae}}}
  - name: script-ok
    mode: layer7-tcp
    listen: [{{address: 192.0.2.3, port: 80}}]
    health_check: {{type: external, script: /usr/bin/true, interval: 2s, timeout: 2s, rise: 1, fall: 1}}
    real_servers: [{{name: t1, address: 127.0.0.1, port: 9}}]
  - name: script-fails
    mode: layer7-tcp
    listen: [{{address: 192.0.2.4, port: 80}}]
    health_check: {{type: external, script: /usr/bin/false, interval: 2s, timeout: 2s, rise: 1, fall: 1}}
    real_servers: [{{name: f1, address: 127.0.0.1, port: 9}}]
"""

EXPECTED = {
    ("dicom", "a1"): True,
    ("dicom", "a2"): True,
    ("dicom", "rejects"): False,  # dcmqrscp does not know the called AE title ARCHIVE
    ("dicom", "closed"): False,
    ("hl7", "aa"): True,
    ("hl7", "ae"): False,
    ("script-ok", "t1"): True,
    ("script-fails", "f1"): False,
}


async def until(predicate, timeout: float = 30.0, what: str = "condition"):
    """wait_until for the event loop: the service's workers and the MLLP listeners run in this loop."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


@pytest.fixture
async def peers(dicom_scp):
    storescp1, storescp2 = dicom_scp("ARCHIVE"), dicom_scp("ARCHIVE")
    dcmqrscp = dicom_scp("QR", kind="dcmqrscp")
    aa, ae = await MLLPResponder("AA").start(), await MLLPResponder("AE", text="unknown message").start()
    try:
        yield {"storescp1": storescp1.port, "storescp2": storescp2.port, "dcmqrscp": dcmqrscp.port,
               "closed": free_port(), "hl7_aa": aa.port, "hl7_ae": ae.port}  # fmt: skip
    finally:
        await aa.stop()
        await ae.stop()


def config(peers: dict, workers: int | str):
    loaded = load_text(CONFIG.format(agent_port=free_port(), workers=json.dumps(workers), **peers))
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config


def decided(service: HealthService) -> dict | None:
    results = service.check_results()
    if set(results) != set(EXPECTED) or any(r["up"] is None for r in results.values()):
        return None
    return {key: r["up"] for key, r in results.items()}


async def ask_agent(port: int, request: str) -> str:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(request.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer.decode().strip()


async def test_two_workers_decide_as_one_and_a_killed_worker_is_restarted(peers) -> None:
    one = HealthService(None)
    await one.start(config(peers, 1))
    try:
        assert one.workers() == []  # 1: the checks run in the controller itself
        in_controller = await until(lambda: decided(one), what="every real server decided by the controller")
    finally:
        await one.close()
    assert in_controller == EXPECTED

    two = HealthService(None)
    c = config(peers, 2)
    await two.start(c)
    pids: list[int] = []
    try:
        by_workers = await until(lambda: decided(two), what="every real server decided by 2 workers")
        assert by_workers == in_controller
        workers = two.workers()
        pids = [w["pid"] for w in workers]
        assert len(workers) == 2 and all(w["real_servers"] > 0 for w in workers), workers  # both have a shard
        assert sum(w["real_servers"] for w in workers) == len(EXPECTED)
        assert all("pacslb.health.worker" in cmdline(pid) for pid in pids)
        agent_port = c.settings.health.agent_port
        assert await ask_agent(agent_port, "dicom/rejects") == "down #association rejected (permanent, by the service user): called AE title not recognised"  # fmt: skip
        assert await ask_agent(agent_port, "hl7/aa") == "up"

        victim = workers[0]
        mine = [key for key, seen in two.pool.seen.items() if seen.worker is two.pool.workers[0]]
        os.kill(victim["pid"], signal.SIGKILL)
        await until(lambda: two.workers()[0]["restarts"] == 1, what="the killed worker to be noticed")
        assert "killed by signal 9" in two.workers()[0]["last_exit"]
        assert all(two.check_results()[key]["up"] is None for key in mine)  # undecided until checked again
        restarted = await until(lambda: two.workers()[0]["pid"], what="the worker started again")
        assert restarted != victim["pid"] and workers[1]["pid"] == two.workers()[1]["pid"]  # the other lived on
        pids.append(restarted)
        assert await until(lambda: decided(two), what="the restarted worker's real servers decided") == EXPECTED

        await two.applied(config(peers, 1))  # a change of configuration: back into the controller, workers stopped
        assert two.workers() == [] and all(pid_gone(pid) for pid in pids)
        assert await until(lambda: decided(two), what="the controller's own checks decided") == EXPECTED
    finally:
        await two.close()
    assert all(pid_gone(pid) for pid in pids)  # stopped with the controller's service, none left behind


CONTROLLER = """
import asyncio, json, sys
from pacslb.health.service import HealthService
from pacslb.model import load_text

async def main():
    service = HealthService(None)
    await service.start(load_text(sys.stdin.read()).config)
    while len(service.workers()) < 2 or not all(w["pid"] for w in service.workers()):
        await asyncio.sleep(0.05)
    with open(sys.argv[1] + ".part", "w") as f:
        json.dump([w["pid"] for w in service.workers()], f)
    import os; os.rename(sys.argv[1] + ".part", sys.argv[1])
    await asyncio.sleep(120)  # a bounded life: the test kills it long before

asyncio.run(main())
"""


def test_the_workers_end_when_the_controller_is_killed(tmp_path: Path) -> None:
    peers = {
        "storescp1": free_port(),
        "storescp2": free_port(),
        "dcmqrscp": free_port(),
        "closed": free_port(),
        "hl7_aa": free_port(),
        "hl7_ae": free_port(),
    }  # fmt: skip  (nothing listens: every check fails)
    text = CONFIG.format(agent_port=free_port(), workers=2, **peers)
    pid_file = tmp_path / "workers.json"
    controller = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(pid_file)], stdin=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        controller.stdin.write(text)
        controller.stdin.close()
        wait_until(lambda: pid_file.exists() or controller.poll() is not None, what="the controller's workers")
        assert controller.poll() is None, "the controller ended early"
        workers = json.loads(pid_file.read_text())
        assert len(workers) == 2 and all("pacslb.health.worker" in cmdline(pid) for pid in workers)
        controller.kill()  # SIGKILL: no cleanup of its own runs
        controller.wait(10)
        wait_until(lambda: all(pid_gone(pid) for pid in workers), what="the workers to end with their controller")
    finally:
        kill_pids([controller.pid, *workers])
        controller.wait(10)
