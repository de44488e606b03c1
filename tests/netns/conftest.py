"""Layer 4 test bed: a client, the load balancer and two real servers on one bridge, each in its own namespace.

    client  c0 10.99.0.2/24                        (route to VIP: on-link)
    lb      l0 10.99.0.1/24, 10.99.1.1/24, VIP 10.99.0.10/32
    rs1     r0 10.99.1.11/24, default via 10.99.1.1
    rs2     r0 10.99.1.12/24, default via 10.99.1.1
    (switch namespace: br0 joins the four)

NAT is one-arm here (both subnets on l0): the real servers reply through the load balancer, their
gateway. For DR, `bed.direct_routing()` puts the VIP on the real servers' lo with arp_ignore/announce
and an on-link route to the client subnet, so that replies go straight to the client.
Namespaces are named pacslb-<pid>-<n>-<role> and removed in teardown, also on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netns_support import Lab, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
PY = sys.executable
VIP = "10.99.0.10"
CLIENT = "10.99.0.2"
LB_CLIENT_SIDE = "10.99.0.1"
LB_SERVER_SIDE = "10.99.1.1"
RS = {"rs1": "10.99.1.11", "rs2": "10.99.1.12"}
PORT = 7000


@dataclass
class Bed:
    lab: Lab
    client: str
    lb: str
    rs: dict[str, str]  # name -> namespace
    servers: dict[str, subprocess.Popen]

    def start_server(self, name: str, port: int = PORT) -> None:
        address = "0.0.0.0"
        proc = self.lab.popen(self.rs[name], [PY, str(HERE / "l4_server.py"), name, address, str(port)],
                              stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def stop_server(self, name: str) -> None:
        self.lab.stop(self.servers.pop(name))

    def client_run(self, mode: str, count: int, port: int = PORT) -> list[str]:
        out = self.lab.run(self.client, [PY, str(HERE / "l4_client.py"), mode, VIP, str(port), str(count)], timeout=120)
        return json.loads(out.stdout)["answers"]

    def hold(self, port: int = PORT) -> subprocess.Popen:
        return self.lab.popen(self.client, [PY, str(HERE / "l4_client.py"), "hold", VIP, str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def nft(self, text: str) -> None:
        result = self.lab.run(self.lb, ["nft", "-f", "-"], check=False, input=text)
        assert result.returncode == 0, result.stderr

    def direct_routing(self) -> None:
        for ns in self.rs.values():
            self.lab.sh(ns, f"ip addr add {VIP}/32 dev lo")
            self.lab.sh(ns, "sysctl -qw net.ipv4.conf.all.arp_ignore=1")
            self.lab.sh(ns, "sysctl -qw net.ipv4.conf.all.arp_announce=2")
            self.lab.sh(ns, "ip route add 10.99.0.0/24 dev r0")

    def mac(self, ns: str, dev: str) -> str:
        return self.lab.mac(ns, dev)


@pytest.fixture
def bed():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with Lab() as lab:
        sw = lab.ns("sw")
        lab.sh(sw, "ip link add br0 type bridge")
        lab.sh(sw, "ip link set br0 up")
        client, lb = lab.ns("client"), lab.ns("lb")
        rs = {name: lab.ns(name) for name in RS}
        for port, (ns, dev) in enumerate([(client, "c0"), (lb, "l0"), (rs["rs1"], "r0"), (rs["rs2"], "r0")]):
            lab.veth(sw, f"p{port}", ns, dev)
            lab.sh(sw, f"ip link set p{port} master br0")
        lab.sh(client, "ip addr add 10.99.0.2/24 dev c0")
        lab.sh(lb, "ip addr add 10.99.0.1/24 dev l0")
        lab.sh(lb, "ip addr add 10.99.1.1/24 dev l0")
        lab.sh(lb, f"ip addr add {VIP}/32 dev l0")
        lab.sh(lb, "sysctl -qw net.ipv4.conf.all.send_redirects=0")
        lab.sh(lb, "sysctl -qw net.ipv4.conf.l0.send_redirects=0")
        for name, address in RS.items():
            lab.sh(rs[name], f"ip addr add {address}/24 dev r0")
            lab.sh(rs[name], "ip route add default via 10.99.1.1")
        b = Bed(lab, client, lb, rs, {})
        for name in RS:
            b.start_server(name)
        yield b


__all__ = ["Bed", "wait_until", "VIP", "CLIENT", "RS", "PORT", "LB_SERVER_SIDE"]
