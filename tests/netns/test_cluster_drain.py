"""Draining a cluster node (issue 20): what happens to its established connections, with the real engines.

The bed is tests/support/bird_bed.py with a client: a router running BIRD (BGP + BFD, `merge paths`: one multipath
route over the nodes that announce the VIP), two nodes running `pacslb up` with a cluster section, a client holding
long-lived HTTP/1.1 keep-alive connections through the VIP (tests/netns/held_connections.py: each request answered
with the node's name). Draining lb1 withdraws its route at once, while its HAProxy keeps the connections it has;
`GET /api/v1/cluster/routing` counts them ("established"), so an operator sees when the node is safe to stop.

What survives depends on the router, and this test measures both:

1. As BIRD installs the route (plain multipath, no per-flow state): the drained node's established flows are
   hashed onto lb2, which has no socket for them and resets them: every one of lb1's breaks, every one of lb2's
   lives. lb1's HAProxy never hears of it: its count keeps them (stale) until the client timeout ends them.
2. A router that pins established flows to their next hop (conntrack: the next hop a flow's first packet took is
   kept as its ct mark, and marked packets are routed by a table of their own that the withdraw does not touch):
   every connection lives through the drain, lb1's answered by lb1; when the client closes them, lb1's count
   falls by as many (to the stale ones of step 1). New connections go to lb2 only.

Every process is stopped by its PID and the namespaces removed, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.appliance import controller_api
from support.bird_bed import NODES, VIP, VIP_PORT, Bed, bird_bed
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.e2e, pytest.mark.slow]

HELD = Path(__file__).resolve().parent / "held_connections.py"
COUNT = 40  # both nodes hold some: all 40 on one node has odds of 2e-12
LB1, LB2 = NODES["lb1"], NODES["lb2"]

# the router keeps each flow on the next hop its first packet took (`rt ip nexthop` in the forward hook), as its
# conntrack mark; marked packets are routed by the node's own table (ip rules below), which a withdraw leaves alone
PIN = f"""table ip pin {{
  map node_mark {{ type ipv4_addr : mark; elements = {{ {LB1} : 0x1, {LB2} : 0x2 }} }}
  chain forward {{ type filter hook forward priority 0; policy accept; ct state new ct mark set rt ip nexthop map @node_mark; }}
  chain prerouting {{ type filter hook prerouting priority mangle; policy accept; ct mark != 0 meta mark set ct mark; }}
}}
"""


class Held:
    """The client's connections: opened on start, asked again on `again()`."""

    def __init__(self, bed: Bed) -> None:
        self.proc = bed.lab.popen(bed.ns["cl"], [sys.executable, str(HELD), VIP, str(VIP_PORT), str(COUNT), "90"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.first = self._line()
        assert None not in self.first, self.first
        assert set(self.first) == {"lb1", "lb2"}, f"both nodes hold connections: {self.first}"

    def _line(self) -> list:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the client ended"
        return json.loads(line)

    def again(self) -> list:
        assert self.proc.stdin is not None
        self.proc.stdin.write("again\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the client closes every connection and ends
        self.proc.wait(30)

    def on(self, node: str) -> int:
        return self.first.count(node)


def established(bed: Bed, node: str) -> int:
    held = bed.routing(node)["established"]
    assert held["not_counted"] == [] and list(held["services"]) == ["web"], held
    return held["total"]


def drain(bed: Bed, node: str, drained: bool) -> None:
    answer = controller_api(bed.state(node), "POST", "/cluster/drain", json={"drained": drained}, timeout=10)
    assert answer.status_code == 200 and answer.json()["drained"] is drained, answer.text
    bed.wait_next_hops({LB2} if drained else {LB1, LB2}, f"{node} {'drained' if drained else 'returned'}")


def test_a_drained_node_counts_its_established_connections_and_the_router_decides_whether_they_live(capsys) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("bird", "nft"):
        assert shutil.which(tool), f"{tool} is not installed (make deps)"
    with bird_bed("pdrn", client=True) as bed:
        lab = bed.lab
        try:
            bed.wait_next_hops({LB1, LB2}, "both nodes announce")

            # 1. plain multipath, as BIRD installs it: the drained node's established flows move to lb2 and break
            held = Held(bed)
            wait_until(lambda: established(bed, "lb1") == held.on("lb1"), 10, 0.1, "lb1 to count its connections")
            drain(bed, "lb1", True)
            assert established(bed, "lb1") == held.on("lb1")  # HAProxy keeps them: counted, not hidden
            after = held.again()
            plain = {
                n: sum(1 for before, now in zip(held.first, after, strict=True) if before == n and now == n)
                for n in ("lb1", "lb2")
            }
            assert plain == {"lb1": 0, "lb2": held.on("lb2")}, list(zip(held.first, after, strict=True))
            assert all(now.startswith("error") for before, now in zip(held.first, after, strict=True) if before == "lb1"), after
            stale = established(bed, "lb1")  # lb1 never saw the resets (lb2 sent them): its sockets wait for the timeout
            assert stale == held.on("lb1"), stale
            held.close()
            drain(bed, "lb1", False)

            # 2. the router pins each established flow to its next hop: every connection lives through the drain
            lab.run(bed.ns["rt"], ["nft", "-f", "-"], input=PIN)
            for mark, address in ((1, LB1), (2, LB2)):
                lab.sh(bed.ns["rt"], f"ip route add {VIP}/32 via {address} table {100 + mark}")
                lab.sh(bed.ns["rt"], f"ip rule add fwmark {mark} table {100 + mark}")
            held = Held(bed)
            wait_until(lambda: established(bed, "lb1") == stale + held.on("lb1"), 10, 0.1, "lb1 to count its connections")
            drain(bed, "lb1", True)
            after = held.again()
            assert after == held.first, list(zip(held.first, after, strict=True))  # lb1's answered by lb1, drained but serving
            assert established(bed, "lb1") == stale + held.on("lb1")
            held.close()  # their FINs reach lb1 (pinned): its count falls to what only the client timeout will end
            wait_until(lambda: established(bed, "lb1") == stale, 10, 0.1, "lb1's pinned connections to end")
            with capsys.disabled():
                print(f"\n[cluster drain] plain multipath: {plain['lb1']} of lb1's {stale} connections lived (lb2's "
                      f"{plain['lb2']} all did), lb1 still counted its {stale} as established; flows pinned by the router: "
                      f"all {COUNT} lived, lb1's {held.on('lb1')} answered by lb1 after its withdraw")  # fmt: skip
        except httpx.HTTPError as exc:
            raise AssertionError(f"the controller API did not answer: {exc}") from None
