"""The plan of a change: runtime operations where HAProxy allows them, else a reload with its reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacslb.engines.haproxy.plan import Method, OpKind, make_plan
from pacslb.engines.haproxy.render import HAProxyEnv
from pacslb.model import load_text
from pacslb.model.config import RealServerState

ENV = HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=2)

BASE = """
version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 192.0.2.10, port: 443}]
    resolvers: dns
    health_check: {type: http, path: /, interval: 2s, timeout: 1s, rise: 2, fall: 3}
    PERSISTENCE
    real_servers:
      - {name: rs1, address: 192.0.2.21, port: 443}
      - {name: rs2, address: 192.0.2.22, port: 443}
RS_MORE
  - name: l4
    mode: layer4-nat
    listen: [{address: 192.0.2.11, port: 104}]
    real_servers:
      - {name: pacs1, address: 192.0.2.41, port: 104}
resolvers: [{name: dns, nameservers: [192.0.2.53:53]}]
"""


def config(rs_more: str = "", persistence: str = "", base: str = BASE, replace: dict[str, str] | None = None):
    text = base.replace("RS_MORE\n", rs_more).replace("PERSISTENCE", persistence)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    loaded = load_text(text)
    assert loaded.ok, loaded.problems
    return loaded.config


RS3 = "      - {name: rs3, address: 192.0.2.23, port: 443}\n"


def plan(old, new):
    return make_plan(old, new, ENV)


def test_no_change():
    p = plan(config(), config())
    assert p.empty and p.method is Method.NONE and p.lines() == ["no change: the appliance already runs this configuration"]


def test_state_and_weight_are_runtime_operations():
    new = config(replace={"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.21, port: 443, state: drain, weight: 50}",
                          "{name: rs2, address: 192.0.2.22, port: 443}": "{name: rs2, address: 192.0.2.22, port: 443, state: halt}"})  # fmt: skip
    p = plan(config(), new)
    assert p.method is Method.RUNTIME and p.reload_reasons == []
    assert [str(op) for op in p.operations] == ["weight web/rs1 50", "drain web/rs1", "halt web/rs2"]
    back = plan(new, config())
    assert [str(op) for op in back.operations] == [
        "weight web/rs1 100",
        "online web/rs1 (weight 100)",
        "online web/rs2 (weight 100)",
    ]
    assert "HAProxy: runtime operations, no reload:" in back.lines()


def test_added_real_server_is_a_dynamic_server_with_the_file_s_options():
    p = plan(config(), config(replace={"      - {name: rs2, address: 192.0.2.22, port: 443}\n":
                                        "      - {name: rs2, address: 192.0.2.22, port: 443}\n" + RS3}))  # fmt: skip
    assert p.method is Method.RUNTIME
    (op,) = p.operations
    assert op.kind is OpKind.ADD and op.ref == "web/rs3" and op.state is RealServerState.ONLINE
    assert op.address == "192.0.2.23:443"
    # the server line's options, then default-server's (dynamic servers do not inherit it)
    assert op.options == ("check", "weight", "100", "inter", "2s", "rise", "2", "fall", "3")
    assert [str(c) for c in p.changes] == ["virtual_services[web].real_servers[rs3]: added"]


def test_removed_real_server_is_deleted_after_added_ones():
    new = config(replace={"      - {name: rs1, address: 192.0.2.21, port: 443}\n": "",
                          "      - {name: rs2, address: 192.0.2.22, port: 443}\n": "      - {name: rs2, address: 192.0.2.22, port: 443}\n" + RS3})  # fmt: skip
    p = plan(config(), new)
    assert [op.kind for op in p.operations] == [OpKind.ADD, OpKind.DELETE]
    assert str(p.operations[1]) == "remove web/rs1 (drain, halt, then delete once its connections end)"


def test_address_and_port_change_at_runtime():
    p = plan(
        config(), config(replace={"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.31, port: 8443}"})
    )
    (op,) = p.operations
    assert (op.kind, op.address, op.port) == (OpKind.ADDRESS, "192.0.2.31", 8443)


@pytest.mark.parametrize(
    "replace, reason",
    [
        (
            {"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: pacs1.example.org, port: 443}"},
            "virtual_services[web].real_servers[rs1].address: pacs1.example.org is a DNS name",
        ),
        (
            {"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.21, port: 443, max_connections: 10}"},
            "virtual_services[web].real_servers[rs1].max_connections changed",
        ),
        (
            {"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.21, port: 443, backup: true}"},
            "virtual_services[web].real_servers[rs1].backup changed",
        ),
        ({"path: /,": "path: /health,"}, "changed: virtual_services[web].health_check.path"),
        ({"version: 1\n": "version: 1\nsettings: {retries: 2}\n"}, "settings changed: settings.retries"),
    ],
)
def test_what_needs_a_reload(replace, reason):
    p = plan(config(), config(replace=replace))
    assert p.method is Method.RELOAD and p.operations == []
    assert any(r.startswith(reason) for r in p.reload_reasons), p.reload_reasons
    assert "HAProxy: hitless reload (the old worker finishes its connections), because:" in p.lines()


def test_a_port_that_switches_to_the_client_s_port_needs_a_reload():
    check_port = {"fall: 3}": "fall: 3, port: 443}"}
    p = plan(
        config(replace=check_port),
        config(replace={**check_port, "{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.21}"}),
    )
    assert p.reload_reasons == [
        "virtual_services[web].real_servers[rs1].port: switches between a fixed port and the client's port"
    ]


def test_cookie_persistence_adds_and_removes_by_reload():
    cookie = "persistence: {type: http-cookie}"
    old = config(persistence=cookie)
    added = config(persistence=cookie, replace={"      - {name: rs2, address: 192.0.2.22, port: 443}\n":
                                                "      - {name: rs2, address: 192.0.2.22, port: 443}\n" + RS3})  # fmt: skip
    p = plan(old, added)
    assert p.method is Method.RELOAD
    assert p.reload_reasons == [
        "virtual_services[web].real_servers[rs3]: added, but HAProxy refuses the cookie keyword (cookie persistence) "
        "for servers added at runtime"
    ]
    removed = plan(added, old)
    assert removed.reload_reasons == ["virtual_services[web].real_servers[rs3]: removed from a service with cookie persistence"]
    # states and weights stay runtime operations there
    drained = config(
        persistence=cookie,
        replace={"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.21, port: 443, state: drain}"},
    )
    assert plan(old, drained).method is Method.RUNTIME


def test_source_ip_persistence_adds_at_runtime():
    stick = "persistence: {type: source-ip}"
    p = plan(config(persistence=stick), config(persistence=stick, replace={
        "      - {name: rs2, address: 192.0.2.22, port: 443}\n": "      - {name: rs2, address: 192.0.2.22, port: 443}\n" + RS3}))  # fmt: skip
    assert p.method is Method.RUNTIME


def test_changed_resolvers_need_a_reload():
    new = config(replace={"nameservers: [192.0.2.53:53]": "nameservers: [192.0.2.54:53]"})
    p = plan(config(), new)
    assert p.method is Method.RELOAD and p.reload_reasons[0].startswith("resolvers changed: resolvers")


def test_added_real_server_by_dns_name_needs_a_reload():
    p = plan(config(), config(replace={"      - {name: rs2, address: 192.0.2.22, port: 443}\n":
                                        "      - {name: rs2, address: 192.0.2.22, port: 443}\n"
                                        "      - {name: rs3, address: pacs3.example.org, port: 443}\n"}))  # fmt: skip
    assert p.method is Method.RELOAD
    assert "is a DNS name, which HAProxy does not resolve for servers added at runtime" in p.reload_reasons[0]


def test_backups_keep_their_priority():
    backups = ("      - {name: rs2, address: 192.0.2.22, port: 443}\n",
               "      - {name: rs2, address: 192.0.2.22, port: 443}\n      - {name: b1, address: 192.0.2.51, port: 443, backup: true}\n")  # fmt: skip
    old = config(replace=dict([backups]))
    last = config(replace={backups[0]: backups[1] + "      - {name: b2, address: 192.0.2.52, port: 443, backup: true}\n"})
    assert plan(old, last).method is Method.RUNTIME  # a last backup goes last at runtime too
    first = config(replace={backups[0]: backups[0] + "      - {name: b0, address: 192.0.2.50, port: 443, backup: true}\n"
                            + backups[1].split("\n", 1)[1]})  # fmt: skip
    p = plan(old, first)
    assert p.method is Method.RELOAD and "their order is their priority" in p.reload_reasons[0]
    swapped = config(replace={backups[0]: backups[0] + "      - {name: b2, address: 192.0.2.52, port: 443, backup: true}\n"
                              + backups[1].split("\n", 1)[1]})  # fmt: skip
    p = plan(last, swapped)
    assert p.reload_reasons == [
        "virtual_services[web].real_servers: the order of backup real servers changed (it is their priority)"
    ]


def test_first_and_last_real_server_change_the_backend():
    base = """
