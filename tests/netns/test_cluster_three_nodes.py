"""Three active nodes behind a BGP router, with the real engines (issue 20's test bed): tests/support/bird_bed.py
with `nodes=3` and a client:

    rt      the upstream router: its own BIRD (AS 65000), BGP + BFD with every node, `merge paths` (one ECMP
            route per VIP), forwarding with fib_multipath_hash_policy=1 (ports in the hash); k0 to the client
    lb1..3  `pacslb up` with a cluster section: HAProxy, BIRD, its etcd member on its l0 address (three members)
    rs1 rs2 the real servers of every node, each in its own namespace; each answers with the name of the node
            whose HAProxy made the connection
    cl      the client

One bed for the module (started once; the tests run in order, each waiting on conditions, never a timed sleep):
3,000 new connections spread over the three nodes; a change made through lb1's controller runs on all three; lb3
cut off from lb1 and lb2 (nft drop rules in lb3's namespace only: the router, BGP, the client and the real
servers untouched) loses etcd's quorum and withdraws its VIPs while lb1 and lb2 keep announcing, and announces
again once the partition heals. Every process is stopped by its PID and the namespaces removed, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from support.appliance import Appliance, controller_api
from support.bird_bed import NODES3, NODES3_6, VIP, VIP6, VIP_PORT, Bed, bird_bed
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.e2e, pytest.mark.slow]

CLIENT_SCRIPT = Path(__file__).resolve().parent / "connections_by_node.py"
CONNECTIONS = 3000
AT_ONCE = 50  # connections open at a time: the client's own pace, not a flood
SHARE = (0.20, 0.47)  # each node's share of the connections: a third, give or take what hashing 3,000 flows does
PARTITION_BOUND = 30.0  # seconds for lb3 to withdraw: its lease (3 s) without quorum, then a 1 s probe of the others


@pytest.fixture(scope="module")
def bed():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("bird", "etcd", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (make deps)")
    started = time.monotonic()
    with bird_bed("p3n", client=True, nodes=3) as made:
        made.wait_next_hops(set(NODES3.values()), "all three nodes announce", timeout=60)
        print(f"\n[three nodes] bed up, every node announcing, after {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield made


def connections(bed: Bed, count: int) -> dict:
    """`count` new connections from the client to the VIP: {"nodes": {node: n}, "failed": n, "errors": {...}, ...}."""
    done = bed.lab.run(bed.ns["cl"], [sys.executable, str(CLIENT_SCRIPT), VIP, str(VIP_PORT), str(count), str(AT_ONCE), "5"],
                       check=False, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def on_revision(bed: Bed, revision: int) -> dict[str, dict]:
    """Each node's own view of the cluster, when every view says every node runs `revision` (else an empty dict)."""
    views = {name: bed.cluster(name) for name in NODES3}
    for view in views.values():
        if view["latest_revision"] != revision or {n["name"]: n["revision"] for n in view["nodes"]} != dict.fromkeys(
            NODES3, revision
        ):
            return {}
    return views


def test_all_three_nodes_carry_traffic(bed: Bed, capsys: pytest.CaptureFixture) -> None:
    result = connections(bed, CONNECTIONS)
    assert result["failed"] == 0, result
    counts = result["nodes"]
    assert set(counts) == set(NODES3), counts
    for node, count in counts.items():
        assert SHARE[0] * CONNECTIONS <= count <= SHARE[1] * CONNECTIONS, f"{node} took {count} of {CONNECTIONS}: {counts}"
    with capsys.disabled():
        shares = ", ".join(f"{n} {counts[n]} ({counts[n] / CONNECTIONS:.1%})" for n in sorted(counts))
        print(f"\n[three nodes] {CONNECTIONS} connections in {result['seconds']:.1f} s: {shares}")


