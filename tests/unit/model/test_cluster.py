"""The `cluster:` section: a node of an active-active cluster; each problem names its field and says what to do."""

from __future__ import annotations

import copy

import pytest

from pacslb.model import validate_data
from pacslb.model.ha import NODE_LOCAL


def base() -> dict:
    return {
        "version": 1,
        "virtual_services": [
            {
                "name": "WFC_443",
                "mode": "layer7-tcp",
                "listen": [{"address": "192.0.2.10", "port": 443}],
                "real_servers": [{"name": "rs1", "address": "198.51.100.50", "port": 443}],
            },
        ],  # fmt: skip
        "cluster": {
            "name": "truepacs",
            "node": "lb2",
            "nodes": [
                {"name": "lb1", "address": "10.0.1.11"},
                {"name": "lb2", "address": "10.0.1.12"},
                {"name": "lb3", "address": "10.0.1.13"},
                {"name": "lb4", "address": "10.0.1.14", "etcd_member": False},
            ],
            "bgp": {"local_as": 65010, "neighbors": [{"address": "10.0.1.1", "remote_as": 65000}]},
        },
    }


def problems(data: dict) -> list[str]:
    return [str(p) for p in validate_data(data).problems]


def test_a_cluster_node_validates_with_the_defaults():
    result = validate_data(base())
    assert result.problems == [] and result.config is not None
    cluster = result.config.cluster
    assert cluster.this_node.address == "10.0.1.12" and [n.name for n in cluster.etcd_members] == ["lb1", "lb2", "lb3"]
    assert (cluster.bgp.hold_time.milliseconds, cluster.bgp.keepalive.milliseconds) == (9000, 3000)
    assert (cluster.bgp.bfd.interval.milliseconds, cluster.bgp.bfd.multiplier) == (100, 3)
    assert (cluster.etcd.client_port, cluster.etcd.peer_port, cluster.peers_port) == (2379, 2380, 10000)


def test_the_section_is_node_local():
    assert "cluster" in NODE_LOCAL


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda c: c.update(node="lb9"), "node 'lb9' is not one of nodes (lb1, lb2, lb3, lb4)"),
        (lambda c: c["nodes"][1].update(name="lb1"), "node names must be unique: lb1"),
        (lambda c: c["nodes"][1].update(address="10.0.1.11"), "node addresses must be unique: 10.0.1.11"),
        (lambda c: c["nodes"][2].update(etcd_member=False), "2 nodes have etcd_member"),
        (lambda c: c.update(name="TruePACS"), "is not a cluster name"),
        (lambda c: c["nodes"][0].update(name="-lb"), "is not a node name"),
        (lambda c: c["bgp"].update(keepalive="4s"), "keepalive (4000 ms) must be at most a third of hold_time"),
        (lambda c: c["bgp"].update(hold_time="2s"), "hold_time must be 0 (no hold timer) or between 3s"),
        (lambda c: c["bgp"].update(hold_time="9500ms"), "whole seconds"),
        (lambda c: c["bgp"].update(neighbors=[]), "cluster.bgp.neighbors"),
        (lambda c: c["bgp"].update(vip_interface="not an interface"), "is not an interface name"),
        (lambda c: c["bgp"].update(bfd={"interval": "5ms"}), "between 10ms and 10s"),
        (lambda c: c.update(etcd={"client_port": 2380}), "give them different ports"),
    ],
)
def test_a_wrong_cluster_section_is_refused_naming_the_field(change, says):
    data = copy.deepcopy(base())
    change(data["cluster"])
    found = problems(data)
    assert any(says in p and p.startswith("cluster") for p in found), found


def test_rules_across_the_configuration():
    data = base()
    data["ha"] = {"role": "primary", "address": "10.0.1.12", "peer_address": "10.0.1.13", "interface": "eth0"}
    assert any(p.startswith("cluster: a node is in an HA pair") for p in problems(data))

    data = base()
    data["cluster"]["bgp"]["neighbors"] = [{"address": "10.0.1.13", "remote_as": 65000}, {"address": "10.0.1.1", "remote_as": 65000},
                                           {"address": "10.0.1.1", "remote_as": 65000}]  # fmt: skip
    found = problems(data)
    assert "cluster.bgp.neighbors[0].address: 10.0.1.13 is a node of the cluster, not an upstream router" in found
    assert "cluster.bgp.neighbors[2].address: 10.0.1.1 is given twice" in found

    data = base()
    data["cluster"]["bgp"]["neighbors"][0]["remote_as"] = 65010
    result = validate_data(data)
    assert result.config is not None and [p.severity for p in result.problems] == ["warning"]
    assert "iBGP" in result.problems[0].message


def test_a_cluster_node_does_not_name_settings_network_interface():
    data = base()
    data["settings"] = {"network": {"interface": "eth0"}}
    assert any(p.startswith("settings.network.interface: a cluster node holds its VIPs on cluster.bgp.vip_interface")
               for p in problems(data))  # fmt: skip


def test_ipv6_vips_without_an_ipv6_neighbor_are_a_warning_naming_the_fix():
    data = base()
    data["virtual_services"][0]["listen"].append({"address": "2001:db8::10", "port": 443})
    found = validate_data(data).problems
    warnings = [p for p in found if p.path == "cluster.bgp.neighbors" and p.severity == "warning"]
    assert len(warnings) == 1 and "no IPv6 neighbour" in warnings[0].message and "2001:db8::10" in warnings[0].message
    data["cluster"]["bgp"]["neighbors"].append({"address": "2001:db8:ff::1", "remote_as": 65000})
    assert not [p for p in validate_data(data).problems if p.path == "cluster.bgp.neighbors"]


def test_the_number_of_vip_addresses_a_node_announces_is_bounded():
    import ipaddress

    from pacslb.model.host import MAX_VIP_ADDRESSES

    data = base()
    first = ipaddress.ip_address("10.200.0.1")
    service = data["virtual_services"][0]
    per = 256  # listeners per service (model/limits.py MAX_LISTENERS)
    data["virtual_services"] = [
        {**service, "name": f"vs{n}", "listen": [{"address": str(first + n * per + i), "port": 443} for i in range(per)]}
        for n in range(MAX_VIP_ADDRESSES // per)
    ]
    assert not [p for p in problems(data) if p.startswith("cluster.bgp.vip_interface")]
    data["virtual_services"].append({**service, "name": "one_more", "listen": [{"address": "198.51.100.201", "port": 443}]})
    found = [p for p in problems(data) if p.startswith("cluster.bgp.vip_interface")]
    assert len(found) == 1 and f"more than the {MAX_VIP_ADDRESSES}" in found[0], found