version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 192.0.2.10, port: 443}]
    default_service: api
    rules: [{name: r, match: {path_begins: [/x]}, use_service: api}]
    real_servers: RS
  - name: api
    mode: backend-only
    real_servers: [{name: a1, address: 192.0.2.61, port: 80}]
"""
    empty = config(base=base.replace("RS", "[]"))
    one = config(base=base.replace("RS", "[{name: w1, address: 192.0.2.71, port: 80}]"))
    assert plan(empty, one).reload_reasons == [
        "virtual_services[web].real_servers: its first real server added (its backend appears or disappears)"
    ]
    assert "its last real server removed" in plan(one, empty).reload_reasons[0]


def test_layer4_changes_are_nftables_and_need_no_haproxy_change():
    p = plan(
        config(),
        config(
            replace={"{name: pacs1, address: 192.0.2.41, port: 104}": "{name: pacs1, address: 192.0.2.41, port: 104, weight: 5}"}
        ),
    )
    assert p.method is Method.NONE and p.layer4 == ["l4"] and p.changes
    assert p.lines()[-2:] == ["HAProxy: nothing to change", "nftables (Layer 4): l4"]


def test_services_added_removed_or_reordered():
    extra = """  - name: web2
    mode: layer7-http
    listen: [{address: 192.0.2.10, port: 80}]
    real_servers: [{name: rs1, address: 192.0.2.21, port: 80}]
