"""HA test bed: two load-balancer nodes running the real appliance, a client and two real servers.

    sw      br0 joins everything (a namespace of its own)
    lb1     l0 10.77.0.2/24   primary    (`pacslb up`: HAProxy, keepalived, peer link)
    lb2     l0 10.77.0.3/24   secondary
    client  c0 10.77.0.100/24, .101, .102 (three sources, for source-IP persistence)
    rs1     r0 10.77.0.11/24  HTTP on 8000, answers "rs1"
    rs2     r0 10.77.0.12/24  HTTP on 8000, answers "rs2"
    VIP     10.77.0.10:8080 (layer7-http, source-IP persistence), floating between lb1 and lb2

Addresses exist only inside these namespaces. Namespaces are named pacslb-<pid>-<n>-<role> (bench:
pacslb-bench-...), removed at the end, also on failure; every process is stopped by its PID.
Used by tests/netns/test_ha.py and bench/ha.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # bench/ha.py puts only tests/netns on sys.path
    sys.path.append(str(HERE.parent))
from pacslb.engines.haproxy.process import children, is_running, read_pidfile  # noqa: E402
from pacslb.engines.keepalived.render import KeepalivedPaths  # noqa: E402
from pacslb.ha.peer_link import ensure_node_certificate  # noqa: E402
from pacslb.paths import StatePaths  # noqa: E402
from support.appliance import PACSLB, controller_api, pacslb  # noqa: E402
from support.netns import Lab  # noqa: E402
from support.processes import kill_pids  # noqa: E402
from support.wait import wait_until  # noqa: E402

PY = sys.executable
VIP = "10.77.0.10"
PORT = 8080
NODES = {"lb1": ("primary", "10.77.0.2"), "lb2": ("secondary", "10.77.0.3")}
CLIENTS = ["10.77.0.100", "10.77.0.101", "10.77.0.102"]
REAL_SERVERS = {"rs1": "10.77.0.11", "rs2": "10.77.0.12"}
RS_PORT = 8000


def config_text(role: str, address: str, peer: str, peer_cert: Path) -> str:
    return f"""version: 1
settings:
  threads: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen:
      - {{address: {VIP}, port: {PORT}}}
    persistence: {{type: source-ip}}
    health_check: {{type: connect, interval: 1s, timeout: 500ms}}
    real_servers:
      - {{name: rs1, address: {REAL_SERVERS["rs1"]}, port: {RS_PORT}}}
      - {{name: rs2, address: {REAL_SERVERS["rs2"]}, port: {RS_PORT}}}
ha:
  role: {role}
  address: {address}
  peer_address: {peer}
  interface: l0
  interface_network: 10.77.0.0/24
  sync:
    peer_certificate: {peer_cert}
    interval: 500ms
