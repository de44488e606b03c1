"""`resolvers:` and a service's `resolvers` (model/resolvers.py): defaults, bounds, and each refusal named by its field."""

import pytest

from pacslb.model import validate_data
from pacslb.model.resolvers import MAX_NAMESERVERS, MAX_RESOLVERS


def base(resolvers=None, vs_resolvers="dns", address="pacs.example.org", mode="layer7-http", **vs_fields):
    vs = {
        "name": "web",
        "mode": mode,
        "listen": [{"address": "192.0.2.10", "port": 80}],
        "real_servers": [{"name": "rs1", "address": address, "port": 8080}],
        **vs_fields,
    }
    if vs_resolvers is not None:
        vs["resolvers"] = vs_resolvers
    data = {"version": 1, "virtual_services": [vs]}
    data["resolvers"] = [{"name": "dns", "nameservers": ["192.0.2.53:53"]}] if resolvers is None else resolvers
    return data


def problems(data):
    return [str(p) for p in validate_data(data).problems]


def test_defaults_and_the_forms_a_name_server_takes():
    loaded = validate_data(base([{"name": "dns", "nameservers": ["192.0.2.53:53", "[2001:DB8::53]:5353"]}]))
    assert loaded.ok, loaded.problems
    r = loaded.config.resolvers[0]
    assert r.nameservers == ["192.0.2.53:53", "[2001:db8::53]:5353"]
    assert (str(r.hold_valid), str(r.hold_failed), str(r.timeout), r.retries) == ("10s", "30s", "1s", 3)


def test_ip_addresses_need_no_resolvers():
    assert problems(base(resolvers=[], vs_resolvers=None, address="192.0.2.21")) == []


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            base(resolvers=[], vs_resolvers=None),
            "virtual_services[web].real_servers[rs1].address: 'pacs.example.org' is a DNS name: name the resolvers",
        ),
        (
            base(vs_resolvers=None, address="192.0.2.21", fallback={"address": "fb.example.org", "port": 80}),
            "virtual_services[web].fallback.address: 'fb.example.org' is a DNS name",
        ),
        (base(vs_resolvers="other"), "virtual_services[web].resolvers: no resolvers section is called 'other' (resolvers: dns)"),
        (base(mode="layer4-nat", address="192.0.2.21"), "virtual_services[web].resolvers: Layer 4 services need IP addresses"),
        (
            base([{"name": "dns", "nameservers": ["192.0.2.53:53"]}] * 2),
            "resolvers[dns]: two resolvers sections are called 'dns'",
        ),
        (base([{"name": "dns", "nameservers": []}]), "resolvers[dns].nameservers: "),
        (
            base([{"name": "dns", "nameservers": ["192.0.2.53"]}]),
            "resolvers[dns].nameservers[0]: '192.0.2.53' is not ADDRESS:PORT",
        ),
        (
            base([{"name": "dns", "nameservers": ["ns.example.org:53"]}]),
            "resolvers[dns].nameservers[0]: 'ns.example.org:53': the name",
        ),
        (base([{"name": "dns", "nameservers": ["2001:db8::53:53"]}]), "resolvers[dns].nameservers[0]: "),
        (base([{"name": "dns", "nameservers": ["[192.0.2.53]:53"]}]), "only an IPv6 address goes in brackets"),
        (
            base([{"name": "dns", "nameservers": ["192.0.2.53:0"]}]),
            "resolvers[dns].nameservers[0]: '192.0.2.53:0' is not ADDRESS:PORT",
        ),
        (
            base([{"name": "dns", "nameservers": ["192.0.2.53:53", "192.0.2.53:53"]}]),
            "resolvers[dns]: a name server is listed twice",
        ),
        (base([{"name": "dns", "nameservers": ["192.0.2.53:53"], "hold_valid": "500ms"}]), "resolvers[dns]: hold_valid must be"),
        (base([{"name": "dns", "nameservers": ["192.0.2.53:53"], "hold_valid": "2d"}]), "resolvers[dns]: hold_valid must be"),
        (base([{"name": "dns", "nameservers": ["192.0.2.53:53"], "hold_failed": "2d"}]), "resolvers[dns]: hold_failed must be"),
        (base([{"name": "dns", "nameservers": ["192.0.2.53:53"], "timeout": "50ms"}]), "resolvers[dns]: timeout must be"),
        (base([{"name": "dns", "nameservers": ["192.0.2.53:53"], "retries": 11}]), "resolvers[dns].retries: "),
        (base([{"name": "dns", "nameservers": ["192.0.2.53:53"], "hold": "1s"}]), "resolvers[dns].hold: "),
    ],
)
def test_each_mistake_names_its_field(data, expected):
    found = problems(data)
    assert any(p.startswith(expected) or expected in p for p in found), found


def test_every_count_has_a_limit_and_its_bound_is_accepted():
    servers = [f"192.0.2.{i}:53" for i in range(1, MAX_NAMESERVERS + 2)]
    assert any(p.startswith("resolvers[dns].nameservers:") for p in problems(base([{"name": "dns", "nameservers": servers}])))
    assert problems(base([{"name": "dns", "nameservers": servers[:-1]}])) == []
    sections = [{"name": f"r{i}", "nameservers": ["192.0.2.53:53"]} for i in range(MAX_RESOLVERS + 1)]
    assert any(p.startswith("resolvers:") for p in problems(base(sections, vs_resolvers="r0")))
    assert problems(base(sections[:-1], vs_resolvers="r0")) == []
