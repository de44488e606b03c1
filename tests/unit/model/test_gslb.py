"""The `gslb:` section: each problem names its field and says what to do; every limit is enforced."""

from __future__ import annotations

import copy

import pytest

from pacslb.model import gslb as g
from pacslb.model import validate_data


def base() -> dict:
    return {
        "version": 1,
        "virtual_services": [
            {
                "name": "WFC_443",
                "mode": "layer7-tcp",
                "listen": [{"address": "127.0.0.1", "port": 8443}],
                "real_servers": [{"name": "rs1", "address": "192.0.2.50", "port": 443}],
            },
        ],  # fmt: skip
        "gslb": {
            "zones": [{"name": "pacs.example.org", "nameservers": ["ns1.example.net"]}],
            "sites": [
                {
                    "name": "dc1",
                    "addresses": ["192.0.2.1", "2001:db8::1"],
                    "near": ["10.1.0.0/16"],
                    "health_check": {"type": "http", "port": 443},
                    "virtual_service": "WFC_443",
                },
                {
                    "name": "dc2",
                    "addresses": ["198.51.100.1"],
                    "near": ["10.2.0.0/16"],
                    "priority": 2,
                    "health_check": {"type": "connect", "port": 443},
                },
            ],  # fmt: skip
            "names": [{"name": "wfc.pacs.example.org", "policy": "topology", "sites": ["dc1", "dc2"]}],
            "listen": {"port": 5300},
        },
    }


def problems(data: dict) -> list[str]:
    return [str(p) for p in validate_data(data).problems]


def test_base_is_valid_and_names_are_kept_lower_case_without_the_final_dot():
    data = base()
    data["gslb"]["names"][0]["name"] = "WFC.pacs.example.org."
    loaded = validate_data(data)
    assert loaded.problems == []
    gslb = loaded.config.gslb
    assert gslb.names[0].name == "wfc.pacs.example.org"
    assert gslb.names[0].ttl == 30 and gslb.listen.port == 5300
    assert gslb.zones[0].mailbox == "hostmaster.pacs.example.org"
    assert gslb.zone_of("wfc.pacs.example.org").name == "pacs.example.org"


def test_without_a_section_there_is_none():
    data = base()
    del data["gslb"]
    assert validate_data(data).config.gslb is None


def _set(path: list, value):
    def change(d):
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


CASES = [
    (
        _set(["gslb", "names", 0, "sites", 1], "dc9"),
        "gslb.names[wfc.pacs.example.org].sites[1]: there is no site 'dc9' in gslb.sites",
    ),
    (_set(["gslb", "names", 0, "sites"], ["dc1", "dc1"]), "gslb.names[wfc.pacs.example.org].sites[1]: 'dc1' is listed twice"),
    (
        _set(["gslb", "names", 0, "name"], "wfc.other.org"),
        "gslb.names[wfc.other.org].name: wfc.other.org is in none of the zones: add its zone to gslb.zones",
    ),
    (
        _set(["gslb", "names", 0, "name"], "pacs.example.org"),
        "gslb.names[pacs.example.org].name: a name cannot be the zone's apex (it holds the SOA and NS): use a name below it",
    ),
    (
        _set(["gslb", "sites", 1, "health_check"], {"type": "dicom-echo"}),
        "gslb.sites[dc2].health_check.port: a site has no port of its own: give the port its VIP serves (e.g. 443)",
    ),
    (
        _set(["gslb", "sites", 0, "virtual_service"], "nope"),
        "gslb.sites[dc1].virtual_service: there is no virtual service 'nope' on this appliance",
    ),
    (
        _set(["gslb", "sites", 0, "check_address"], "192.0.2.9"),
        "gslb.sites[dc1].check_address: 192.0.2.9 is not one of the site's addresses: list it, or omit it",
    ),
    (
        _set(["gslb", "sites", 1, "near"], ["10.1.0.0/16"]),
        "gslb.names[wfc.pacs.example.org].sites: 10.1.0.0/16 is near both 'dc1' and 'dc2': keep it in one site",
    ),
    (_set(["gslb", "names", 0, "fallback"], ["203.0.113.7", "2001:db8::7", "fe80::1"]), None),
    (
        _set(["gslb", "zones", 0, "nameservers"], ["ns1.pacs.example.org"]),
        "gslb.zones[pacs.example.org].nameserver_addresses: ns1.pacs.example.org lies inside the zone: give its addresses "
        "(glue), or name a nameserver outside it",
    ),
    (_set(["gslb", "names", 0, "name"], "wfc pacs"), "gslb.names[wfc pacs].name: 'wfc pacs' is not a DNS name"),
    (_set(["gslb", "names", 0, "policy"], "nearest"), "gslb.names[wfc.pacs.example.org].policy: "),
    (_set(["gslb", "sites", 0, "addresses"], ["not-an-ip"]), "gslb.sites[dc1].addresses[0]: 'not-an-ip' is not an IPv4 or IPv6"),
    (_set(["gslb", "sites", 0, "near"], ["10.1.0.0/33"]), "gslb.sites[dc1].near[0]: '10.1.0.0/33' is not an IP network"),
    (_set(["gslb", "sites", 1, "name"], "dc1"), "gslb: sites: 'dc1' is listed twice; each must be unique"),
    (_set(["gslb", "names", 0, "ttl"], 0), "gslb.names[wfc.pacs.example.org].ttl: "),
    (_set(["gslb", "sites", 0, "weight"], 1001), "gslb.sites[dc1].weight: "),
    (_set(["gslb", "listen", "address"], "localhost"), "gslb.listen.address: 'localhost' is not an IPv4 or IPv6 address"),
    (_set(["gslb", "bogus"], 1), "gslb.bogus: "),
    (
        _set(["gslb", "listen"], {"address": "127.0.0.1", "port": 8443}),
        "gslb.listen.port: virtual service 'WFC_443' listens on 127.0.0.1 port 8443 (TCP): choose another port or address",
    ),
    (_set(["gslb", "listen"], {"address": "127.0.0.2", "port": 8443}), None),
]