"""
    assert plan(config(), config(rs_more=extra)).reload_reasons == ["virtual_services[web2]: added"]
    assert plan(config(rs_more=extra), config()).reload_reasons == ["virtual_services[web2]: removed"]
    reordered = config(base=BASE.replace("RS_MORE\n", "").replace("  - name: l4", extra + "  - name: l4"))
    moved = config(
        base=BASE.replace("RS_MORE\n", "").replace("version: 1\nvirtual_services:\n", "version: 1\nvirtual_services:\n" + extra)
    )
    p = plan(reordered, moved)
    assert p.method is Method.NONE and [str(c) for c in p.changes] == ["virtual_services: order web, web2, l4 -> web2, web, l4"]


def test_re_encrypted_server_needs_its_ca_file_loaded():
    tls = "server_tls: {verify: required, ca_file: /etc/pacslb/ca.pem}"
    enc = "{name: rs2, address: 192.0.2.22, port: 443, encrypted: true}"
    loaded_ca = config(persistence=tls, replace={"{name: rs2, address: 192.0.2.22, port: 443}": enc})
    added = config(
        persistence=tls,
        replace={
            "{name: rs2, address: 192.0.2.22, port: 443}": enc
            + "\n      - {name: rs3, address: 192.0.2.23, port: 443, encrypted: true}"
        },
    )
    p = plan(loaded_ca, added)
    assert p.method is Method.RUNTIME
    assert "ca-file" in p.operations[0].options and "/etc/pacslb/ca.pem" in p.operations[0].options
    not_loaded = config(persistence=tls)
    p = plan(not_loaded, config(persistence=tls, replace={"      - {name: rs2, address: 192.0.2.22, port: 443}\n":
                                                         "      - {name: rs2, address: 192.0.2.22, port: 443}\n"
                                                         "      - {name: rs3, address: 192.0.2.23, port: 443, encrypted: true}\n"}))  # fmt: skip
    assert p.method is Method.RELOAD and "CA file is not loaded" in p.reload_reasons[0]


def test_plan_as_dict():
    p = plan(
        config(),
        config(replace={"{name: rs1, address: 192.0.2.21, port: 443}": "{name: rs1, address: 192.0.2.21, port: 443, weight: 7}"}),
    )
    d = p.as_dict()
    assert d["method"] == "runtime"
    assert d["operations"] == [{"kind": "weight", "service": "web", "real_server": "rs1", "state": None, "weight": 7,
                                "address": None, "port": None, "text": "weight web/rs1 7"}]  # fmt: skip
    assert d["changes"][0]["text"] == "virtual_services[web].real_servers[rs1].weight: 100 -> 7"