def test_a_change_on_one_node_reaches_all_three(bed: Bed) -> None:
    views: dict[str, dict] = {}

    def settled() -> bool:  # every node on the same revision, whichever the first one was
        nonlocal views
        latest = bed.cluster("lb1")["latest_revision"]
        views = on_revision(bed, latest) if latest else {}
        return bool(views)

    wait_until(settled, 60, 0.2, "every node to run the cluster's latest revision")
    before = views["lb1"]["latest_revision"]
    for name, view in views.items():
        assert view["node"] == name and view["etcd"]["reachable"], view
        assert all(n["online"] and n["healthy"] for n in view["nodes"]), view
        # its own etcd member, in its own namespace, on its l0 address (the default client port)
        assert f"{NODES3[name]}:2379 " in bed.lab.sh(bed.ns[name], "ss -Hltn"), name

    answer = controller_api(bed.state("lb1"), "POST", "/virtual-services/web/real-servers/rs1/weight", json={"weight": 7},
                            timeout=60)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
    wait_until(lambda: on_revision(bed, before + 1), 30, 0.2, f"every node to run cluster revision {before + 1}")
    for name in NODES3:  # each applied it in its own transaction: its HAProxy has the new weight
        status = controller_api(bed.state(name), "GET", "/status", timeout=20).json()
        assert Appliance.server(status, "web", "rs1")["weight"] == 7, (name, Appliance.server(status, "web", "rs1"))

    def sessions_up() -> bool:  # every node's member key says its routers hear it: BGP (v4 and v6) and BFD up
        nodes = bed.cluster("lb2")["nodes"]
        return all(n["sessions"] and n["sessions"]["bgp"] and all(s["established"] for s in n["sessions"]["bgp"])
                   and n["sessions"]["bfd"] and all(s["state"] == "Up" for s in n["sessions"]["bfd"]) for n in nodes)  # fmt: skip

    wait_until(sessions_up, 30, 0.2, "every node's BGP and BFD sessions in the cluster status of another node")


def test_a_partitioned_node_withdraws_and_announces_again_once_healed(bed: Bed, capsys: pytest.CaptureFixture) -> None:
    lb1, lb2, lb3 = NODES3.values()
    bed.wait_next_hops({lb1, lb2, lb3}, "all three announce before the partition")
    bed.partition("lb3")
    healed = False
    try:
        cut = time.monotonic()
        bed.wait_next_hops({lb1, lb2}, "lb3 is cut off from lb1 and lb2", timeout=PARTITION_BOUND)
        withdrawn = time.monotonic() - cut

        def cut_off() -> bool:  # lb3 cannot read etcd (no quorum), the others see it gone (its lease ran out)
            others = {n["name"]: n["online"] for n in bed.cluster("lb1")["nodes"]}
            return bed.cluster("lb3")["etcd"]["reachable"] is False and others == {"lb1": True, "lb2": True, "lb3": False}

        wait_until(cut_off, PARTITION_BOUND, 0.2, "lb3 to lose etcd's quorum and lb1 to see it offline")
        bed.wait_next_hops({NODES3_6["lb1"], NODES3_6["lb2"]}, "lb3 is cut off", vip=VIP6)
        routing = bed.routing("lb3")
        assert routing["announced"] == [], routing
        for vip in (VIP, VIP6):
            assert routing["withheld"][vip].startswith("partitioned:"), routing["withheld"]
        for name in ("lb1", "lb2"):  # the two that keep quorum keep announcing
            assert bed.routing(name)["announced"] == [VIP, VIP6], name
        result = connections(bed, 300)  # new connections go to the two that announce, all of them answered
        assert result["failed"] == 0 and set(result["nodes"]) == {"lb1", "lb2"}, result

        bed.heal("lb3")
        healed = True
        back = time.monotonic()
        bed.wait_next_hops({lb1, lb2, lb3}, "lb3 reaches lb1 and lb2 again", timeout=PARTITION_BOUND)
        announced = time.monotonic() - back
        bed.wait_next_hops(set(NODES3_6.values()), "lb3 reaches lb1 and lb2 again", vip=VIP6)
        assert bed.routing("lb3")["withheld"] == {}
    finally:
        if not healed:
            bed.heal("lb3")
    with capsys.disabled():
        print(f"\n[three nodes] lb3 partitioned: withdrawn after {withdrawn:.1f} s (etcd lease 3 s), "
              f"announced again {announced:.1f} s after the heal")  # fmt: skip
