"""A BGP bed with the real BIRD and etcd engines, in network namespaces: an upstream router running its own BIRD
and two or three nodes running `pacslb up` with a cluster section.

    sw      br0 joins the router, the nodes (and, with three nodes, the real servers)
    rt      r0 10.88.0.1/24, fd00:88::1/64   the upstream router: its own BIRD (AS 65000), BGP + BFD with every
                                             node over IPv4 and IPv6, `merge paths` into its kernel tables (ECMP);
                                             with a client: k0 10.77.0.1/24, forwarding, fib_multipath_hash_policy=1
    lb1     l0 10.88.0.2/24, fd00:88::2/64   `pacslb up` with a cluster section (AS 65010): HAProxy, BIRD, the VIPs
    lb2     l0 10.88.0.3/24, fd00:88::3/64   10.66.0.10 and fd00:66::10 on lo, etcd on l0
    lb3     l0 10.88.0.4/24, fd00:88::4/64   (only with `nodes=3`)
    rs1     s0 10.88.0.21/24                 (only with `nodes=3`) a real server of every node
    rs2     s0 10.88.0.22/24                 (only with `nodes=3`)
    cl      k0 10.77.0.2/24, default via the router (only with `client=True`)

Two nodes (tests/netns/test_cluster_routing.py, test_cluster_drain.py, bench/cluster_failover.py): lb1 runs the
cluster's only etcd member (lb2 is a client of it), and each node has its own real server on its own loopback, so
that one node's real server can go down alone. Three nodes (tests/netns/test_cluster_three_nodes.py), the
issue's bed: each node runs its etcd member in its own namespace, listening on its l0 address (three members,
lease 3 s), and both real servers, in namespaces of their own, serve every node.

Every real server (tests/netns/ha_http_server.py) answers with the name of the node that took the connection (its
own node's name; a shared one finds it by the connection's source address), so a client sees which node carried
it. Every wait is on a condition (the router's kernel table, the controller's log), never a timed sleep.
`Bed.close()` stops every process by its PID and removes the namespaces, also after a failure.
This module imports no pytest: bench/ uses it with tests/ on sys.path.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from pacslb.engines.bird import process as bird_process
from pacslb.paths import StatePaths
from support.appliance import controller_api
from support.netns import Lab
from support.processes import haproxy_masters, kill_pids, processes_of
from support.wait import wait_until

PACSLB = str(Path(sys.executable).with_name("pacslb"))
HTTP_SERVER = Path(__file__).resolve().parents[1] / "netns" / "ha_http_server.py"
ROUTER = "10.88.0.1"
NODES = {"lb1": "10.88.0.2", "lb2": "10.88.0.3"}  # the two-node bed
VIP = "10.66.0.10"
ROUTER6 = "fd00:88::1"
NODES6 = {"lb1": "fd00:88::2", "lb2": "fd00:88::3"}
NODES3 = {**NODES, "lb3": "10.88.0.4"}  # the three-node bed
NODES3_6 = {**NODES6, "lb3": "fd00:88::4"}
RS = {"rs1": "10.88.0.21", "rs2": "10.88.0.22"}  # the three-node bed's real servers
ETCD_LEASE = "3s"  # the three-node bed: a partitioned node's lease runs out (and it withdraws) sooner than by default
VIP6 = "fd00:66::10"  # announced over the IPv6 sessions (a session carries its own family)
VIP_PORT = 8080
RS_PORT = 8000
CLIENT_NET = "10.77.0.0/24"
ROUTER_CLIENT_SIDE = "10.77.0.1"
CLIENT = "10.77.0.2"
HOLD_TIME = 9  # seconds: what a silent death would take without BFD
PARTITION = "bed_partition"  # the nft table that cuts a node off from the others (Bed.partition)


def router_conf(nodes: dict[str, str], nodes6: dict[str, str]) -> str:
    """The router's bird.conf: one IPv4 and one IPv6 BGP session (with BFD) per node, multipath into the kernel."""
    sessions = [
        f"protocol bgp {n} from node {{ neighbor {a} as 65010; ipv4 {{ import all; export none; }}; }}" for n, a in nodes.items()
    ]
    sessions += [f"protocol bgp {n}v6 from node {{ neighbor {a} as 65010; ipv6 {{ import all; export none; }}; }}"
                 for n, a in nodes6.items()]  # fmt: skip
    return ROUTER_HEAD + "\n".join(sessions) + "\n"


