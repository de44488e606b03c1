"""The server-state file written from the model, and the drift between what runs and the model."""

from __future__ import annotations

from pacslb.engines.haproxy.runtime import parse_servers_state
from pacslb.engines.haproxy.server_state import DesiredServer, desired_servers, drift, rewrite, running_admin
from pacslb.model import load_text

HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
    "srv_agent_addr srv_agent_port"
)


def line(server: str, op: int, admin: int, uweight: int, iweight: int, addr: str = "127.0.0.1", port: int = 80,
         backend: str = "web") -> str:  # fmt: skip
    return f"3 {backend} 1 {server} {addr} {op} {admin} {uweight} {iweight} 7 15 3 2 6 0 0 0 - {port} - 0 0 - - 0"


def state_text(*lines: str) -> str:
    return "1\n" + HEADER + "\n" + "\n".join(lines) + "\n"


CONFIG = """
version: 1
resolvers: [{name: dns, nameservers: [192.0.2.53:53]}]
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    resolvers: dns
    real_servers:
      - {name: up1, address: 127.0.0.1, port: 80}
      - {name: dr, address: 127.0.0.1, port: 80, state: drain, weight: 40}
      - {name: ha, address: 127.0.0.1, port: 80, state: halt, weight: 30}
      - {name: dns, address: pacs.example.org, port: 80}
  - name: l4
    mode: layer4-nat
    listen: [{address: 127.0.0.1, port: 104}]
    real_servers: [{name: x, address: 127.0.0.9, port: 104}]
"""


def desired():
    loaded = load_text(CONFIG)
    assert loaded.ok, loaded.problems
    return desired_servers(loaded.config)


def rows_of(text: str):
    return {r.server: r for r in parse_servers_state(text)}


def test_desired_servers_are_haproxy_s_only():
    want = desired()
    assert set(want) == {("web", "up1"), ("web", "dr"), ("web", "ha"), ("web", "dns")}
    assert want[("web", "dr")] == DesiredServer("drain", 40, 0, "127.0.0.1", 80)  # the file writes drain as weight 0
    assert want[("web", "ha")] == DesiredServer("maint", 30, 30, "127.0.0.1", 80)
    assert want[("web", "dns")].address is None


def test_rewrite_sets_the_model_s_states_and_keeps_health():
    text = state_text(
        line("up1", 2, 1, 100, 100),  # halted at runtime, the model says online: leaves maintenance -> dropped
        line("dr", 2, 0, 100, 100),  # online at runtime, the model drains it with weight 40
        line("ha", 0, 8, 30, 30),  # drained at runtime, the model halts it
        line("dns", 0, 0, 100, 100, addr="192.0.2.5"),  # DOWN by its check: health kept, address as resolved
        line("gone", 2, 0, 1, 1),  # not in the model: left alone (HAProxy ignores it)
    )
    out = rewrite(text, desired())
    rows = rows_of(out)
    assert "up1" not in rows
    assert (rows["dr"].admin_flags, rows["dr"].user_weight, rows["dr"].initial_weight) == (0x08, 40, 0)
    assert (rows["ha"].admin_flags, rows["ha"].user_weight, rows["ha"].initial_weight) == (0x05, 30, 30)
    assert rows["dns"].operational_state == 0 and rows["dns"].address == "192.0.2.5"
    assert rows["gone"].user_weight == 1
    assert out.startswith("1\n# be_id") and out.endswith("\n")


def test_rewrite_drops_servers_whose_address_or_port_changed():
    text = state_text(line("dr", 2, 0, 100, 100, addr="127.0.0.2"), line("ha", 2, 1, 30, 30, port=81))
    assert rows_of(rewrite(text, desired())) == {}


def test_rewrite_of_what_is_not_format_1_starts_clean():
    assert rewrite("2\n# something else\n", desired()) == "1\n"
    assert rewrite("", desired()) == "1\n"


def test_running_admin():
    assert running_admin(0) == "ready"
    assert running_admin(0x04) == "ready"  # `disabled` in the file, then set ready at runtime: it serves
    assert running_admin(0x05) == "maint"
    assert running_admin(0x08) == "drain"
    assert running_admin(0x09) == "maint"


def test_drift_gives_the_commands_and_what_needs_a_reload():
    rows = parse_servers_state(state_text(
        line("up1", 2, 8, 100, 100),  # drained at runtime: the model says online
        line("dr", 2, 0, 0, 0),  # started from the file (weight 0), no drain state yet
        line("ha", 0, 5, 30, 30),  # as the model says
        line("extra", 2, 0, 100, 100),  # a dynamic server the model does not have
        line("fallback", 2, 0, 1, 1),  # the renderer's fallback server: not a real server
        line("other", 2, 0, 1, 1, backend="elsewhere"),
    ))  # fmt: skip
    found = drift(rows, desired())
    assert found.commands == [
        "set server web/up1 state ready",
        "set server web/dr state drain",
        "set server web/dr weight 40",
    ]
    assert found.missing == [("web", "dns")]
    assert found.extra == [("web", "extra")]
    assert found.needs_reload


def test_no_drift():
    rows = parse_servers_state(state_text(
        line("up1", 2, 0, 100, 100), line("dr", 2, 8, 40, 0), line("ha", 0, 5, 30, 30), line("dns", 2, 0, 100, 100)
    ))  # fmt: skip
    found = drift(rows, desired())
    assert found.commands == [] and not found.needs_reload
