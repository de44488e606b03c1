"""A runtime change (drain) is recorded once, applied, after HAProxy confirmed it: a controller killed with
SIGKILL between the runtime operation and the record leaves no revision, and the next `pacslb up`
converges HAProxy's runtime state back to the current revision (docs/architecture.md, "Recording a
change"); drains that are not killed answer with revisions stored as deltas of the one before."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest
from changes_support import store

from pacslb.engines.haproxy.runtime import AdminFlag, parse_servers_state, send_command
from support.appliance import PACSLB
from support.configs import config_text, real_server, service
from support.net import free_port
from support.wait import wait_until

pytestmark = pytest.mark.e2e


def config(servers, services: int = 1) -> str:
    """`services` layer7-http services (web0, web1...) in front of `servers`, without health checks; the
    agent port a free one of its own (the default, 334, may be held by another appliance on this machine)."""
    return config_text(*(service(f"web{i}", "layer7-http", "127.0.0.1", free_port(), [real_server(s) for s in servers],
                                 health_check="{type: none}") for i in range(services)),
                       settings=f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}}}")  # fmt: skip


def drained(appliance, server: str) -> bool:
    rows = parse_servers_state(send_command(appliance.paths.haproxy_admin_socket, "show servers state web0", timeout=10))
    row = next(r for r in rows if r.server == server)
    return bool(row.admin_flags & AdminFlag.FORCED_DRAIN)


def test_a_drain_killed_before_its_record_leaves_no_revision_and_is_set_back(http_server, start_appliance):
    servers = [http_server("rs1"), http_server("rs2")]
    # 12 services: a drain changes one, so its revision is a delta far smaller than the whole configuration
    appliance = start_appliance(config(servers, 12), up_args=("--pause-at", "engine-confirmed:120"))
    first = store(appliance).current()
    cli = subprocess.Popen([*PACSLB, "server", "drain", "web0", "rs1", "--state-dir", str(appliance.state_dir)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_until(lambda: "at stage engine-confirmed" in appliance.read_log(), 60, what="the controller to pause")
        assert drained(appliance, "rs1")  # HAProxy runs the change; nothing is recorded yet
        assert store(appliance).ids() == [first.id]
        appliance.kill9()
        cli.wait(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    revs = store(appliance)
    assert revs.ids() == [first.id] and revs.pending() == [] and revs.check_integrity() == []
    appliance.up()
    wait_until(lambda: not drained(appliance, "rs1"), 30, what="rs1 back to the current revision's state")
    assert store(appliance).current().id == first.id
    # not killed: each drain answers with a revision recorded applied, a delta of the one before it
    for verb in ("drain", "online"):
        done = appliance.cli("server", verb, "web0", "rs1")
        assert done.returncode == 0, done.stdout + done.stderr
    revs = store(appliance)
    with sqlite3.connect(revs.path) as db:
        rows = db.execute("SELECT id, status, delta_base FROM revisions ORDER BY id").fetchall()
    assert rows[-1] == (rows[-2][0] + 1, "applied", rows[-2][0]) and rows[-2][1] == "applied"
    assert revs.current().config_data["virtual_services"][0]["real_servers"][0]["state"] == "online"
    assert revs.get(rows[-2][0]).config_data["virtual_services"][0]["real_servers"][0]["state"] == "drain"
    assert revs.check_integrity() == []
