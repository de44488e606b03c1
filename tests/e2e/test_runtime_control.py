"""Runtime control of real servers on the real appliance: `pacslb server drain|halt|online|weight`.

Each one changes HAProxy's state through the runtime API with no reload (the worker PID stays the
same), is recorded as a revision, is written to haproxy.cfg in the background (drain is `weight 0`, halt `disabled`),
shows in `pacslb status`, and survives a reload and `pacslb stop` then `pacslb up`.
"""

from __future__ import annotations

import json

import pytest
from changes_support import answers, reloads, running_with, server_line, store, workers

from support.configs import http_service_config
from support.net import free_port, loopback_host
from support.wait import wait_until

pytestmark = pytest.mark.e2e

INTERVAL_MS = 300


@pytest.fixture
def servers(http_server):
    return [http_server("rs1"), http_server("rs2")]


@pytest.fixture
def appliance(servers, start_appliance):
    port = free_port()
    appliance = start_appliance(http_service_config(port, servers, interval_ms=INTERVAL_MS, fall=2))
    appliance.vip_port = port
    wait_until(lambda: states(appliance) == {"rs1": "UP", "rs2": "UP"}, 10, what="both real servers UP")
    return appliance


def states(appliance, service: str = "web") -> dict[str, str]:
    vs = next(v for v in appliance.api_status()["virtual_services"] if v["name"] == service)
    return {rs["name"]: rs["state"] for rs in vs["real_servers"]}


def weights(appliance, service: str = "web") -> dict[str, int]:
    vs = next(v for v in appliance.api_status()["virtual_services"] if v["name"] == service)
    return {rs["name"]: rs["weight"] for rs in vs["real_servers"]}


