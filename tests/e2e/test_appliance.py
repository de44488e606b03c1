"""The appliance as a user runs it: `pacslb up` (a real HAProxy) in front of real servers on loopback.

Traffic flows; `pacslb status` reports real servers going down within interval x fall; the
controller's death leaves traffic flowing (fail static) and the next `pacslb up` adopts the running
HAProxy instead of starting a second one; a dead HAProxy is restarted; `pacslb stop` and SIGTERM
leave no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from support.appliance import PACSLB
from support.configs import http_service_config
from support.net import free_port, http_get
from support.processes import haproxy_masters, pid_gone, processes_of
from support.wait import wait_until

pytestmark = pytest.mark.e2e

INTERVAL_MS = 300
FALL = 2


@pytest.fixture
def two_servers(http_server):
    return [http_server("rs1"), http_server("rs2")]


@pytest.fixture
def appliance(two_servers, start_appliance):  # real servers stop after the appliance
    port = free_port()
    appliance = start_appliance(http_service_config(port, two_servers, interval_ms=INTERVAL_MS, fall=FALL))
    appliance.vip_port = port
    # both real servers pass their first check
    wait_until(
        lambda: all(rs["state"] == "UP" for rs in appliance.api_status()["virtual_services"][0]["real_servers"]),
        10,
        what="both real servers UP",
    )
    return appliance


def answers(appliance, count: int = 10) -> list[str]:
    names = []
    for _ in range(count):
        status, body = http_get("127.0.0.1", appliance.vip_port)
        assert status == 200, body
        names.append(body.strip())
    return names


def assert_nothing_left(appliance, pids) -> None:
    wait_until(lambda: all(pid_gone(p) for p in pids), 15, what=f"processes {sorted(pids)} to end")
    assert processes_of(appliance.state_dir) == []
    assert haproxy_masters(appliance.state_dir) == []


def test_traffic_flows_through_both_real_servers(appliance, two_servers):
    assert sorted(set(answers(appliance, 10))) == ["rs1", "rs2"]


def test_status_json_and_table(appliance, two_servers):
    answers(appliance, 4)
    status = appliance.status()
    (vs,) = status["virtual_services"]
    assert (vs["name"], vs["mode"], vs["state"]) == ("web", "layer7-http", "UP")
    assert vs["listen"] == [f"127.0.0.1:{appliance.vip_port}"]
    assert vs["sessions"]["total"] >= 4
    for server in two_servers:
        rs = appliance.server(status, "web", server.name)
        assert rs["state"] == "UP"
        assert rs["address"] == f"{server.host}:{server.port}"
        assert rs["check"]["outcome"] == "passed" and rs["check"]["code"] == 200
        assert rs["sessions"]["total"] >= 1
    assert status["engine"]["running"] and status["engine"]["master_pid"] == appliance.haproxy_pid()
    assert status["controller"]["pid"] == appliance.process.pid

    table = appliance.cli("status")
    assert table.returncode == 0, table.stderr
    for word in ("web", "rs1", "rs2", "UP", "passed", f"127.0.0.1:{appliance.vip_port}"):
        assert word in table.stdout


def test_stopped_real_server_is_down_within_interval_times_fall(appliance, two_servers):
    rs2 = two_servers[1]
    rs2.stop()
    stopped = time.monotonic()

    def rs2_down():
        return appliance.server(appliance.api_status(), "web", "rs2")["state"] == "DOWN"

    wait_until(rs2_down, 10, what="rs2 DOWN", interval=0.02)
    took = time.monotonic() - stopped
    print(f"rs2 DOWN {took:.2f}s after it stopped (interval {INTERVAL_MS}ms x fall {FALL})")
    # interval x fall, plus a margin for polling the API on a busy machine
    assert took <= FALL * INTERVAL_MS / 1000 + 0.4, f"rs2 went DOWN after {took:.2f}s"

    rs = appliance.server(appliance.status(), "web", "rs2")
    assert rs["check"]["outcome"] == "failed"
    assert "Connection refused" in (rs["check"]["info"] or "")
    assert set(answers(appliance, 6)) == {"rs1"}  # traffic goes on to the other one

    rs2.start()
    wait_until(lambda: appliance.server(appliance.api_status(), "web", "rs2")["state"] == "UP", 10, what="rs2 UP again")
    assert "Server web/rs2 is DOWN" in appliance.read_log()  # HAProxy's warning reached the controller's log


def test_second_up_refuses_and_names_the_running_controller(appliance):
    master = appliance.haproxy_pid()
    done = subprocess.run(
        [*PACSLB, "up", "-c", str(appliance.config), "--state-dir", str(appliance.state_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert f"PID {appliance.process.pid}" in done.stderr
    assert "already runs" in done.stderr
    assert haproxy_masters(appliance.state_dir) == [master]
    assert appliance.api("GET", "/health").status_code == 200


def test_kill9_of_the_controller_leaves_traffic_flowing_and_up_adopts(appliance):
    master = appliance.haproxy_pid()
    workers_before = appliance.api_status()["engine"]["workers"]
    # HAProxy runs in a session (and process group) of its own: signals to the controller's group miss it
    assert os.getsid(master) == master != os.getsid(appliance.process.pid)
    assert os.getpgid(master) != os.getpgid(appliance.process.pid)
    appliance.kill9()

    # fail static: HAProxy serves on, unsupervised
    assert sorted(set(answers(appliance, 10))) == ["rs1", "rs2"]
    assert not pid_gone(master)
    degraded = appliance.cli("status", "--json")
    assert degraded.returncode == 3, degraded.stderr
    assert "no controller runs" in degraded.stderr
    data = json.loads(degraded.stdout)
    assert data["controller"] is None
    assert {rs["state"] for rs in data["virtual_services"][0]["real_servers"]} == {"UP"}

    # the next controller adopts the running master: still exactly one, the same PID, not reloaded
    appliance.up()
    assert appliance.haproxy_pid() == master
    assert haproxy_masters(appliance.state_dir) == [master]
    status = appliance.status()
    assert status["engine"]["adopted"] is True
    assert status["engine"]["master_pid"] == master
    assert status["engine"]["reloads"] == 0
    assert status["engine"]["workers"] == workers_before
    assert "adopted the running HAProxy master" in appliance.read_log()
    assert sorted(set(answers(appliance, 10))) == ["rs1", "rs2"]

    pids = appliance.remember_pids()
    done = appliance.stop()
    assert done.returncode == 0, done.stderr
    assert_nothing_left(appliance, pids | {master})


def test_adoption_reloads_when_the_configuration_changed(appliance, two_servers):
    master = appliance.haproxy_pid()
    appliance.kill9()
    appliance.config.write_text(
        http_service_config(appliance.vip_port, two_servers, interval_ms=INTERVAL_MS, fall=FALL, weights={"rs1": 50})
    )
    appliance.up()
    status = appliance.status()
    assert status["engine"]["master_pid"] == master and status["engine"]["adopted"]
    assert status["engine"]["reloads"] == 1
    assert appliance.server(status, "web", "rs1")["weight"] == 50
    assert haproxy_masters(appliance.state_dir) == [master]
    assert "differs from the one to run: reloading" in appliance.read_log()
    assert sorted(set(answers(appliance, 10))) == ["rs1", "rs2"]


def test_sighup_applies_the_changed_configuration(appliance, two_servers):
    master = appliance.haproxy_pid()
    # a new check interval needs a reload (a weight alone is a runtime operation: tests/e2e/test_runtime_control.py)
    appliance.config.write_text(
        http_service_config(appliance.vip_port, two_servers, interval_ms=INTERVAL_MS + 100, fall=FALL, weights={"rs2": 30})
    )
    appliance.process.send_signal(signal.SIGHUP)
    wait_until(lambda: appliance.server(appliance.api_status(), "web", "rs2")["weight"] == 30, 15, what="weight 30 applied")
    status = appliance.status()
    assert status["engine"]["master_pid"] == master and status["engine"]["reloads"] == 1
    assert "HAProxy reloaded" in appliance.read_log()
    assert haproxy_masters(appliance.state_dir) == [master]
    assert appliance.paths.config.read_text() == appliance.config.read_text()  # the copy of what runs

    appliance.config.write_text("version: 1\nvirtual_services: [{name: web, mode: fastest}]\n")
    appliance.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "is not valid: nothing was changed" in appliance.read_log(), 10, what="the refusal in the log")
    assert appliance.status()["engine"]["reloads"] == 1
    assert sorted(set(answers(appliance, 10))) == ["rs1", "rs2"]


def test_dead_haproxy_is_restarted_and_logged(appliance):
    old = appliance.haproxy_pid()
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: (pid := appliance.haproxy_pid()) and pid != old and not pid_gone(pid), 15, what="a new HAProxy master")
    appliance.wait_healthy()
    new = appliance.haproxy_pid()
    assert haproxy_masters(appliance.state_dir) == [new]
    status = appliance.status()
    assert status["engine"]["restarts"] == 1 and status["engine"]["master_pid"] == new
    log = appliance.read_log()
    assert f"HAProxy master (PID {old}) died" in log and "HAProxy runs again" in log
    wait_until(lambda: len(set(answers(appliance, 6))) == 2, 10, what="traffic to both real servers again")


def test_stop_leaves_no_process(appliance):
    pids = appliance.remember_pids()
    assert appliance.process.pid in pids and appliance.haproxy_pid() in pids and len(pids) >= 3  # + worker(s)
    done = appliance.stop()
    assert done.returncode == 0, done.stderr
    assert appliance.process.returncode == 0
    assert_nothing_left(appliance, pids)
    assert not appliance.paths.controller_socket.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", appliance.vip_port), timeout=1).close()
    again = appliance.cli("status")
    assert again.returncode == 1 and "no appliance runs" in again.stderr


def test_sigterm_stops_haproxy_too(appliance):
    pids = appliance.remember_pids()
    appliance.process.send_signal(signal.SIGTERM)
    assert appliance.process.wait(timeout=20) == 0
    assert_nothing_left(appliance, pids)


def test_stop_without_controller_stops_the_orphan_haproxy(appliance):
    pids = appliance.remember_pids()
    appliance.kill9()
    done = appliance.stop()
    assert done.returncode == 0, done.stderr
    assert "ran without a controller" in done.stderr
    assert_nothing_left(appliance, pids)


def test_nothing_runs(tmp_path):
    status = subprocess.run(
        [*PACSLB, "status", "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=30
    )
    assert status.returncode == 1 and "no appliance runs" in status.stderr
    stop = subprocess.run([*PACSLB, "stop", "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=30)
    assert stop.returncode == 0 and "nothing to stop" in stop.stdout


def test_engine_failure_at_start_is_reported_and_leaves_nothing(start_appliance, http_server):
    server = http_server("rs1")
    busy = socket.socket()  # holds the VIP's port without SO_REUSEPORT, so HAProxy cannot bind it
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        appliance = start_appliance(http_service_config(busy.getsockname()[1], [server]), wait=False)
        assert appliance.process.wait(timeout=30) == 1
        log = appliance.read_log()
        assert "HAProxy could not be started" in log and "cannot bind socket" in log
        assert processes_of(appliance.state_dir) == []
    finally:
        busy.close()


def test_invalid_configuration_starts_nothing(start_appliance):
    appliance = start_appliance("version: 1\nvirtual_services: [{name: web, mode: fastest}]\n", wait=False)
    assert appliance.process.wait(timeout=30) == 2
    assert "virtual_services[web].mode" in appliance.read_log()
    assert not appliance.state_dir.exists() or processes_of(appliance.state_dir) == []
