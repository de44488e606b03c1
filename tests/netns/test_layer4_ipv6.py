"""Layer 4 NAT and SNAT over IPv6 through the real kernel, in network namespaces.

The same drawing as conftest.py, with ULA addresses that exist only inside the namespaces (`nodad`:
usable at once, no duplicate-address detection to wait for):

    client  c0 fd00:99::2/64                          (route to the VIP: on-link)
    lb      l0 fd00:99::1/64, fd00:99:1::1/64, VIP fd00:99::10/128   (IPv6 forwarding on)
    rs1     r0 fd00:99:1::11/64, default via fd00:99:1::1
    rs2     r0 fd00:99:1::12/64, default via fd00:99:1::1
    (switch namespace: br0 joins the four; multicast snooping off, so neighbour discovery is flooded)
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import HERE, PY, Bed, wait_until  # type: ignore[import-not-found]
from netns_support import Lab  # type: ignore[import-not-found]
from test_layer4 import PACSLB, Appliance, tally  # type: ignore[import-not-found]

from pacslb.engines.nftables.render import Layer4Env, render
from pacslb.model import validate_data

pytestmark = [pytest.mark.netns, pytest.mark.root]

VIP6 = "fd00:99::10"
CLIENT6 = "fd00:99::2"
LB_SERVER_SIDE6 = "fd00:99:1::1"
RS6 = {"rs1": "fd00:99:1::11", "rs2": "fd00:99:1::12"}
PORT = 7000
BACKEND_PORT = 7443  # NAT translates the port too


class Bed6(Bed):
    def start_server(self, name: str, port: int = BACKEND_PORT) -> None:
        proc = self.lab.popen(self.rs[name], [PY, str(HERE / "l4_server.py"), name, "::", str(port)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def client_run(self, mode: str, count: int, port: int = PORT) -> list[str]:
        out = self.lab.run(self.client, [PY, str(HERE / "l4_client.py"), mode, VIP6, str(port), str(count)], timeout=120)
        return json.loads(out.stdout)["answers"]


@pytest.fixture
def bed6():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with Lab() as lab:
        sw = lab.ns("sw")
        lab.sh(sw, "ip link add br0 type bridge mcast_snooping 0")
        lab.sh(sw, "ip link set br0 up")
        client, lb = lab.ns("client"), lab.ns("lb")
        rs = {name: lab.ns(name) for name in RS6}
        for port, (ns, dev) in enumerate([(client, "c0"), (lb, "l0"), (rs["rs1"], "r0"), (rs["rs2"], "r0")]):
            lab.veth(sw, f"p{port}", ns, dev)
            lab.sh(sw, f"ip link set p{port} master br0")
        lab.sh(client, f"ip -6 addr add {CLIENT6}/64 dev c0 nodad")
        lab.sh(lb, "sysctl -qw net.ipv6.conf.all.forwarding=1")
        lab.sh(lb, "ip -6 addr add fd00:99::1/64 dev l0 nodad")
        lab.sh(lb, f"ip -6 addr add {LB_SERVER_SIDE6}/64 dev l0 nodad")
        lab.sh(lb, f"ip -6 addr add {VIP6}/128 dev l0 nodad")
        for name, address in RS6.items():
            lab.sh(rs[name], f"ip -6 addr add {address}/64 dev r0 nodad")
            lab.sh(rs[name], f"ip -6 route add default via {LB_SERVER_SIDE6}")
        bed = Bed6(lab, client, lb, rs, {})
        for name in RS6:
            bed.start_server(name)
        # New IPv6 links settle for a moment (link-local DAD, first neighbour discovery): until the load
        # balancer reaches every real server, an appliance's first checks could fail and take one out.
        reach = ("import socket, sys, time\n"
                 "end = time.monotonic() + 20\n"
                 "for address in sys.argv[2:]:\n"
                 "    while True:\n"
                 "        try:\n"
                 "            socket.create_connection((address, int(sys.argv[1])), timeout=0.5).close(); break\n"
                 "        except OSError:\n"
                 "            if time.monotonic() > end: sys.exit(f'{address} unreachable')\n"
                 "            time.sleep(0.05)\n")  # fmt: skip
        lab.run(lb, [PY, "-c", reach, str(BACKEND_PORT), *RS6.values()], timeout=30)
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
