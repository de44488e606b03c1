"""Fixtures that run the real appliance (`pacslb up` as a subprocess, real HAProxy) on loopback.

  http_server(name, host=None) -> TinyHTTPServer
      factory; starts a real server on a fresh 127.X.Y.Z address now, stops it at teardown
  start_appliance(config_text, wait=True) -> Appliance
      factory; `pacslb up` on a new state dir under tmp_path, waits until /api/v1/health answers 200;
      teardown (also after a failure): `pacslb stop`, then SIGKILL by PID for anything left

The helpers they use (free_port, loopback_host, wait_until, pid_gone, haproxy_masters, processes_of,
http_get, http_service_config, TinyHTTPServer, Appliance) live in tests/support.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from support.appliance import Appliance
from support.net import loopback_host
from support.realservers import TinyHTTPServer


@pytest.fixture
def http_server():
    """Factory: `http_server("rs1")` starts a TinyHTTPServer on a fresh loopback address; all stop at teardown."""
    started: list[TinyHTTPServer] = []
    counter = iter(range(2, 250))

    def make(name: str, host: str | None = None) -> TinyHTTPServer:
        server = TinyHTTPServer(name, host or loopback_host(next(counter))).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def start_appliance(tmp_path):
    """Factory: `start_appliance(config_text)` runs `pacslb up` on a new state dir and waits until healthy.

    The configuration and the controller's log are in tmp_path; the state directory is a short
    directory under /tmp (HAProxy binds Unix sockets of at most 97 characters), removed at teardown
    after its haproxy.log is copied next to the controller's log.

    Teardown, also when the test failed: `pacslb stop` (bounded), then SIGKILL by PID for anything
    of that state directory still alive (controllers, HAProxy master, workers).
    """
    appliances: list[Appliance] = []

    def start(config_text: str, wait: bool = True, up_args: tuple[str, ...] = ()) -> Appliance:
        base = tmp_path / f"appliance{len(appliances)}"
        base.mkdir()
        config = base / "pacslb.yaml"
        config.write_text(config_text)
        state_dir = Path(tempfile.mkdtemp(prefix="pacslb-e2e-", dir="/tmp")) / "state"
        appliance = Appliance(state_dir=state_dir, config=config, log=base / "pacslb-up.log")
        appliances.append(appliance)
        appliance.up(wait=wait, extra=up_args)
        return appliance

    yield start
    for appliance in appliances:
        try:
            appliance.remember_pids()
            appliance.stop(timeout=15)
        except Exception:  # noqa: BLE001 - teardown must go on to the kill
            pass
        finally:
            left = appliance.kill_leftovers()
            if left:
                print(f"teardown killed leftover processes {left} of {appliance.state_dir}", file=sys.stderr)
            if appliance.paths.haproxy_log.exists():
                shutil.copy(appliance.paths.haproxy_log, appliance.log.with_name("haproxy.log"))
            shutil.rmtree(appliance.state_dir.parent, ignore_errors=True)