ROUTER_HEAD = f"""router id {ROUTER};
log stderr all;
protocol device {{ scan time 10; }}
protocol bfd {{ interface "*" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}
protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}
protocol kernel {{ ipv6 {{ import none; export all; }}; merge paths on; }}
template bgp node {{
  local as 65000;
  hold time {HOLD_TIME};
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  bfd on;
}}
"""
ROUTER_CONF = router_conf(NODES, NODES6)  # the two-node bed's


def node_config(name: str, nodes: dict[str, str] = NODES) -> dict:
    """The configuration of node `name` of the bed of `nodes`: one layer7-http service on both VIPs; with two nodes
    its real server on its own loopback and lb1 the only etcd member, with three both real servers (RS) and three
    etcd members."""
    config = {
        "version": 1,
        # http_request also bounds an idle keep-alive connection: long enough for one to live through a drain
        "settings": {"threads": 1, "management": {"enabled": False}, "timeouts": {"http_request": "60s"}},
        "virtual_services": [{
            "name": "web", "mode": "layer7-http", "listen": [{"address": VIP, "port": VIP_PORT}, {"address": VIP6, "port": VIP_PORT}],
            "health_check": {"type": "connect", "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1},
            "real_servers": [{"name": "rs1", "address": "127.0.0.1", "port": RS_PORT}],
        }],
        "cluster": {
            "name": "bed", "node": name,
            "nodes": [{"name": "lb1", "address": NODES["lb1"]}, {"name": "lb2", "address": NODES["lb2"], "etcd_member": False}],
            "bgp": {"local_as": 65010, "neighbors": [{"address": ROUTER, "remote_as": 65000}, {"address": ROUTER6, "remote_as": 65000}],
                    "bfd": {"interval": "100ms", "multiplier": 3}},
        },
    }  # fmt: skip
    if len(nodes) == 3:
        config["virtual_services"][0]["real_servers"] = [{"name": n, "address": a, "port": RS_PORT} for n, a in RS.items()]
        config["cluster"]["nodes"] = [{"name": n, "address": a} for n, a in nodes.items()]
        config["cluster"]["etcd"] = {"lease": ETCD_LEASE}
    return config


class Bed:
    """The namespaces, the router's BIRD and the nodes' controllers; see the module's docstring."""

    def __init__(self, lab: Lab, work: Path, nodes: int = 2) -> None:
        self.lab, self.work = lab, work
        self.nodes, self.nodes6 = (NODES3, NODES3_6) if nodes == 3 else (NODES, NODES6)  # name -> l0 address
        self.ns: dict[str, str] = {}
        self.controllers: dict[str, subprocess.Popen] = {}
        self.servers: dict[str, subprocess.Popen] = {}
        self.readies: dict[str, int] = {}  # "controller ready" lines in a node's log before its latest start
        self.router_sock = work / "rt" / "bird.ctl"

    def state(self, name: str) -> Path:
        return self.work / name / "s"

    def next_hops(self, vip: str = VIP) -> set[str]:
        """The router's kernel route to the VIP: the node addresses it sends the VIP's flows to."""
        shown = self.lab.sh(self.ns["rt"], f"ip -{6 if ':' in vip else 4} route show {vip}", check=False)
        return {word for line in shown.splitlines() for i, word in enumerate(line.split()) if i and line.split()[i - 1] == "via"}

    def wait_next_hops(self, wanted: set[str], what: str, timeout: float = 30, vip: str = VIP) -> None:
        what = f"the router to route {vip} to {sorted(wanted)} ({what})"
        try:
            wait_until(lambda: self.next_hops(vip) == wanted, timeout, 0.05, what)
        except AssertionError as exc:  # WaitTimeout: say what the router knows
            raise AssertionError(f"{exc}\n{self.router_state()}") from None

    def router_state(self) -> str:
        shown = [
            self.lab.sh(self.ns["rt"], "ip route show", check=False),
            self.lab.sh(self.ns["rt"], "ip -6 route show", check=False),
        ]
        for command in ("show protocols all", "show route all", "show bfd sessions"):
            shown.append(self.router_cli(command))
        return "\n".join(shown)

    def router_cli(self, command: str) -> str:
        """What the router's BIRD answers to `command` (birdc)."""
        done = self.lab.run(self.ns["rt"], [bird_process.CLIENT, "-s", str(self.router_sock), *command.split()], check=False)
        return done.stdout

    def router_protocol(self, name: str) -> str:
        return self.router_cli(f"show protocols {name}")

    def routing(self, name: str) -> dict:
        answer = controller_api(self.state(name), "GET", "/cluster/routing", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def start_server(self, name: str) -> None:
        """A node's own real server on its loopback (two nodes), or real server `name` of RS (three nodes)."""
        if name in RS:
            peers = ",".join(f"{address}={node}" for node, address in self.nodes.items())
            args = [sys.executable, str(HTTP_SERVER), name, RS[name], str(RS_PORT), peers]
        else:
            args = [sys.executable, str(HTTP_SERVER), name, "127.0.0.1", str(RS_PORT)]
        proc = self.lab.popen(self.ns[name], args, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def stop_server(self, name: str) -> None:
        self.lab.stop(self.servers.pop(name))

    def start_node(self, name: str) -> None:
        config = self.work / name / "pacslb.yaml"
        config.write_text(yaml.safe_dump(node_config(name, self.nodes)))
        log = self.work / name / "up.log"
        self.readies[name] = log.read_text().count("controller ready") if log.exists() else 0
        with open(log, "ab") as out:  # appended: a node started again after a death keeps its earlier log
            self.controllers[name] = self.lab.popen(self.ns[name], [PACSLB, "up", "-c", str(config), "--state-dir",
                                                                    str(self.state(name))], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        log = self.work / name / "up.log"

        def ready() -> bool:
            assert self.controllers[name].poll() is None, log.read_text()[-4000:]
            return log.read_text().count("controller ready") > self.readies[name]

        try:
            wait_until(ready, timeout, 0.1, f"{name}'s appliance")
        except AssertionError as exc:  # WaitTimeout: say what the controller said
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None

    def pids(self, name: str) -> list[int]:
        state = self.state(name)
        return [*processes_of(state), *haproxy_masters(state)]

    def bird_pid(self, name: str) -> int | None:
        return bird_process.adopt(bird_process.Files(StatePaths(self.state(name)).bird_dir))

    def silent_death(self, name: str) -> tuple[float, float]:
        """Node `name` dies silently: its link dropped first (no Cease, no withdraw can leave), then its controller,
        BIRD and HAProxy killed with SIGKILL. When (CLOCK_MONOTONIC) the link-down command started and ended."""
        pids = [pid for pid in (self.bird_pid(name), self.controllers[name].pid) if pid is not None]
        pids += [pid for pid in self.pids(name) if pid not in pids]  # found before the death: the kill follows at once
        started = time.monotonic()
        self.lab.sh(self.ns[name], "ip link set l0 down")
        down = time.monotonic()
        kill_pids(pids)
        self.controllers[name].wait(30)
        return started, down

    def revive(self, name: str, timeout: float = 60) -> None:
        """Node `name` back after a silent death: its link up, `pacslb up` again on the same state directory,
        until the router routes the VIP to it again."""
        wait_until(lambda: not self.pids(name), 30, 0.05, f"{name}'s processes to be gone")
        self.lab.sh(self.ns[name], "ip link set l0 up")
        if "cl" in self.ns:  # the link's routes went down with it
            self.lab.sh(self.ns[name], f"ip route replace {CLIENT_NET} via {ROUTER}")
        self.start_node(name)
        self.wait_ready(name, timeout)
        self.wait_next_hops(set(self.nodes.values()), f"{name} is back", timeout)

    def cluster(self, name: str) -> dict:
        """Node `name`'s view of the cluster: GET /api/v1/cluster of its controller (`pacslb cluster status --json`)."""
        answer = controller_api(self.state(name), "GET", "/cluster", timeout=20)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def partition(self, name: str) -> None:
        """Cut node `name` off from the other nodes (nft drop rules in its namespace for their addresses, both ways):
        its etcd member and controller lose the others; the router, BGP, the client and the real servers stay."""
        others = ", ".join(a for n, a in self.nodes.items() if n != name)
        others6 = ", ".join(a for n, a in self.nodes6.items() if n != name)
        rules = (f"table inet {PARTITION} {{\n"
                 f"  chain input {{ type filter hook input priority -10; ip saddr {{ {others} }} drop; ip6 saddr {{ {others6} }} drop; }}\n"
                 f"  chain output {{ type filter hook output priority -10; ip daddr {{ {others} }} drop; ip6 daddr {{ {others6} }} drop; }}\n"
                 "}\n")  # fmt: skip
        self.lab.run(self.ns[name], ["nft", "-f", "-"], input=rules)

    def heal(self, name: str) -> None:
        """Node `name` reaches the other nodes again (the partition's table deleted)."""
        self.lab.sh(self.ns[name], f"nft delete table inet {PARTITION}")

    def close(self) -> None:
        for name in self.nodes:
            if name in self.ns and self.state(name).exists():
                self.lab.run(self.ns[name], [PACSLB, "stop", "--state-dir", str(self.state(name))], check=False, timeout=90)
        self.lab.close()  # the router's BIRD, the controllers, the real servers and `ip monitor`, by PID; the namespaces
        for name in self.nodes:
            kill_pids(self.pids(name))  # whatever survived (a killed controller's HAProxy)


def build(lab: Lab, work: Path, client: bool = False, nodes: int = 2) -> Bed:
    """The namespaces and their links, the router's BIRD, the real servers and every node's `pacslb up` (2 or 3
    nodes); waits until every controller is ready (not for the routes: the caller says what it waits for)."""
    assert nodes in (2, 3), "the bed has two or three nodes"
    bed = Bed(lab, work, nodes)
    try:
        _build(bed, client)
    except BaseException:
        bed.close()
        raise
    return bed


@contextlib.contextmanager
def bird_bed(prefix: str, client: bool = False, nodes: int = 2) -> Iterator[Bed]:
    """A bed built (see build) in a fresh Lab and working folder /tmp/PREFIX...; on the way out, also after a
    failure, every process is stopped by its PID, the namespaces removed and the folder deleted."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: HAProxy's and BIRD's Unix sockets live in it
    lab = Lab()
    bed = None
    try:
        bed = build(lab, work, client, nodes)
        yield bed
    finally:
        if bed is not None:
            bed.close()
        else:
            lab.close()
        shutil.rmtree(work, ignore_errors=True)


def _build(bed: Bed, client: bool) -> None:
    lab, work = bed.lab, bed.work
    sw = lab.ns("sw")
    lab.sh(sw, "ip link add br0 type bridge")
    lab.sh(sw, "ip link set br0 up")
    shared_servers = RS if len(bed.nodes) == 3 else {}
    for i, (name, address) in enumerate([("rt", ROUTER), *bed.nodes.items(), *shared_servers.items()]):
        bed.ns[name] = lab.ns(name)
        dev = "r0" if name == "rt" else "s0" if name in RS else "l0"
        lab.veth(sw, f"p{i}", bed.ns[name], dev)
        lab.sh(sw, f"ip link set p{i} master br0")
        lab.sh(bed.ns[name], f"ip addr add {address}/24 dev {dev}")
        if name not in RS:
            lab.sh(bed.ns[name], f"ip addr add {ROUTER6 if name == 'rt' else bed.nodes6[name]}/64 dev {dev} nodad")
        (work / name).mkdir(exist_ok=True)
    if client:
        _client_side(bed)
    _bird_router(bed)
    for name in shared_servers:
        bed.start_server(name)
    for name in bed.nodes:
        if not shared_servers:
            bed.start_server(name)
        bed.start_node(name)
    for name in bed.nodes:
        bed.wait_ready(name, timeout=120 if shared_servers else 60)  # three etcd members must find each other first


def _client_side(bed: Bed) -> None:
    """A client namespace on a link of its own to the router, which forwards to the VIP's next hops hashing on
    the layer 4 header (fib_multipath_hash_policy=1: new connections spread over the nodes); the nodes' way back."""
    lab = bed.lab
    bed.ns["cl"] = lab.ns("cl")
    lab.veth(bed.ns["rt"], "k0", bed.ns["cl"], "k0")
    lab.sh(bed.ns["rt"], f"ip addr add {ROUTER_CLIENT_SIDE}/24 dev k0")
    lab.sh(bed.ns["cl"], f"ip addr add {CLIENT}/24 dev k0")
    lab.sh(bed.ns["cl"], f"ip route add default via {ROUTER_CLIENT_SIDE}")
    lab.sh(bed.ns["rt"], "sysctl -qw net.ipv4.ip_forward=1")
    lab.sh(bed.ns["rt"], "sysctl -qw net.ipv4.fib_multipath_hash_policy=1")
    for name in bed.nodes:
        lab.sh(bed.ns[name], f"ip route add {CLIENT_NET} via {ROUTER}")


def _bird_router(bed: Bed) -> None:
    folder = bed.work / "rt"
    (folder / "bird.conf").write_text(router_conf(bed.nodes, bed.nodes6))
    with open(folder / "bird.log", "wb") as log:
        bed.lab.popen(bed.ns["rt"], [bird_process.DEFAULT_BINARY, "-f", "-c", str(folder / "bird.conf"), "-s", str(bed.router_sock)],
                      stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    wait_until(lambda: bed.router_sock.exists(), 30, 0.05, "the router's BIRD")
