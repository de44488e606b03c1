"""The routed bed of an active-active cluster (issue 20, docs/cluster.md): a router spreads the VIP's flows over
three nodes by ECMP, in network namespaces only (never the host's network). The routes are set by hand (plain
multipath or a resilient next-hop group, which BIRD does not install): the bed of bench/cluster.py's flow stability
and CPU figures. Three nodes announcing over BGP, each running `pacslb up` with its etcd member, are
tests/support/bird_bed.py with `nodes=3`.

    with cluster_bed(workdir) as bed:          # namespaces pacslb-<pid>-<n>-<role> (tag "bench": pacslb-bench-...)
        bed.route_plain(["lb1", "lb2", "lb3"]) # VIP/32 nexthop via lb1 nexthop via lb2 nexthop via lb3
        bed.route_resilient(["lb1", "lb2", "lb3"])   # VIP/32 nhid G, G a resilient group of 128 buckets
        bed.withdraw("lb3")                    # what a BGP withdraw does: lb3 leaves the route (or the group)

                     client  c0 10.97.0.2/24, default via 10.97.0.1
                        |
    router  r0 10.97.0.1/24; r1 10.97.11.1/24, r2 10.97.12.1/24, r3 10.97.13.1/24; r4 10.97.21.1/24, r5 10.97.22.1/24
            forwarding on, fib_multipath_hash_policy=1 (source and destination ports in the hash), VIP/32 by ECMP
         /      |      \\                              \\        \\
    lb1 n0 10.97.11.2  lb2 n0 10.97.12.2  lb3 n0 10.97.13.2   rs1 s0 10.97.21.2   rs2 s0 10.97.22.2
    each node: VIP 10.97.100.10/32 on lo, default via the router,         each: default via the router
    HAProxy with pacslb's rendered configuration

Each node runs HAProxy (`haproxy -db -f`) with the configuration pacslb renders for two services on the VIP:
`pacs` (layer7-tcp, port TCP_PORT) in front of the real servers' echo (tests/netns/cluster_echo.py), and, with
`http=True`, `web` (layer7-http, port HTTP_PORT) in front of nginx on the real servers. Each node's file has
the node-local `cluster:` section naming the node (docs/cluster.md). The echo tells which node carried a
flow: its greeting names the address the connection came from, the node's n0 address.

A node's processes can be put in a cgroup by the caller (`node_preexec`, e.g. bench/lib/cpu_budget.py).
Every process the bed starts dies with the process that built the bed (PR_SET_PDEATHSIG), the flows' client also
after its own lifetime; everything is stopped by its PID, and the namespaces are removed on exit, also after a failure
(support/netns.py's Lab). It needs root, `ip`, `sysctl`, `haproxy` (and `nginx` with http=True).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from support.netns import Lab

SCRIPTS = Path(__file__).resolve().parents[1] / "netns"  # cluster_echo.py, cluster_flows.py
PY = sys.executable

VIP = "10.97.100.10"
CLIENT = "10.97.0.2"
ROUTER_CLIENT_SIDE = "10.97.0.1"
NODES = {"lb1": "10.97.11.2", "lb2": "10.97.12.2", "lb3": "10.97.13.2"}  # n0 of each; the router is .1
RS = {"rs1": "10.97.21.2", "rs2": "10.97.22.2"}  # s0 of each; the router is .1
ROUTER_DEV = {"lb1": "r1", "lb2": "r2", "lb3": "r3", "rs1": "r4", "rs2": "r5"}
ECHO_PORT = 7100  # the real servers' echo
WEB_PORT = 8080  # the real servers' nginx
TCP_PORT = 7000  # the VIP's layer7-tcp service (pacs)
HTTP_PORT = 8000  # the VIP's layer7-http service (web)
NEXTHOP_IDS = {"lb1": 1, "lb2": 2, "lb3": 3}
GROUP_ID = 100
BUCKETS = 128
IDLE_TIMER = 120  # seconds a bucket must be idle before the group may move it to rebalance
LOCAL_AS, ROUTER_AS = 65010, 65000
MAX_CONNECTIONS = 5000  # per node: a bench holds 3,000 flows, all on one node at worst
NODE_OF = {address: name for name, address in NODES.items()}
PR_SET_PDEATHSIG = 1


def bounded_child(then: Callable[[], None] | None = None) -> Callable[[], None]:
    """preexec_fn: the child gets SIGKILL should this process die (it never outlives the bed's owner), then `then`."""

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if then is not None:
            then()

    return preexec


NGINX_CONF = """\
# real server {name}: written by tests/support/cluster_bed.py
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    server {{
        listen {port} reuseport backlog=4096;
        location / {{ return 200 "{name}\\n"; }}
    }}
}}
"""


def node_config(node: str, http: bool = False) -> dict[str, Any]:
    """The pacslb configuration of one node: the VIP's services, and the node-local cluster section."""
    services: list[dict[str, Any]] = [
        {
            "name": "pacs",
            "description": "tests/support/cluster_bed.py: long-lived flows to the real servers' echo",
            "mode": "layer7-tcp",
            "listen": [{"address": VIP, "port": TCP_PORT}],
            "health_check": {"type": "connect", "interval": "1s", "timeout": "1s", "rise": 1, "fall": 3},
            "real_servers": [{"name": n, "address": a, "port": ECHO_PORT} for n, a in RS.items()],
        }
    ]
    if http:
        services.append(
            {
                "name": "web",
                "description": "tests/support/cluster_bed.py: small HTTP requests to nginx",
                "mode": "layer7-http",
                "listen": [{"address": VIP, "port": HTTP_PORT}],
                "health_check": {"type": "http", "path": "/", "interval": "1s", "timeout": "1s", "rise": 1, "fall": 3},
                "real_servers": [{"name": n, "address": a, "port": WEB_PORT} for n, a in RS.items()],
            }
        )
    return {
        "version": 1,
        "settings": {"max_connections": MAX_CONNECTIONS},
        "cluster": {
            "name": "bed",
            "node": node,
            "nodes": [{"name": n, "address": a} for n, a in NODES.items()],
            "bgp": {"local_as": LOCAL_AS, "neighbors": [{"address": ROUTER_CLIENT_SIDE, "remote_as": ROUTER_AS}]},
        },
        "virtual_services": services,
    }


def render_node(node: str, state_dir: Path, http: bool = False) -> str:
    """haproxy.cfg of one node, as pacslb renders it (one thread: a node's CPU is what the bench budgets)."""
    from pacslb.engines.haproxy.render import HAProxyEnv, render
    from pacslb.model import validate_data

    loaded = validate_data(node_config(node, http))
    if not loaded.ok:
        raise RuntimeError(f"{node}: the bed's configuration is invalid: " + "; ".join(str(p) for p in loaded.problems))
    (state_dir / "haproxy").mkdir(parents=True, exist_ok=True)
    return render(loaded.config, HAProxyEnv(state_dir=state_dir, base_dir=state_dir, cpu_count=1))


@dataclass
class ClusterBed:
    lab: Lab
    workdir: Path
    router: str = ""
    client: str = ""
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> namespace
    rs: dict[str, str] = field(default_factory=dict)  # real server name -> namespace
    haproxy: dict[str, subprocess.Popen] = field(default_factory=dict)
    servers: dict[str, subprocess.Popen] = field(default_factory=dict)
    mode: str = ""  # "plain" or "resilient": how the router routes the VIP now
    serving: list[str] = field(default_factory=list)  # the nodes the VIP's route names now, in order

    def sh(self, ns: str, command: str) -> str:
        return self.lab.sh(ns, command)

    # --- the router's route to the VIP: what BGP would install ------------------------------------

    def route_plain(self, nodes: list[str]) -> None:
        """VIP/32 as a plain (hash-threshold) multipath route over `nodes`, in this order."""
        self._clear_route()
        hops = " ".join(f"nexthop via {NODES[n]} dev {ROUTER_DEV[n]}" for n in nodes)
        self.sh(self.router, f"ip route add {VIP}/32 {hops}")
        self.mode, self.serving = "plain", list(nodes)

    def route_resilient(self, nodes: list[str], buckets: int = BUCKETS, idle_timer: int = IDLE_TIMER) -> None:
        """VIP/32 through a resilient next-hop group of `buckets` buckets over `nodes` (a fresh group)."""
        self._clear_route()
        members = "/".join(str(NEXTHOP_IDS[n]) for n in nodes)
        self.sh(self.router, f"ip nexthop add id {GROUP_ID} group {members} type resilient buckets {buckets} "
                             f"idle_timer {idle_timer}")  # fmt: skip
        self.sh(self.router, f"ip route add {VIP}/32 nhid {GROUP_ID}")
        self.mode, self.serving = "resilient", list(nodes)

    def withdraw(self, node: str) -> None:
        """Take `node` out of the VIP's route (plain) or group (resilient), as a BGP withdraw would."""
        if node not in self.serving:
            raise ValueError(f"{node} is not serving (serving: {', '.join(self.serving)})")
        rest = [n for n in self.serving if n != node]
        if not rest:
            raise ValueError(f"{node} is the last node serving: the VIP would have no route")
        if self.mode == "plain":
            hops = " ".join(f"nexthop via {NODES[n]} dev {ROUTER_DEV[n]}" for n in rest)
            self.sh(self.router, f"ip route replace {VIP}/32 {hops}")
        else:  # the group keeps the buckets of the nodes that stay; only the withdrawn node's move
            members = "/".join(str(NEXTHOP_IDS[n]) for n in rest)
            self.sh(self.router, f"ip nexthop replace id {GROUP_ID} group {members} type resilient")
        self.serving = rest

    def route(self) -> str:
        """The router's route to the VIP (and its group, if any), as `ip` shows them."""
        text = self.sh(self.router, f"ip route show {VIP}/32")
        if self.mode == "resilient":
            text += self.sh(self.router, f"ip nexthop show id {GROUP_ID}")
        return text

    def _clear_route(self) -> None:
        self.lab.run(self.router, ["ip", "route", "del", f"{VIP}/32"], check=False)
        self.lab.run(self.router, ["ip", "nexthop", "del", "id", str(GROUP_ID)], check=False)
        self.mode, self.serving = "", []

    # --- the processes ---------------------------------------------------------------------------

    def start_real_servers(self, http: bool = False) -> None:
        for name, ns in self.rs.items():
            proc = self.lab.popen(ns, [PY, str(SCRIPTS / "cluster_echo.py"), name, "0.0.0.0", str(ECHO_PORT)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                                  preexec_fn=bounded_child())  # fmt: skip
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{name}: the echo server did not start")
            self.servers[f"{name}-echo"] = proc
            if http:
                self._start_nginx(name, ns)

    def _start_nginx(self, name: str, ns: str) -> None:
        prefix = self.workdir / f"nginx-{name}"
        prefix.mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(name=name, prefix=prefix, port=WEB_PORT))
        cmd = ["nginx", "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf)]
        self.lab.run(ns, [*cmd, "-t", "-q"])
        self.servers[f"{name}-nginx"] = self.lab.popen(ns, [*cmd, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                       preexec_fn=bounded_child())  # fmt: skip

    def start_nodes(self, http: bool = False, node_preexec: Callable[[str], Callable[[], None]] | None = None) -> None:
        """HAProxy on every node with pacslb's rendered configuration; node_preexec(node) runs in the child before exec."""
        for node, ns in self.nodes.items():
            state = self.workdir / node
            cfg = state / "haproxy.cfg"
            state.mkdir(parents=True, exist_ok=True)
            cfg.write_text(render_node(node, state, http))
            self.lab.run(ns, ["haproxy", "-c", "-q", "-f", str(cfg)])
            with open(state / "haproxy.log", "ab") as log:  # the child has its own copy of the descriptor
                self.haproxy[node] = self.lab.popen(ns, ["haproxy", "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                                    stdout=log, stderr=subprocess.STDOUT,
                                                    preexec_fn=bounded_child(node_preexec(node) if node_preexec else None))  # fmt: skip
        ports = [TCP_PORT, HTTP_PORT] if http else [TCP_PORT]
        for node in self.nodes:
            self.wait_serving(node, ports)

    def wait_serving(self, node: str, ports: list[int], timeout: float = 30.0) -> None:
        """Until HAProxy on `node` listens on `ports` and sees at least one real server of each service up."""
        ns, proc = self.nodes[node], self.haproxy[node]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{node}: haproxy exited ({proc.returncode}): {self.log_tail(node)}")
            listening = self.lab.run(ns, ["ss", "-Hltn"], check=False).stdout
            if all(f"{VIP}:{p} " in listening for p in ports) and self._reaches(ns, ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{node}: not serving {ports} after {timeout:g} s: {self.log_tail(node)}")

    def _reaches(self, ns: str, ports: list[int]) -> bool:
        """A connection to each port from the node itself goes through to a real server (the echo greets)."""
        probe = ("import socket, sys\n"
                 "for port in map(int, sys.argv[2:]):\n"
                 "    with socket.create_connection((sys.argv[1], port), timeout=2) as s:\n"
                 "        s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n' if port != %d else b'hello\\n')\n"
                 "        if not s.recv(64): sys.exit(1)\n") % TCP_PORT  # fmt: skip
        return self.lab.run(ns, [PY, "-c", probe, VIP, *map(str, ports)], check=False).returncode == 0

    def log_tail(self, node: str, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.workdir / node / "haproxy.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    # --- traffic from the client ----------------------------------------------------------------

    def flows(self, count: int, lifetime: float = 600.0) -> "Flows":
        """`count` long-lived flows through the VIP (tests/netns/cluster_flows.py in the client namespace)."""
        proc = self.lab.popen(self.client, [PY, str(SCRIPTS / "cluster_flows.py"), VIP, str(TCP_PORT), str(count),
                                            str(lifetime)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                              preexec_fn=bounded_child())  # fmt: skip
        return Flows(self.lab, proc)


class Flows:
    """The flows a cluster_flows.py process holds: opened, echoed on command, counted per node (by node name)."""

    def __init__(self, lab: Lab, proc: subprocess.Popen) -> None:
        self.lab, self.proc = lab, proc
        self.opened = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"cluster_flows.py ended ({self.proc.poll()}) without an answer")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"cluster_flows.py: {answer['error']}")
        for key in ("nodes", "ok", "broken"):  # the peer address a real server saw -> the node's name
            if key in answer:
                answer[key] = {NODE_OF.get(peer, peer): n for peer, n in sorted(answer[key].items())}
        return answer

    def echo(self) -> dict[str, Any]:
        """One echo on every open flow: {"ok": {node: n}, "broken": {node: n}, "errors": {kind: n}}."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("echo\n")
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.lab.stop(self.proc)

    def __enter__(self) -> "Flows":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def cluster_bed(workdir: Path, *, http: bool = False, tag: str | None = None,
                node_preexec: Callable[[str], Callable[[], None]] | None = None) -> Iterator[ClusterBed]:  # fmt: skip
    """The routed bed, real servers and HAProxy on each node started, no route to the VIP yet (route_plain or
    route_resilient add one); namespaces and processes removed on exit, also after a failure."""
    with Lab() as lab:
        if tag:
            lab.tag = f"pacslb-{tag}-{os.getpid()}-{lab.tag.rsplit('-', 1)[1]}"
        bed = ClusterBed(lab, workdir)
        router = bed.router = lab.ns("router")
        bed.client = lab.ns("client")
        bed.nodes = {name: lab.ns(name) for name in NODES}
        bed.rs = {name: lab.ns(name) for name in RS}
        bed.sh(router, "sysctl -qw net.ipv4.ip_forward=1")
        bed.sh(router, "sysctl -qw net.ipv4.fib_multipath_hash_policy=1")
        lab.veth(router, "r0", bed.client, "c0")
        bed.sh(router, f"ip addr add {ROUTER_CLIENT_SIDE}/24 dev r0")
        bed.sh(bed.client, f"ip addr add {CLIENT}/24 dev c0")
        bed.sh(bed.client, f"ip route add default via {ROUTER_CLIENT_SIDE}")
        bed.sh(bed.client, "sysctl -qw net.ipv4.ip_local_port_range='1024 65000'")  # many short connections
        bed.sh(bed.client, "sysctl -qw net.ipv4.tcp_tw_reuse=1")
        for name, address in [*NODES.items(), *RS.items()]:
            ns, dev, gateway = (bed.nodes | bed.rs)[name], ROUTER_DEV[name], address.rsplit(".", 1)[0] + ".1"
            inner = "n0" if name in NODES else "s0"
            lab.veth(router, dev, ns, inner)
            bed.sh(router, f"ip addr add {gateway}/24 dev {dev}")
            bed.sh(ns, f"ip addr add {address}/24 dev {inner}")
            bed.sh(ns, f"ip route add default via {gateway}")
        for name, ns in bed.nodes.items():
            bed.sh(ns, f"ip addr add {VIP}/32 dev lo")  # routed to the node, never answered in ARP (on lo)
            bed.sh(router, f"ip nexthop add id {NEXTHOP_IDS[name]} via {NODES[name]} dev {ROUTER_DEV[name]}")
        bed.start_real_servers(http)
        bed.start_nodes(http, node_preexec)
        yield bed