"""


@dataclass
class Node:
    name: str  # lb1, lb2
    ns: str
    role: str
    address: str
    state: Path
    config: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.state)

    def api(self, method: str, path: str, timeout: float = 10.0, **kw) -> httpx.Response:
        return controller_api(self.state, method, path, timeout, **kw)

    def ha_status(self) -> dict | None:
        try:
            r = self.api("GET", "/ha", timeout=3)
        except (httpx.HTTPError, OSError):
            return None
        return r.json() if r.status_code == 200 else None

    def vrrp(self) -> str | None:
        s = self.ha_status()
        return s["node"]["vrrp_state"] if s else None

    def pids(self) -> list[int]:
        """Controller, HAProxy master and workers, keepalived and its VRRP child."""
        found = [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []
        master = read_pidfile(self.paths.haproxy_pid)
        if master and is_running(master):
            found += [master, *children(master)]
        ka = read_pidfile(KeepalivedPaths(self.state).pid)
        if ka and is_running(ka):
            found += [ka, *children(ka)]
        return found


@dataclass
class Pair:
    lab: Lab
    nodes: dict[str, Node]
    client: str
    servers: list[subprocess.Popen] = field(default_factory=list)
    workdir: Path = Path("/tmp")

    # --- nodes --------------------------------------------------------------------------------------

    def start(self, name: str, timeout: float = 60.0) -> Node:
        node = self.nodes[name]
        log = open(node.log, "ab")
        node.proc = self.lab.popen(node.ns, pacslb("up", "-c", str(node.config), state_dir=node.state),
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        log.close()

        def ready() -> bool:
            if node.proc.poll() is not None:
                raise AssertionError(f"pacslb up on {name} exited {node.proc.returncode}:\n{node.log.read_text()[-4000:]}")
            return node.vrrp() in ("MASTER", "BACKUP")

        wait_until(ready, timeout, 0.1, f"{name} to run with a VRRP state")
        return node

    def stop(self, name: str, timeout: float = 60.0) -> None:
        """`pacslb stop` (graceful: keepalived sends priority 0 first)."""
        node = self.nodes[name]
        done = subprocess.run(pacslb("stop", state_dir=node.state), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        if node.proc is not None:
            node.proc.wait(timeout)

    def kill(self, name: str) -> None:
        """The node dies: kill -9 its controller, HAProxy and keepalived, and take its link down."""
        node = self.nodes[name]
        self.lab.sh(node.ns, "ip link set l0 down")
        kill_pids(node.pids())
        if node.proc is not None:
            node.proc.wait(30)
        wait_until(lambda: not any(is_running(p) for p in node.pids()), 30, 0.05, f"{name}'s processes to end")

    def revive(self, name: str) -> Node:
        """After `kill`: the floating IP a killed keepalived left behind goes, the link comes back, the appliance starts."""
        node = self.nodes[name]
        self.lab.sh(node.ns, f"ip addr del {VIP}/32 dev l0", check=False)
        self.lab.sh(node.ns, "ip link set l0 up")
        return self.start(name)

    def master(self) -> str | None:
        masters = [n for n, node in self.nodes.items() if node.proc is not None and node.proc.poll() is None
                   and node.vrrp() == "MASTER"]  # fmt: skip
        return masters[0] if len(masters) == 1 else None

    def holders(self) -> list[str]:
        """Nodes whose interface holds the VIP."""
        return [n for n, node in self.nodes.items() if f"{VIP}/32" in self.lab.sh(node.ns, "ip -4 addr show dev l0", check=False)]

    def wait_one_master(self, timeout: float = 30.0) -> str:
        wait_until(lambda: self.master() is not None and len(self.holders()) == 1, timeout, 0.1, "exactly one master")
        master = self.master()
        assert master is not None and self.holders() == [master]
        return master

    def other(self, name: str) -> str:
        return "lb2" if name == "lb1" else "lb1"

    def cut_peer_link(self) -> None:
        """Drop everything between the two nodes (each still reaches the client and the real servers)."""
        for name, node in self.nodes.items():
            peer = self.nodes[self.other(name)].address
            rules = f"table inet hacut {{\n chain peercut {{\n  type filter hook input priority -300;\n  ip saddr {peer} drop\n }}\n}}\n"
            self.lab.run(node.ns, ["nft", "-f", "-"], input=rules)

    def restore_peer_link(self) -> None:
        for node in self.nodes.values():
            self.lab.sh(node.ns, "nft delete table inet hacut", check=False)

    # --- client -------------------------------------------------------------------------------------

    def request(self, source: str = CLIENTS[0]) -> dict:
        out = self.lab.run(self.client, [PY, str(HERE / "ha_client.py"), "once", VIP, str(PORT), source], timeout=30)
        return json.loads(out.stdout)

    def loop(self, stop_file: Path, seconds: float, source: str = CLIENTS[0]) -> subprocess.Popen:
        return self.lab.popen(self.client, [PY, str(HERE / "ha_client.py"), "loop", VIP, str(PORT), source,
                                            str(stop_file), str(seconds)], stdout=subprocess.PIPE, text=True)  # fmt: skip

    def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                subprocess.run(pacslb("stop", state_dir=node.state), capture_output=True, timeout=60)
            kill_pids(node.pids())  # whatever survived (a failed start, a killed controller's engines)
        self.lab.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a `timeout` around the test run) ends the run like Ctrl-C, so that teardown still runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_pair(tag: str = "") -> Pair:
    """The whole bed, both appliances running; the caller closes it (Pair.close) in a finally."""
    lab = Lab()
    if tag:
        lab.tag = lab.tag.replace("pacslb-", f"pacslb-{tag}-", 1)
    pair: Pair | None = None
    try:
        sw = lab.ns("sw")
        lab.sh(sw, "ip link add br0 type bridge")
        lab.sh(sw, "ip link set br0 up")
        names = ["client", "lb1", "lb2", "rs1", "rs2"]
        spaces = {n: lab.ns(n) for n in names}
        for i, n in enumerate(names):
            dev = {"client": "c0", "lb1": "l0", "lb2": "l0"}.get(n, "r0")
            lab.veth(sw, f"p{i}", spaces[n], dev)
            lab.sh(sw, f"ip link set p{i} master br0")
        for source in CLIENTS:
            lab.sh(spaces["client"], f"ip addr add {source}/24 dev c0")
        for name, address in REAL_SERVERS.items():
            lab.sh(spaces[name], f"ip addr add {address}/24 dev r0")
        workdir = Path(tempfile.mkdtemp(prefix="pha", dir="/tmp"))
        nodes: dict[str, Node] = {}
        for name, (role, address) in NODES.items():
            lab.sh(spaces[name], f"ip addr add {address}/24 dev l0")
            state = workdir / name
            state.mkdir()
            ensure_node_certificate(state, f"pacslb HA {role}", [address])
            nodes[name] = Node(name, spaces[name], role, address, state, workdir / f"{name}.yaml", workdir / f"{name}.log")
        for name, node in nodes.items():
            peer = nodes["lb2" if name == "lb1" else "lb1"]
            peer_cert = workdir / f"{name}-peer.pem"
            shutil.copy(peer.state / "ha" / "node.pem", peer_cert)
            node.config.write_text(config_text(node.role, node.address, peer.address, peer_cert))
        pair = Pair(lab, nodes, spaces["client"], workdir=workdir)
        for name, _address in REAL_SERVERS.items():
            proc = lab.popen(spaces[name], [PY, str(HERE / "ha_http_server.py"), name, "0.0.0.0", str(RS_PORT)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            pair.servers.append(proc)
        pair.start("lb1")
        pair.start("lb2")
        pair.wait_one_master()
        wait_until(lambda: pair.request()["ok"], 30, 0.2, "the VIP to answer")
        return pair
    except BaseException:
        if pair is not None:
            pair.close()
        else:
            lab.close()
        raise


def gaps(records: list, windows: list[tuple[float, float]]) -> tuple[list[float], list[list]]:
    """Per failover window (from the trigger to a little after the backup took over), the longest time
    without an answer in it; and the failed requests outside every window (not in flight during any).

    A failover's gap: from the last answer completed before its first failure to the first answer completed
    after its last failure; with no failure, the longest pause between two answers in the window.
    """
    # a request belongs to a failover when it was in flight during the window (started before, failed in it)
    outside = [r for r in records if not r[2] and not any(r[1] >= start and r[0] <= end for start, end in windows)]
    found = []
    for start, end in windows:
        inside = [r for r in records if start - 0.5 <= r[1] <= end + 1.0]
        ok_ends = [r[1] for r in inside if r[2]]
        failed = [r for r in inside if not r[2] and r[1] >= start and r[0] <= end]
        if failed:
            before = [e for e in ok_ends if e <= failed[0][0]]
            after = [e for e in ok_ends if e >= failed[-1][1]]
            first = before[-1] if before else failed[0][0]
            last = after[0] if after else failed[-1][1]
            found.append(last - first)
        else:
            found.append(max((b - a for a, b in zip(ok_ends, ok_ends[1:], strict=False)), default=0.0))
    return found, outside


def describe(records: list, windows: list[tuple[float, float]], failures: list[list]) -> str:
    """Where failed requests fall relative to the failover windows (for a failing assertion)."""
    lines = []
    for r in failures[:10]:
        nearest = min(windows, key=lambda w: abs(r[0] - w[0]))
        lines.append(f"{r[3]} at {r[0] - nearest[0]:+.3f}s from a trigger (window {nearest[1] - nearest[0]:.3f}s)")
    return "; ".join(lines)


__all__ = ["Pair", "build_pair", "gaps", "describe", "sigterm_as_interrupt", "wait_until", "PACSLB", "VIP", "PORT", "CLIENTS"]
