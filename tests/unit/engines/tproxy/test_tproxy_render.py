"""What TPROXY needs from the kernel (engines/tproxy/render.py, pure), and its settings (settings.transparent)."""

from __future__ import annotations

import pytest

from pacslb.engines.tproxy.render import Wanted, families, wanted
from pacslb.model import validate_data
from pacslb.model.client_address import MAX_SHARED_WARNINGS


def data(*servers: str, transparent: bool = True, mode: str = "layer7-tcp", **settings) -> dict:
    return {
        "version": 1,
        "settings": {"transparent": settings} if settings else {},
        "virtual_services": [
            {
                "name": "dicom",
                "mode": mode,
                "listen": [{"address": "192.0.2.10", "port": 104}],
                "transparent": transparent,
                "real_servers": [{"name": f"rs{i}", "address": a, "port": 104} for i, a in enumerate(servers)],
            }
        ],
    }


def config(*servers: str, **kw):
    d = data(*servers, **kw)
    if any(not a[0].isdigit() and ":" not in a for a in servers):  # a DNS name needs resolvers (model/resolvers.py)
        d["resolvers"] = [{"name": "site_dns", "nameservers": ["192.0.2.53:53"]}]
        d["virtual_services"][0]["resolvers"] = "site_dns"
    loaded = validate_data(d)
    assert loaded.ok, loaded.problems
    return loaded.config


def test_nothing_is_wanted_without_a_transparent_service() -> None:
    target = wanted(config("10.1.0.1", transparent=False))
    assert target == Wanted() and target.empty and target.items() == () and target.digest() is None and target.text() == ""


def test_an_ipv4_transparent_service_wants_a_route_a_rule_and_the_mark() -> None:
    target = wanted(config("10.1.0.1", "10.1.0.2"))
    assert target == Wanted(0x504C, 20556, (4,))
    assert target.items() == ("route4", "rule4", "nftables")
    assert target.text().splitlines()[:2] == [
        "ip -4 route add local 0.0.0.0/0 dev lo table 20556",
        "ip -4 rule add fwmark 0x504c lookup 20556",
    ]
    assert target.ruleset() == (
        "table inet pacslb_tproxy {}\n"
        "delete table inet pacslb_tproxy\n"
        "table inet pacslb_tproxy {\n"
        "\tchain prerouting {\n"
        "\t\ttype filter hook prerouting priority mangle; policy accept;\n"
        "\t\tmeta l4proto tcp socket transparent 1 meta mark set 0x504c accept\n"
        "\t}\n"
        "}\n"
    )


def test_families_follow_the_real_servers_and_a_name_may_be_either() -> None:
    assert families(config("fd00::1")) == (6,)
    assert families(config("10.1.0.1", "fd00::1")) == (4, 6)
    assert families(config("pacs.example")) == (4, 6)
    both = wanted(config("10.1.0.1", "fd00::1"))
    assert both.items() == ("route4", "route6", "rule4", "rule6", "nftables")
    assert "ip -6 route add local ::/0 dev lo table 20556" in both.text()


def test_the_digest_follows_mark_table_and_families() -> None:
    base = wanted(config("10.1.0.1")).digest()
    assert base == wanted(config("10.1.0.2")).digest()  # the servers' addresses are not the kernel's business
    assert base != wanted(config("10.1.0.1", mark=7)).digest()
    assert base != wanted(config("10.1.0.1", table=7)).digest()
    assert base != wanted(config("10.1.0.1", "fd00::1")).digest()


def test_a_backend_only_service_that_is_transparent_counts() -> None:
    d = data("10.1.0.1", transparent=False)
    d["virtual_services"][0]["default_service"] = "pacs"
    d["virtual_services"].append({"name": "pacs", "mode": "backend-only", "transparent": True,
                                  "real_servers": [{"name": "rs1", "address": "fd00::5", "port": 104}]})  # fmt: skip
    loaded = validate_data(d)
    assert loaded.ok, loaded.problems
    assert wanted(loaded.config).families == (6,)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"mark": 0}, "settings.transparent.mark: input should be greater than or equal to 1"),
        ({"mark": 2**32}, "settings.transparent.mark: input should be less than or equal to 4294967295"),
        ({"table": 0}, "settings.transparent.table: input should be greater than or equal to 1"),
        ({"table": 2**31}, "settings.transparent.table: input should be less than or equal to 2147483647"),
        (
            {"table": 254},
            "settings.transparent.table: table 254 is the kernel's own (253 default, 254 main, 255 local): choose another",
        ),  # fmt: skip
        ({"marc": 1}, "settings.transparent.marc: unknown field 'marc'; did you mean 'mark'?"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(settings: dict, message: str) -> None:
    found = [str(p) for p in validate_data(data("10.1.0.1", **settings)).problems]
    assert message in found, found


def test_validation_tells_what_the_real_servers_need() -> None:
    loaded = validate_data(data("10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"))
    assert loaded.ok
    assert [str(p) for p in loaded.problems] == [
        "warning: virtual_services[dicom].transparent: the real servers (10.1.0.1, 10.1.0.2, 10.1.0.3, ...) see each "
        "client's own address: their route to the clients (their default route, or a route to the client networks) must "
        "go through this appliance, or their replies go straight to clients that drop them "
        "(docs/client-address.md#tproxy-the-clients-own-address)"
    ]
    assert validate_data(data("10.1.0.1", transparent=False)).problems == []


def test_the_hints_are_bounded() -> None:
    d = data("10.1.0.1")
    d["virtual_services"] = [{**d["virtual_services"][0], "name": f"dicom{i}", "listen": [{"address": "192.0.2.10",
                              "port": 1000 + i}]} for i in range(MAX_SHARED_WARNINGS + 5)]  # fmt: skip
    found = [str(p) for p in validate_data(d).problems]
    assert len(found) == MAX_SHARED_WARNINGS + 1
    assert found[0] == (
        "warning: virtual_services: 5 more transparent services (the first 50 are named): their real servers too must "
        "route their replies to the clients through this appliance"
    )
