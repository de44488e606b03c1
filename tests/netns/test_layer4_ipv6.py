"""Layer 4 NAT and SNAT over IPv6 through the real kernel, in network namespaces.

The same drawing as the IPv4 bed (support/netns.py, layer4_bed6 there), with ULA addresses that exist only inside the namespaces (`nodad`:
usable at once, no duplicate-address detection to wait for):

    client  c0 fd00:99::2/64                          (route to the VIP: on-link)
    lb      l0 fd00:99::1/64, fd00:99:1::1/64, VIP fd00:99::10/128   (IPv6 forwarding on)
    rs1     r0 fd00:99:1::11/64, default via fd00:99:1::1
    rs2     r0 fd00:99:1::12/64, default via fd00:99:1::1
    (switch namespace: br0 joins the four; multicast snooping off, so neighbour discovery is flooded)
"""

from __future__ import annotations

import os

import pytest
from test_layer4 import PACSLB, Appliance, tally  # type: ignore[import-not-found]

from pacslb.engines.nftables.render import Layer4Env, render
from pacslb.model import validate_data
from support.netns import BACKEND_PORT6, CLIENT6, LB_SERVER_SIDE6, PORT, RS6, VIP6, Bed6, layer4_bed6
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root]

BACKEND_PORT = BACKEND_PORT6  # NAT translates the port too


@pytest.fixture
def bed6():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with layer4_bed6() as bed:
        yield bed


def config_data(mode: str, protocol: str = "tcp", **fields) -> dict:
    return {
        "version": 1,
        "virtual_services": [
            {
                "name": "svc6",
                "mode": mode,
                "protocol": protocol,
                "listen": [{"address": VIP6, "port": PORT}],
                "real_servers": [{"name": name, "address": address, "port": BACKEND_PORT} for name, address in RS6.items()],
                **fields,
            }
        ],
    }


def apply(bed: Bed6, data: dict) -> None:
    loaded = validate_data(data)
    assert loaded.ok, [str(p) for p in loaded.problems]
    bed.nft(render(loaded.config, Layer4Env()))


def test_nat_reaches_both_real_servers_and_keeps_the_client_address(bed6: Bed6) -> None:
    apply(bed6, config_data("layer4-nat"))
    names, peers = tally(bed6.client_run("tcp", 20))
    assert names == {"rs1": 10, "rs2": 10}
    assert peers == {CLIENT6}


def test_nat_udp(bed6: Bed6) -> None:
    apply(bed6, config_data("layer4-nat", protocol="udp"))
    names, peers = tally(bed6.client_run("udp", 20))
    assert names == {"rs1": 10, "rs2": 10}
    assert peers == {CLIENT6}


def test_nat_source_ip_persistence_sticks(bed6: Bed6) -> None:
    apply(bed6, config_data("layer4-nat", persistence={"type": "source-ip", "timeout": "5m"}))
    names, _ = tally(bed6.client_run("tcp", 10))
    assert len(names) == 1 and sum(names.values()) == 10


def test_snat_real_servers_see_the_load_balancer(bed6: Bed6) -> None:
    apply(bed6, config_data("layer4-snat"))
    names, peers = tally(bed6.client_run("tcp", 20))
    assert names == {"rs1": 10, "rs2": 10}
    assert peers == {LB_SERVER_SIDE6}


def test_the_appliance_checks_ipv6_real_servers_and_drains_through_the_cli(bed6: Bed6) -> None:
    data = config_data(
        "layer4-nat", health_check={"type": "connect", "interval": "500ms", "timeout": "400ms", "fall": 2, "rise": 1}
    )
    app = Appliance(bed6, data)
    try:
        schedule = lambda: bed6.lab.sh(bed6.lb, "nft list map inet pacslb sched_svc6")  # noqa: E731
        # both in the schedule first: a check that ran before a server listened takes it out until `rise` passes
        wait_until(lambda: "rs1_svc6_rs1" in schedule() and "rs2_svc6_rs2" in schedule(), 30, what="both scheduled")
        names, peers = tally(bed6.client_run("tcp", 10))
        assert names == {"rs1": 5, "rs2": 5} and peers == {CLIENT6}
        bed6.stop_server("rs2")
        wait_until(lambda: "rs2_svc6_rs2" not in schedule(), 30, what="rs2 out of the schedule")
        names, _ = tally(bed6.client_run("tcp", 10))
        assert names == {"rs1": 10}, app.logs()
        bed6.start_server("rs2")
        wait_until(lambda: "rs2_svc6_rs2" in schedule(), 30, what="rs2 back in the schedule")
        done = bed6.lab.run(bed6.lb, [PACSLB, "server", "drain", "svc6", "rs1",
                                      "--state-dir", str(app.dir / "s")], check=False, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        names, _ = tally(bed6.client_run("tcp", 10))
        assert names == {"rs2": 10}
    finally:
        app.close()
