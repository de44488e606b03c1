"""A runtime change (drain) is recorded once, applied, after HAProxy confirmed it: a controller killed with
SIGKILL between the runtime operation and the record leaves no revision, and the next `pacslb up`
converges HAProxy's runtime state back to the current revision (docs/architecture.md, "Recording a
change"); one that is not killed answers with a revision stored as a delta of the one before it."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest
from changes_support import store

from pacslb.engines.haproxy.runtime import AdminFlag, parse_servers_state, send_command
from support.appliance import PACSLB
from support.configs import config_text, http_service_config, real_server, service
from support.net import free_port
from support.wait import wait_until

pytestmark = pytest.mark.e2e


def drained(appliance, server: str) -> bool:
    rows = parse_servers_state(send_command(appliance.paths.haproxy_admin_socket, "show servers state web", timeout=10))
    row = next(r for r in rows if r.server == server)
    return bool(row.admin_flags & AdminFlag.FORCED_DRAIN)


def test_a_drain_killed_before_its_record_leaves_no_revision_and_is_set_back(http_server, start_appliance):
    servers = [http_server("rs1"), http_server("rs2")]
    appliance = start_appliance(http_service_config(free_port(), servers), up_args=("--pause-at", "engine-confirmed:120"))
    first = store(appliance).current()
    cli = subprocess.Popen([*PACSLB, "server", "drain", "web", "rs1", "--state-dir", str(appliance.state_dir)],
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


def test_drains_answer_with_revisions_stored_as_deltas(http_server, start_appliance):
    servers = [http_server("rs1"), http_server("rs2")]
    # 12 services: a drain changes one, so its delta is far smaller than the whole configuration
    text = config_text(*(service(f"web{i}", "layer7-http", "127.0.0.1", free_port(), [real_server(s) for s in servers])
                         for i in range(12)))  # fmt: skip
    appliance = start_appliance(text)
    for server, verb in (("rs1", "drain"), ("rs1", "online"), ("rs2", "drain")):
        done = appliance.cli("server", verb, "web3", server)
        assert done.returncode == 0, done.stdout + done.stderr
    revs = store(appliance)
    with sqlite3.connect(revs.path) as db:
        bases = [r[0] for r in db.execute("SELECT delta_base FROM revisions ORDER BY id")]
    assert bases[-2:] == [revs.ids()[-3], revs.ids()[-2]]  # each a delta of the one before it
    assert revs.current().config_data["virtual_services"][3]["real_servers"][1]["state"] == "drain"
    assert revs.check_integrity() == []
