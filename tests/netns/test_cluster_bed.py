"""The routed cluster bed (support/cluster_bed.py): a router spreads the VIP's flows over three HAProxy nodes by ECMP.

What BGP will do once the BIRD engine lands (a node withdraws the VIP, the router takes it out of the route) is
done here by hand in the router; what is measured is the router's part: which flows survive a withdrawal.

With plain hash-threshold multipath, the hash space is cut in equal ranges in the order of the next hops; taking
the last of three out moves the range [1/3, 1/2) of the hash from lb2 to lb1: a sixth of all flows, established on
a node that is still up, go to a node that has no socket for them and are reset. At 300 flows, each on its own
source port, the chance that none falls in that range is (5/6)^300, below 1e-23: "some break" is certain. (Taking
the middle node out moves nothing of the others: the test withdraws the last one.) A resilient group keeps every
bucket of the nodes that stay where it was: none of their flows break.
"""

from __future__ import annotations

import os
import shutil

import pytest

from support.cluster_bed import NODES, cluster_bed

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.engine, pytest.mark.slow]

FLOWS = 300
# Each node's share of 300 flows is binomial (n=300, p=1/3): mean 100, standard deviation 8.2; 60..140 is
# about five standard deviations either side.
BAND = (60, 140)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    assert shutil.which("haproxy"), "haproxy is not installed (make deps)"
    with cluster_bed(tmp_path_factory.mktemp("cluster-bed")) as b:
        yield b


def _spread_evenly(opened: dict) -> None:
    assert opened["opened"] == FLOWS and opened["failed"] == 0, opened
    assert set(opened["nodes"]) == set(NODES), opened
    for node, n in opened["nodes"].items():
        assert BAND[0] <= n <= BAND[1], f"{node} carries {n} of {FLOWS} flows: {opened['nodes']}"


def test_all_three_nodes_carry_a_third_of_the_flows_each(bed):
    bed.route_plain(list(NODES))
    with bed.flows(FLOWS) as flows:
        _spread_evenly(flows.opened)
        echoed = flows.echo()
        assert echoed["broken"] == {} and sum(echoed["ok"].values()) == FLOWS, echoed


def test_withdrawing_a_node_breaks_no_flow_of_the_others_with_a_resilient_group(bed):
    bed.route_resilient(list(NODES))
    assert "type resilient buckets 128" in bed.route()
    with bed.flows(FLOWS) as flows:
        _spread_evenly(flows.opened)
        assert flows.echo()["broken"] == {}
        bed.withdraw("lb3")
        assert "group 1/2 type resilient" in bed.route()
        after = flows.echo()
        # every flow of lb3 is gone (the router now sends it to a node without its socket), and only those
        assert after["broken"] == {"lb3": flows.opened["nodes"]["lb3"]}, after
        assert after["ok"] == {n: flows.opened["nodes"][n] for n in ("lb1", "lb2")}, after
        assert flows.echo()["broken"] == {}


def test_withdrawing_a_node_breaks_flows_of_the_others_with_plain_ecmp(bed):
    bed.route_plain(list(NODES))
    with bed.flows(FLOWS) as flows:
        _spread_evenly(flows.opened)
        assert flows.echo()["broken"] == {}
        bed.withdraw("lb3")
        assert "10.97.13.2" not in bed.route()
        after = flows.echo()
        survivors_broken = after["broken"].get("lb1", 0) + after["broken"].get("lb2", 0)
        assert after["broken"].get("lb3") == flows.opened["nodes"]["lb3"], after
        # lb2's flows in the hash range that moved to lb1 are reset; about a sixth of all (50 of 300)
        assert survivors_broken > 0, after
        assert after["broken"].get("lb1", 0) == 0, after  # lb1's range only grows under hash-threshold