def server(appliance, *args: str):
    done = appliance.cli("server", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def traffic(appliance) -> set[str]:
    return set(answers("127.0.0.1", appliance.vip_port, 8))


def test_drain_halt_online_weight_without_reload(appliance):
    before = workers(appliance)

    done = server(appliance, "drain", "web", "rs1", "-m", "patching rs1")
    assert "runtime operations, no reload" in done.stdout and "drain web/rs1" in done.stdout
    assert states(appliance)["rs1"] == "DRAIN"
    assert traffic(appliance) == {"rs2"}
    # the file says drain too: written in the background once the runtime operation is done (engines/haproxy/deferred.py)
    wait_until(lambda: " weight 0" in server_line(appliance, "rs1"), 10, what="haproxy.cfg says rs1 drains")

    server(appliance, "weight", "web", "rs2", "30")
    assert weights(appliance)["rs2"] == 30
    wait_until(lambda: "weight 30" in server_line(appliance, "rs2"), 10, what="haproxy.cfg says weight 30")

    server(appliance, "online", "web", "rs1")
    assert states(appliance)["rs1"] == "UP" and weights(appliance)["rs1"] == 100  # the configured weight
    server(appliance, "halt", "web", "rs2")
    assert states(appliance)["rs2"] == "MAINT"
    wait_until(lambda: server_line(appliance, "rs2").endswith("disabled"), 10, what="haproxy.cfg says rs2 is halted")
    assert traffic(appliance) == {"rs1"}

    server(appliance, "online", "web", "rs2")
    wait_until(lambda: states(appliance)["rs2"] == "UP", 10, what="rs2 UP again after its check")
    assert weights(appliance)["rs2"] == 30  # online restores the configured weight, 30 since the weight command
    wait_until(lambda: traffic(appliance) == {"rs1", "rs2"}, 10, what="traffic to both again")

    assert workers(appliance) == before and reloads(appliance) == 0

    revisions = store(appliance).list(limit=10)
    assert [(r.kind, r.status.value, r.message) for r in revisions[:5]] == [
        ("server", "applied", "online web/rs2"),
        ("server", "applied", "halt web/rs2"),
        ("server", "applied", "online web/rs1"),
        ("server", "applied", "weight 30 web/rs2"),
        ("server", "applied", "patching rs1"),
    ]
    assert revisions[0].plan["method"] == "runtime"
    listed = appliance.cli("revisions")
    assert listed.returncode == 0 and "patching rs1" in listed.stdout
    last = appliance.cli("diff")
    assert "virtual_services[web].real_servers[rs2].state: halt -> online" in last.stdout

    # the audit log has the CLI's changes beside the management API's (every change, whatever its path)
    from pacslb.paths import StatePaths
    from pacslb.store.audit import AuditLog

    audited = AuditLog(StatePaths(appliance.state_dir).audit_log).list(limit=10)
    assert [(e.via, e.action, e.target, e.outcome) for e in audited[:5]] == [
        ("cli", "real-server.online", "web/rs2", "applied"),
        ("cli", "real-server.halt", "web/rs2", "applied"),
        ("cli", "real-server.online", "web/rs1", "applied"),
        ("cli", "real-server.weight", "web/rs2", "applied"),
        ("cli", "real-server.drain", "web/rs1", "applied"),
    ]


def test_states_survive_a_reload_and_stop_then_up(appliance, servers):
    server(appliance, "drain", "web", "rs1")
    server(appliance, "halt", "web", "rs2")
    server(appliance, "weight", "web", "rs1", "70")
    assert states(appliance) == {"rs1": "DRAIN", "rs2": "MAINT"}

    # a structural change: a reload, with the states and weights kept
    changed = appliance.config.with_name("changed.yaml")
    changed.write_text(running_with(appliance, lambda d: d["virtual_services"][0]["health_check"].update(interval="400ms")))
    before = workers(appliance)
    done = appliance.cli("apply", "-c", str(changed))
    assert done.returncode == 0, done.stderr
    assert "hitless reload" in done.stdout
    assert workers(appliance) != before
    assert states(appliance) == {"rs1": "DRAIN", "rs2": "MAINT"}
    assert weights(appliance)["rs1"] == 70

    # stop, then up with the same file as the first time: the current revision runs
    assert appliance.stop().returncode == 0
    appliance.up()
    assert states(appliance) == {"rs1": "DRAIN", "rs2": "MAINT"}
    assert weights(appliance)["rs1"] == 70
    assert "running revision" in appliance.read_log()
    table = appliance.cli("status")
    assert "DRAIN" in table.stdout and "MAINT" in table.stdout

    server(appliance, "online", "web", "rs1")
    assert states(appliance)["rs1"] == "UP" and weights(appliance)["rs1"] == 70


def test_drain_keeps_persistent_clients_halt_does_not(servers, start_appliance):
    port = free_port()
    text = http_service_config(port, servers, interval_ms=INTERVAL_MS, fall=2)
    text = text.replace("    mode: layer7-http\n", "    mode: layer7-http\n    persistence: {type: source-ip}\n")
    appliance = start_appliance(text)
    wait_until(lambda: set(states(appliance).values()) == {"UP"}, 10, what="both real servers UP")
    # clients from many loopback addresses: each sticks to the server it got first
    clients = [loopback_host(200 + i) for i in range(12)]
    stuck = {c: answers("127.0.0.1", port, 1, source=c)[0] for c in clients}
    on_rs1 = [c for c, name in stuck.items() if name == "rs1"]
    assert on_rs1 and len(on_rs1) < len(clients)

    server(appliance, "drain", "web", "rs1")
    for c in on_rs1:  # persistent clients still reach the drained server
        assert set(answers("127.0.0.1", port, 3, source=c)) == {"rs1"}
    newcomer = loopback_host(240)
    assert set(answers("127.0.0.1", port, 3, source=newcomer)) == {"rs2"}  # a new client does not

    server(appliance, "halt", "web", "rs1")
    for c in on_rs1:  # halt: no traffic at all, persistent or not
        assert set(answers("127.0.0.1", port, 2, source=c)) == {"rs2"}


def test_all_acts_on_every_service_of_the_real_server(servers, start_appliance):
    rs1, rs2 = servers
    port = free_port()
    text = http_service_config(port, servers, interval_ms=INTERVAL_MS, fall=2)
    other = free_port()
    text += (
        "  - name: web2\n    mode: layer7-http\n"
        f"    listen: [{{address: 127.0.0.1, port: {other}}}]\n"
        f"    health_check: {{type: http, path: /, interval: {INTERVAL_MS}ms, timeout: {INTERVAL_MS}ms}}\n"
        "    real_servers:\n"
        f"      - {{name: same-box, address: {rs1.host}, port: {rs1.port}}}\n"
        f"      - {{name: rs2, address: {rs2.host}, port: {rs2.port}}}\n"
    )
    appliance = start_appliance(text)
    wait_until(lambda: set(states(appliance, "web2").values()) == {"UP"}, 10, what="web2 UP")
    done = server(appliance, "drain", "web", "rs1", "--all")
    assert "drain web/rs1" in done.stdout and "drain web2/same-box" in done.stdout
    assert states(appliance)["rs1"] == "DRAIN" and states(appliance, "web2")["same-box"] == "DRAIN"
    assert states(appliance)["rs2"] == "UP" and states(appliance, "web2")["rs2"] == "UP"
    assert store(appliance).current().message == "drain web/rs1 on every service it serves"


def test_unknown_names_and_repeats(appliance):
    missing = appliance.cli("server", "drain", "web", "nope")
    assert missing.returncode == 1 and "has no real server nope" in missing.stderr
    nowhere = appliance.cli("server", "halt", "nothere", "rs1")
    assert nowhere.returncode == 1 and "no virtual service nothere" in nowhere.stderr
    bad_weight = appliance.cli("server", "weight", "web", "rs1", "300")
    assert bad_weight.returncode == 2
    count = len(store(appliance).list(limit=100))
    server(appliance, "drain", "web", "rs1")
    again = server(appliance, "drain", "web", "rs1", "--json")
    assert json.loads(again.stdout)["outcome"] == "unchanged"
    assert len(store(appliance).list(limit=100)) == count + 1
