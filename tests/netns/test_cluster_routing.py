"""A cluster node's routing (engines/bird, cluster/announce.py), in network namespaces, with the real engines.

    sw      br0 joins the three
    rt      r0 10.88.0.1/24, fd00:88::1/64   the upstream router: its own BIRD (AS 65000), BGP + BFD with both
                                             nodes over IPv4 and IPv6, `merge paths` into its kernel tables (ECMP)
    lb1     l0 10.88.0.2/24, fd00:88::2/64   `pacslb up` with a cluster section (AS 65010): HAProxy, BIRD, the VIPs
    lb2     l0 10.88.0.3/24, fd00:88::3/64   10.66.0.10 and fd00:66::10 on lo, its real server on its own loopback

One test walks the story, each step waiting for the router's kernel table (never a timed sleep): both nodes'
routes form one multipath route; lb1's only real server down -> lb1 withdraws, back -> announces again; lb1
drained and returned (POST /api/v1/cluster/drain); lb2's controller killed with SIGKILL -> its BIRD keeps
announcing and the next controller adopts it without resetting the session; lb1's HAProxy killed -> withdrawn (seen by `ip monitor` on the
router) and announced again once the supervisor has restarted it; lb1's silent death (its link dropped, its BIRD
and controller killed with SIGKILL) -> the router's BFD notices and the route loses lb1: the gap is measured and
printed; lb2 stopped with `pacslb stop` withdraws first. Every process is stopped by its PID, the namespaces removed, also on failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from pacslb.engines.bird import process as bird_process
from pacslb.paths import StatePaths
from support.appliance import controller_api
from support.netns import Lab
from support.processes import haproxy_masters, kill_pids, processes_of
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.e2e, pytest.mark.slow]

PACSLB = str(Path(sys.executable).with_name("pacslb"))
HTTP_SERVER = Path(__file__).resolve().parent / "ha_http_server.py"
ROUTER = "10.88.0.1"
NODES = {"lb1": "10.88.0.2", "lb2": "10.88.0.3"}
VIP = "10.66.0.10"
ROUTER6 = "fd00:88::1"
NODES6 = {"lb1": "fd00:88::2", "lb2": "fd00:88::3"}
VIP6 = "fd00:66::10"  # announced over the IPv6 sessions (a session carries its own family)
RS_PORT = 8000
HOLD_TIME = 9  # seconds: what a silent death would take without BFD
SILENT_DEATH_BOUND = 5.0  # seconds: the wait's generous bound; BFD (3 x 100 ms) finds it well within 1 s

ROUTER_CONF = f"""router id {ROUTER};
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
protocol bgp lb1 from node {{ neighbor {NODES["lb1"]} as 65010; ipv4 {{ import all; export none; }}; }}
protocol bgp lb2 from node {{ neighbor {NODES["lb2"]} as 65010; ipv4 {{ import all; export none; }}; }}
protocol bgp lb1v6 from node {{ neighbor {NODES6["lb1"]} as 65010; ipv6 {{ import all; export none; }}; }}
protocol bgp lb2v6 from node {{ neighbor {NODES6["lb2"]} as 65010; ipv6 {{ import all; export none; }}; }}
"""


def node_config(name: str) -> dict:
    return {
        "version": 1,
        "settings": {"threads": 1, "management": {"enabled": False}},
        "virtual_services": [{
            "name": "web", "mode": "layer7-http", "listen": [{"address": VIP, "port": 8080}, {"address": VIP6, "port": 8080}],
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


class Bed:
    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab, self.work = lab, work
        self.ns: dict[str, str] = {}
        self.controllers: dict[str, subprocess.Popen] = {}
        self.servers: dict[str, subprocess.Popen] = {}
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
            shown.append(self.lab.run(self.ns["rt"], [bird_process.CLIENT, "-s", str(self.router_sock), *command.split()],
                                      check=False).stdout)  # fmt: skip
        return "\n".join(shown)

    def routing(self, name: str) -> dict:
        answer = controller_api(self.state(name), "GET", "/cluster/routing", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def start_server(self, name: str) -> None:
        proc = self.lab.popen(self.ns[name], [sys.executable, str(HTTP_SERVER), name, "127.0.0.1", str(RS_PORT)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def stop_server(self, name: str) -> None:
        self.lab.stop(self.servers.pop(name))

    def start_node(self, name: str) -> None:
        config = self.work / name / "pacslb.yaml"
        config.write_text(yaml.safe_dump(node_config(name)))
        log = self.work / name / "up.log"
        with open(log, "wb") as out:
            self.controllers[name] = self.lab.popen(self.ns[name], [PACSLB, "up", "-c", str(config), "--state-dir",
                                                                    str(self.state(name))], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self, name: str) -> None:
        log = self.work / name / "up.log"

        def ready() -> bool:
            assert self.controllers[name].poll() is None, log.read_text()[-4000:]
            return "controller ready" in log.read_text()

        wait_until(ready, 60, 0.1, f"{name}'s appliance")

    def pids(self, name: str) -> list[int]:
        state = self.state(name)
        return [*processes_of(state), *haproxy_masters(state)]

    def close(self) -> None:
        for name in NODES:
            if name in self.ns and self.state(name).exists():
                self.lab.run(self.ns[name], [PACSLB, "stop", "--state-dir", str(self.state(name))], check=False, timeout=90)
        self.lab.close()  # the router's BIRD, the controllers, the real servers and `ip monitor`, by PID; the namespaces
        for name in NODES:
            kill_pids(self.pids(name))  # whatever survived (a killed controller's HAProxy)


def _bird_router(bed: Bed) -> None:
    folder = bed.work / "rt"
    (folder / "bird.conf").write_text(ROUTER_CONF)
    log = open(folder / "bird.log", "wb")
    bed.lab.popen(bed.ns["rt"], [bird_process.DEFAULT_BINARY, "-f", "-c", str(folder / "bird.conf"), "-s", str(bed.router_sock)],
                  stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    log.close()
    wait_until(lambda: bed.router_sock.exists(), 30, 0.05, "the router's BIRD")


def router_protocol(bed: Bed, name: str) -> str:
    done = bed.lab.run(bed.ns["rt"], [bird_process.CLIENT, "-s", str(bed.router_sock), "show", "protocols", name], check=False)
    return done.stdout


def test_nodes_announce_what_they_can_serve_and_bfd_finds_a_silent_death(capsys: pytest.CaptureFixture) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("bird") is None:
        pytest.fail("bird is not installed (make deps: bird2)")
    work = Path(tempfile.mkdtemp(prefix="pbgp", dir="/tmp"))
    lab = Lab()
    bed = Bed(lab, work)
    try:
        sw = lab.ns("sw")
        lab.sh(sw, "ip link add br0 type bridge")
        lab.sh(sw, "ip link set br0 up")
        for i, (name, address) in enumerate([("rt", ROUTER), *NODES.items()]):
            bed.ns[name] = lab.ns(name)
            dev = "r0" if name == "rt" else "l0"
            lab.veth(sw, f"p{i}", bed.ns[name], dev)
            lab.sh(sw, f"ip link set p{i} master br0")
            lab.sh(bed.ns[name], f"ip addr add {address}/24 dev {dev}")
            lab.sh(bed.ns[name], f"ip addr add {ROUTER6 if name == 'rt' else NODES6[name]}/64 dev {dev} nodad")
            (work / name).mkdir(exist_ok=True)
        _bird_router(bed)
        for name in NODES:
            bed.start_server(name)
            bed.start_node(name)
        for name in NODES:
            bed.wait_ready(name)
        lb1, lb2 = NODES["lb1"], NODES["lb2"]

        # both nodes announce: one multipath route on the router (IPv4 and IPv6), each node holds the VIPs on lo
        bed.wait_next_hops({lb1, lb2}, "both nodes announce")
        bed.wait_next_hops(set(NODES6.values()), "both nodes announce over IPv6", vip=VIP6)
        assert f"{VIP}/32" in lab.sh(bed.ns["lb1"], "ip -4 addr show dev lo")
        assert f"{VIP6}/128" in lab.sh(bed.ns["lb1"], "ip -6 addr show dev lo")
        wait_until(lambda: len([s for s in bed.routing("lb1")["bfd"] if s["state"] == "Up"]) == 2, 30, 0.1, "both BFD sessions")
        routing = bed.routing("lb1")
        assert routing["announced"] == [VIP, VIP6] and routing["withheld"] == {} and routing["drained"] is False
        assert [(s["neighbor"], s["established"]) for s in routing["bgp"]] == [(ROUTER, True), (ROUTER6, True)], routing

        # every real server of lb1 down: lb1 withdraws; back: it announces again
        bed.stop_server("lb1")
        bed.wait_next_hops({lb2}, "lb1's only real server is down")
        assert bed.routing("lb1")["withheld"] == {VIP: "web: every real server is down", VIP6: "web: every real server is down"}
        bed.start_server("lb1")
        bed.wait_next_hops({lb1, lb2}, "lb1's real server is back")

        # drain and return, through the controller API (kept in the state directory)
        answer = controller_api(bed.state("lb1"), "POST", "/cluster/drain", json={"drained": True}, timeout=10)
        assert answer.status_code == 200 and answer.json()["announced"] == [], answer.text
        assert answer.json()["withheld"][VIP6] == "drained: this node is drained for maintenance"
        bed.wait_next_hops({lb2}, "lb1 drained")
        bed.wait_next_hops({NODES6["lb2"]}, "lb1 drained", vip=VIP6)
        assert StatePaths(bed.state("lb1")).cluster_drained.exists()
        refused = controller_api(bed.state("lb1"), "POST", "/cluster/drain", json={"drained": "maybe"}, timeout=10)
        assert refused.status_code == 422 and "drained" in refused.text
        answer = controller_api(bed.state("lb1"), "POST", "/cluster/drain", json={"drained": False}, timeout=10)
        assert answer.status_code == 200 and answer.json()["announced"] == [VIP, VIP6], answer.text
        bed.wait_next_hops({lb1, lb2}, "lb1 returned")
        bed.wait_next_hops(set(NODES6.values()), "lb1 returned", vip=VIP6)

        # lb1's HAProxy killed: withdrawn before its supervisor starts it again (the router's kernel saw the route
        # lose lb1), then announced again
        monitor_log = work / "rt" / "monitor.log"
        with open(monitor_log, "wb") as out:
            lab.popen(bed.ns["rt"], ["ip", "-4", "monitor", "route"], stdout=out, stderr=subprocess.STDOUT)

        def probe_seen() -> bool:  # a route of our own, added again until the monitor shows it: then it listens
            lab.sh(bed.ns["rt"], "ip route replace 192.0.2.99/32 dev r0")
            seen = "192.0.2.99" in monitor_log.read_text()
            lab.sh(bed.ns["rt"], "ip route del 192.0.2.99/32 dev r0")
            return seen

        wait_until(probe_seen, 30, 0.05, "ip monitor to listen")
        master = int((bed.state("lb1") / "haproxy" / "haproxy.pid").read_text().split()[0])
        os.kill(master, signal.SIGKILL)
        wait_until(lambda: f"{VIP} via {lb2}" in monitor_log.read_text(), 30, 0.05, "the router to route around lb1's HAProxy")
        bed.wait_next_hops({lb1, lb2}, "lb1's HAProxy restarted")
        assert "HAProxy died" in (work / "lb1" / "up.log").read_text()

        # lb2's controller killed with SIGKILL: BIRD keeps announcing (fail static); the next controller adopts it, and
        # the router's session with lb2 is never reset
        before = router_protocol(bed, "lb2")
        bird2 = bird_process.adopt(bird_process.Files(StatePaths(bed.state("lb2")).bird_dir))
        bed.controllers["lb2"].send_signal(signal.SIGKILL)
        bed.controllers["lb2"].wait(30)
        assert bed.next_hops() == {lb1, lb2}
        bed.start_node("lb2")
        bed.wait_ready("lb2")
        assert bird_process.adopt(bird_process.Files(StatePaths(bed.state("lb2")).bird_dir)) == bird2
        wait_until(lambda: bed.routing("lb2")["announced"] == [VIP, VIP6], 30, 0.1, "lb2's new controller to decide")
        assert router_protocol(bed, "lb2") == before and "Established" in before, (before, router_protocol(bed, "lb2"))
        assert bed.next_hops() == {lb1, lb2}

        # silent death of lb1: its link gone, then its BIRD and controller killed (no Cease can leave): BFD
        bird_pid = bird_process.adopt(bird_process.Files(StatePaths(bed.state("lb1")).bird_dir))
        assert bird_pid is not None
        started = time.monotonic()
        lab.sh(bed.ns["lb1"], "ip link set l0 down")
        kill_pids([bird_pid, bed.controllers["lb1"].pid])
        wait_until(lambda: bed.next_hops() == {lb2}, SILENT_DEATH_BOUND, 0.01, "the router to drop lb1 (BFD)")
        gap = time.monotonic() - started
        assert gap < HOLD_TIME - 3, f"{gap:.3f} s: the hold timer, not BFD"  # 3 s keepalive: hold expiry is >= 6 s away
        assert "BFD session down" in router_protocol(bed, "lb1"), router_protocol(bed, "lb1")
        with capsys.disabled():
            print(f"\n[cluster routing] silent death of a node: the router dropped its route after {gap * 1000:.0f} ms "
                  "(BFD 3 x 100 ms; bound 5 s)")  # fmt: skip
        assert bed.routing("lb2")["announced"] == [VIP, VIP6]

        # `pacslb stop` on lb2: its VIP withdrawn first, then BIRD and HAProxy stopped; the router has no route left
        done = lab.run(bed.ns["lb2"], [PACSLB, "stop", "--state-dir", str(bed.state("lb2"))], check=False, timeout=90)
        assert done.returncode == 0, done.stderr
        bed.wait_next_hops(set(), "lb2 stopped")
        bed.wait_next_hops(set(), "lb2 stopped", vip=VIP6)
        assert "VIP 10.66.0.10 withdrawn: controller stopping" in (work / "lb2" / "up.log").read_text()
    except httpx.HTTPError as exc:
        raise AssertionError(f"the controller API did not answer: {exc}") from None
    finally:
        bed.close()
        shutil.rmtree(work, ignore_errors=True)