@pytest.mark.parametrize("change, expected", CASES)
def test_a_problem_names_its_field(change, expected):
    data = copy.deepcopy(base())
    change(data)
    found = problems(data)
    if expected is None:  # a valid change
        assert found == []
    else:
        assert any(p.startswith(expected) for p in found), found


def test_topology_needs_near_networks():
    data = base()
    for site in data["gslb"]["sites"]:
        site["near"] = []
    assert "gslb.names[wfc.pacs.example.org].policy: topology needs at least one member site with near networks" in (
        " ".join(problems(data))
    )
    data["gslb"]["names"][0]["policy"] = "failover"
    assert problems(data) == []


def test_a_fallback_of_a_family_no_site_has():
    data = base()
    data["gslb"]["names"][0]["sites"] = ["dc2"]
    data["gslb"]["names"][0]["fallback"] = ["2001:db8::7"]
    assert problems(data) == [
        "gslb.names[wfc.pacs.example.org].fallback[0]: 2001:db8::7 is of a family no member site has; "
        "list addresses of the sites' families"
    ]


LIMITS = [
    (["zones"], g.MAX_ZONES, lambda i: {"name": f"z{i}.example.org", "nameservers": ["ns1.example.net"]}),
    (["sites"], g.MAX_SITES, lambda i: {"name": f"s{i}", "addresses": [f"192.0.2.{i % 250 + 1}"]}),
    (["names"], g.MAX_NAMES, lambda i: {"name": f"n{i}.pacs.example.org", "policy": "failover", "sites": ["dc2"]}),
    (["sites", 0, "addresses"], g.MAX_ADDRESSES_PER_SITE, lambda i: f"192.0.2.{i + 1}"),
    (["sites", 0, "near"], g.MAX_NEAR_NETWORKS_PER_SITE, lambda i: f"10.{i // 256 + 100}.{i % 256}.0/24"),
    (["names", 0, "sites"], g.MAX_SITES_PER_NAME, lambda i: "dc1" if i == 0 else f"s{i}"),
    (["names", 0, "fallback"], g.MAX_FALLBACK_ADDRESSES, lambda i: f"203.0.113.{i + 1}"),
    (["zones", 0, "nameservers"], g.MAX_NAMESERVERS, lambda i: f"ns{i}.example.net"),
]


@pytest.mark.parametrize("path, limit, item", LIMITS, ids=lambda v: str(v) if isinstance(v, (list, int)) else "")
def test_every_list_has_its_limit(path, limit, item):
    def filled(count: int) -> dict:
        data = copy.deepcopy(base())
        node = data["gslb"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = [item(i) for i in range(count)]
        if path == ["names", 0, "sites"]:  # the members must exist
            data["gslb"]["sites"] += [{"name": f"s{i}", "addresses": ["192.0.2.77"]} for i in range(1, count)]
        return data

    at_limit = [p for p in problems(filled(limit)) if "at most" in p or "should have" in p]
    assert at_limit == []
    over = problems(filled(limit + 1))
    dotted = "gslb." + ".".join(str(k) for k in path if not isinstance(k, int))
    assert any(p.split(":")[0].startswith(dotted.split(".")[0]) and f"{limit:,}" in p for p in over), over


def test_the_true_pacs_example_of_docs_gslb_md_is_valid():
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[3] / "docs" / "gslb.md").read_text()
    example = text.split("## Example: True PACS in two data centres", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = validate_data(yaml.safe_load(example))
    assert loaded.problems == [], loaded.problems
    gslb = loaded.config.gslb
    assert [n.policy for n in gslb.names] == ["topology", "failover"]
    assert {s.virtual_service for s in gslb.sites} == {"WFC_443", "SR_https_vs", None}


def test_a_site_check_password_is_a_secret_like_any_other():
    from pacslb.model.secrets import revealed_dump, secrets_of

    data = base()
    data["gslb"]["sites"][1]["health_check"] = {"type": "amqp", "port": 5671, "username": "pacs", "password": "s3cret"}
    config = validate_data(data).config
    assert list(secrets_of(config)) == ["gslb.sites[dc2].health_check.password"]
    assert (
        "s3cret" not in config.model_dump_json()
        and revealed_dump(config)["gslb"]["sites"][1]["health_check"]["password"] == "s3cret"
    )
