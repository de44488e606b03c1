"""Network-namespace beds for tests and benchmarks: unique names, private addresses only inside them, full cleanup.

    with Lab() as lab:
        lb = lab.ns("lb")                     # pacslb-<pid>-<n>-lb
        lab.veth(lb, "l0", client, "c0")
        lab.sh(lb, "ip addr add 10.99.0.1/24 dev l0")
        proc = lab.popen(rs1, [sys.executable, SERVER, ...])

Everything a Lab creates (namespaces and the processes it started, by PID) is removed on exit, also
after a failure. Never any traffic outside these namespaces.

The layer 4 bed (tests/netns): a client, the load balancer and two real servers on one bridge, each in
its own namespace.

    client  c0 10.99.0.2/24                        (route to VIP: on-link)
    lb      l0 10.99.0.1/24, 10.99.1.1/24, VIP 10.99.0.10/32
    rs1     r0 10.99.1.11/24, default via 10.99.1.1
    rs2     r0 10.99.1.12/24, default via 10.99.1.1
    (switch namespace: br0 joins the four)

    with layer4_bed() as bed: ...             IPv4 (Bed)
    with layer4_bed6() as bed: ...            the same on IPv6, fd00:99::/64 and fd00:99:1::/64 (Bed6)

NAT is one-arm here (both subnets on l0): the real servers reply through the load balancer, their
gateway. For DR, `bed.direct_routing()` puts the VIP on the real servers' lo with arp_ignore/announce
and an on-link route to the client subnet, so that replies go straight to the client.
The real servers and clients are tests/netns/l4_server.py and l4_client.py.

This module needs no pytest (nor the product): bench/ can import it as it is, with tests/ on sys.path
(`from support.netns import Lab`). It needs root, `ip` and `sysctl`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

IP = "ip"
_counter = itertools.count(1)


class Lab:
    def __init__(self) -> None:
        self.tag = f"pacslb-{os.getpid()}-{next(_counter)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ns(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        subprocess.run([IP, "netns", "add", name], check=True, capture_output=True, timeout=30)
        self.namespaces.append(name)
        self.sh(name, "ip link set lo up")
        return name

    def run(self, ns: str, args: list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        result = subprocess.run([IP, "netns", "exec", ns, *args], capture_output=True, text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            raise RuntimeError(f"{ns}: {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def sh(self, ns: str, command: str, check: bool = True) -> str:
        return self.run(ns, shlex.split(command), check=check).stdout

    def popen(self, ns: str, args: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen([IP, "netns", "exec", ns, *args], **kw)
        self.processes.append(proc)
        return proc

    def veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        """A veth pair with one end in each namespace (both brought up)."""
        self.sh(ns_a, f"ip link add {dev_a} type veth peer name {dev_b} netns {ns_b}")
        self.sh(ns_a, f"ip link set {dev_a} up")
        self.sh(ns_b, f"ip link set {dev_b} up")

    def mac(self, ns: str, dev: str) -> str:
        return self.sh(ns, f"cat /sys/class/net/{dev}/address").strip()

    def stop(self, proc: subprocess.Popen, timeout: float = 10) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def close(self) -> None:
        for proc in reversed(self.processes):
            try:
                self.stop(proc)
            except Exception:  # noqa: BLE001 - go on cleaning
                pass
        for name in reversed(self.namespaces):
            subprocess.run([IP, "netns", "del", name], capture_output=True, timeout=30)
        self.namespaces.clear()


# --- the layer 4 bed -----------------------------------------------------------------------------------

SCRIPTS = Path(__file__).resolve().parents[1] / "netns"  # l4_server.py, l4_client.py
PY = sys.executable
VIP = "10.99.0.10"
CLIENT = "10.99.0.2"
LB_CLIENT_SIDE = "10.99.0.1"
LB_SERVER_SIDE = "10.99.1.1"
RS = {"rs1": "10.99.1.11", "rs2": "10.99.1.12"}
PORT = 7000

VIP6 = "fd00:99::10"
CLIENT6 = "fd00:99::2"
LB_SERVER_SIDE6 = "fd00:99:1::1"
RS6 = {"rs1": "fd00:99:1::11", "rs2": "fd00:99:1::12"}
BACKEND_PORT6 = 7443  # NAT translates the port too


@dataclass
class Bed:
    lab: Lab
    client: str
    lb: str
    rs: dict[str, str]  # name -> namespace
    servers: dict[str, subprocess.Popen]

    def start_server(self, name: str, port: int = PORT) -> None:
        address = "0.0.0.0"
        proc = self.lab.popen(
            self.rs[name], [PY, str(SCRIPTS / "l4_server.py"), name, address, str(port)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def stop_server(self, name: str) -> None:
        self.lab.stop(self.servers.pop(name))

    def client_run(self, mode: str, count: int, port: int = PORT) -> list[str]:
        out = self.lab.run(self.client, [PY, str(SCRIPTS / "l4_client.py"), mode, VIP, str(port), str(count)], timeout=120)
        return json.loads(out.stdout)["answers"]

    def hold(self, port: int = PORT) -> subprocess.Popen:
        return self.lab.popen(
            self.client,
            [PY, str(SCRIPTS / "l4_client.py"), "hold", VIP, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

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


@contextlib.contextmanager
def layer4_bed() -> Iterator[Bed]:
    """The IPv4 layer 4 bed, real servers started; everything removed on exit, also after a failure."""
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


class Bed6(Bed):
    def start_server(self, name: str, port: int = BACKEND_PORT6) -> None:
        proc = self.lab.popen(self.rs[name], [PY, str(SCRIPTS / "l4_server.py"), name, "::", str(port)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def client_run(self, mode: str, count: int, port: int = PORT) -> list[str]:
        out = self.lab.run(self.client, [PY, str(SCRIPTS / "l4_client.py"), mode, VIP6, str(port), str(count)], timeout=120)
        return json.loads(out.stdout)["answers"]


@contextlib.contextmanager
def layer4_bed6() -> Iterator[Bed6]:
    """The IPv6 layer 4 bed, real servers started and reachable from the load balancer."""
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
        lab.run(lb, [PY, "-c", reach, str(BACKEND_PORT6), *RS6.values()], timeout=30)
        yield bed
