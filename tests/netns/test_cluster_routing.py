"""A cluster node's routing (engines/bird, cluster/announce.py), in network namespaces, with the real engines.
The bed is tests/support/bird_bed.py with its two nodes (shared with bench/cluster_failover.py; three nodes: test_cluster_three_nodes.py):

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
import time

import httpx
import pytest

from pacslb.engines.bird import process as bird_process
from pacslb.paths import StatePaths
from support.appliance import controller_api
from support.bird_bed import HOLD_TIME, NODES, NODES6, PACSLB, ROUTER, ROUTER6, VIP, VIP6, bird_bed
from support.processes import kill_pids
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.e2e, pytest.mark.slow]

SILENT_DEATH_BOUND = 5.0  # seconds: the wait's generous bound; BFD (3 x 100 ms) finds it well within 1 s


def test_nodes_announce_what_they_can_serve_and_bfd_finds_a_silent_death(capsys: pytest.CaptureFixture) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("bird") is None:
        pytest.fail("bird is not installed (make deps: bird2)")
    with bird_bed("pbgp") as bed:
        lab, work = bed.lab, bed.work
        try:
            lb1, lb2 = NODES["lb1"], NODES["lb2"]

            # both nodes announce: one multipath route on the router (IPv4 and IPv6), each node holds the VIPs on lo
            bed.wait_next_hops({lb1, lb2}, "both nodes announce")
            bed.wait_next_hops(set(NODES6.values()), "both nodes announce over IPv6", vip=VIP6)
            assert f"{VIP}/32" in lab.sh(bed.ns["lb1"], "ip -4 addr show dev lo")
            assert f"{VIP6}/128" in lab.sh(bed.ns["lb1"], "ip -6 addr show dev lo")
            wait_until(
                lambda: len([s for s in bed.routing("lb1")["bfd"] if s["state"] == "Up"]) == 2, 30, 0.1, "both BFD sessions"
            )
            routing = bed.routing("lb1")
            assert routing["announced"] == [VIP, VIP6] and routing["withheld"] == {} and routing["drained"] is False
            assert [(s["neighbor"], s["established"]) for s in routing["bgp"]] == [(ROUTER, True), (ROUTER6, True)], routing

            # every real server of lb1 down: lb1 withdraws; back: it announces again
            bed.stop_server("lb1")
            bed.wait_next_hops({lb2}, "lb1's only real server is down")
            assert bed.routing("lb1")["withheld"] == {
                VIP: "web: every real server is down",
                VIP6: "web: every real server is down",
            }
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
            wait_until(
                lambda: f"{VIP} via {lb2}" in monitor_log.read_text(), 30, 0.05, "the router to route around lb1's HAProxy"
            )
            bed.wait_next_hops({lb1, lb2}, "lb1's HAProxy restarted")
            assert "HAProxy died" in (work / "lb1" / "up.log").read_text()

            # lb2's controller killed with SIGKILL: BIRD keeps announcing (fail static); the next controller adopts it, and
            # the router's session with lb2 is never reset
            before = bed.router_protocol("lb2")
            bird2 = bird_process.adopt(bird_process.Files(StatePaths(bed.state("lb2")).bird_dir))
            bed.controllers["lb2"].send_signal(signal.SIGKILL)
            bed.controllers["lb2"].wait(30)
            assert bed.next_hops() == {lb1, lb2}
            bed.start_node("lb2")
            bed.wait_ready("lb2")
            assert bird_process.adopt(bird_process.Files(StatePaths(bed.state("lb2")).bird_dir)) == bird2
            wait_until(lambda: bed.routing("lb2")["announced"] == [VIP, VIP6], 30, 0.1, "lb2's new controller to decide")
            assert bed.router_protocol("lb2") == before and "Established" in before, (before, bed.router_protocol("lb2"))
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
            assert "BFD session down" in bed.router_protocol("lb1"), bed.router_protocol("lb1")
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
