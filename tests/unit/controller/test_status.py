"""`show stat` rows to the status model: virtual services and real servers in the field's words."""

from __future__ import annotations

import pytest

from pacslb.controller.status import (
    CheckOutcome,
    ControllerStatus,
    EngineStatus,
    ServerState,
    ServiceState,
    build_status,
    layer4_server_state,
    server_state,
)
from pacslb.engines.haproxy.runtime import parse_stat
from pacslb.model import load_text
from pacslb.model.config import RealServer
from support.configs import SHOW_STAT, show_stat_config

CONFIG = show_stat_config(layer4=True)


@pytest.fixture(scope="module")
def status():
    loaded = load_text(CONFIG)
    assert loaded.ok, loaded.problems
    rows = parse_stat(SHOW_STAT.read_text())
    engine = EngineStatus(running=True, master_pid=10, workers=[11])
    return build_status(loaded.config, rows, engine, ControllerStatus(pid=9, state_dir="/s"))


def service(status, name):
    return next(vs for vs in status.virtual_services if vs.name == name)


def server(status, vs, name):
    return next(rs for rs in service(status, vs).real_servers if rs.name == name)


def test_services_in_configuration_order(status):
    assert [vs.name for vs in status.virtual_services] == ["web", "only", "l4"]
    web = service(status, "web")
    assert (web.state, web.mode, web.listen) == (ServiceState.UP, "layer7-http", ["127.0.0.1:18380"])
    assert (web.sessions.current, web.sessions.total) == (0, 1)  # counted where clients arrive


def test_real_server_states(status):
    states = {rs.name: rs.state for rs in service(status, "web").real_servers}
    assert states == {
        "rs1": ServerState.UP,
        "rs2": ServerState.UP,  # failing, not yet down
        "rs3": ServerState.DRAIN,
        "rs4": ServerState.MAINT,
        "rs5": ServerState.NO_CHECK,
        "rs6": ServerState.UP,
        "rs7": ServerState.UNKNOWN,  # not reported by HAProxy
    }


def test_last_check_results(status):
    rs1 = server(status, "web", "rs1")
    assert rs1.check.outcome is CheckOutcome.PASSED and rs1.check.code == 200
    assert rs1.check.summary() == "passed (status 200)"
    assert rs1.weight == 50 and rs1.address == "127.0.0.2:18381"
    assert (rs1.sessions.current, rs1.sessions.total) == (0, 1)

    rs2 = server(status, "web", "rs2")
    assert rs2.check.outcome is CheckOutcome.FAILED
    assert rs2.transition == "going down (1/3)"
    assert rs2.check.summary() == "failed: Layer4 connection problem: Connection refused"

    rs6 = server(status, "web", "rs6")  # 'UP 1/3' before its first check: no transition yet
    assert rs6.check.outcome is CheckOutcome.PENDING and rs6.transition is None

    rs5 = server(status, "web", "rs5")
    assert rs5.check.outcome is CheckOutcome.NONE and rs5.check.summary() == "-"


def test_configuration_fills_what_haproxy_does_not_report(status):
    rs7 = server(status, "web", "rs7")
    assert rs7.backup and rs7.address == "127.0.0.2:18387" and rs7.configured_state == "online"
    assert server(status, "web", "rs4").configured_state == "halt"


def test_backend_only_service_counts_its_own_sessions(status):
    only = service(status, "only")
    assert only.state is ServiceState.UP and only.listen == []
    assert [rs.name for rs in only.real_servers] == ["a"]


def test_layer4_service_states_are_what_the_nftables_maps_hold(status):
    l4 = service(status, "l4")
    assert l4.state is ServiceState.UP and "nftables" in l4.note  # its one real server is not checked: always on
    assert l4.listen == ["127.0.0.1:9000-9002"]
    assert l4.real_servers[0].state is ServerState.NO_CHECK


@pytest.mark.parametrize(
    "state, weight, check, expected",
    [
        ("online", 100, {"up": True}, (ServerState.UP, None)),
        ("online", 100, {"up": False, "reason": "Connection refused"}, (ServerState.DOWN, "Connection refused")),
        ("online", 100, {"up": None}, (ServerState.UNKNOWN, "check pending")),
        ("online", 100, None, (ServerState.NO_CHECK, None)),
        ("online", 0, {"up": True}, (ServerState.DRAIN, "weight 0")),
        ("drain", 100, {"up": True}, (ServerState.DRAIN, "drained")),
        ("halt", 100, {"up": False}, (ServerState.MAINT, "halted")),
    ],
)
def test_layer4_real_server_state(state, weight, check, expected):
    rs = RealServer(name="x", address="10.0.0.1", state=state, weight=weight)
    assert layer4_server_state(rs, check) == expected


def test_no_rows_means_unknown():
    loaded = load_text(CONFIG)
    status = build_status(loaded.config, [], EngineStatus(running=False, error="HAProxy is not running"), None)
    # HAProxy's services are unknown; a Layer 4 one is not HAProxy's
    assert {vs.state for vs in status.virtual_services if vs.mode != "layer4-nat"} == {ServiceState.UNKNOWN}
    assert status.controller is None
    assert status.model_dump(mode="json")["virtual_services"][0]["real_servers"][0]["state"] == "UNKNOWN"


@pytest.mark.parametrize(
    "text, check, expected",
    [
        ("UP", CheckOutcome.PASSED, (ServerState.UP, None)),
        ("UP 2/3", CheckOutcome.FAILED, (ServerState.UP, "going down (2/3)")),
        ("DOWN", CheckOutcome.FAILED, (ServerState.DOWN, None)),
        ("DOWN 1/2", CheckOutcome.PASSED, (ServerState.DOWN, "going up (1/2)")),
        ("DOWN (agent)", CheckOutcome.PASSED, (ServerState.DOWN, "set by the agent")),
        ("DRAIN", CheckOutcome.PASSED, (ServerState.DRAIN, None)),
        ("DRAIN (agent)", CheckOutcome.PASSED, (ServerState.DRAIN, "set by the agent")),
        ("NOLB", CheckOutcome.PASSED, (ServerState.DRAIN, None)),
        ("MAINT", CheckOutcome.NONE, (ServerState.MAINT, None)),
        ("MAINT (via web/rs1)", CheckOutcome.NONE, (ServerState.MAINT, "via web/rs1")),
        ("MAINT (resolution)", CheckOutcome.NONE, (ServerState.MAINT, "resolution")),
        ("no check", CheckOutcome.NONE, (ServerState.NO_CHECK, None)),
        ("", CheckOutcome.NONE, (ServerState.UNKNOWN, None)),
    ],
)
def test_server_state_words(text, check, expected):
    assert server_state(text, check) == expected


def test_a_server_of_weight_0_is_reported_drain():
    """HAProxy says UP for a server of weight 0 (how the configuration file writes drain): status says DRAIN."""
    from pacslb.engines.haproxy.runtime import ProxyKind, StatRow

    loaded = load_text(CONFIG)
    rows = [
        StatRow(proxy="web", name="BACKEND", kind=ProxyKind.BACKEND, status="UP"),
        StatRow(proxy="web", name="rs1", kind=ProxyKind.SERVER, status="UP", weight=0, user_weight=0),
        StatRow(proxy="web", name="rs2", kind=ProxyKind.SERVER, status="UP", weight=1, user_weight=1),
    ]
    status = build_status(loaded.config, rows, EngineStatus(running=True), None)
    rs1, rs2 = service(status, "web").real_servers[:2]
    assert (rs1.state, rs1.transition) == (ServerState.DRAIN, "weight 0")
    assert rs2.state is ServerState.UP
