"""A node cut off from its cluster (cluster/partition.py, ClusterState's judgement, announce.py's reason): the verdict
is pure; the probe runs on real loopback sockets (an accepted and a refused connection both count as an answer).
The whole story with etcd, BIRD and a router in namespaces is tests/netns/test_cluster_three_nodes.py."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from pacslb.cluster.announce import Facts, decide
from pacslb.cluster.keys import Keys
from pacslb.cluster.partition import majority, reach, verdict
from pacslb.cluster.state import ClusterState
from pacslb.model import load_text
from pacslb.paths import StatePaths

THREE = {"10.0.1.12": True, "10.0.1.13": True}


def test_a_node_with_half_or_more_of_the_others_is_a_majority() -> None:
    assert majority(3, 1) and not majority(3, 0)
    assert majority(5, 2) and not majority(5, 1)
    assert not majority(4, 1)  # two of four: neither half is a majority
    assert majority(1, 0)  # a cluster of one is never cut off from itself


def test_the_verdict_needs_both_a_lost_quorum_and_no_majority() -> None:
    silent = {"10.0.1.12": False, "10.0.1.13": False}
    assert verdict(3, silent, None, 5.0) is None  # etcd was written just now
    assert verdict(3, silent, 4.9, 5.0) is None  # not for the lease's time yet
    assert verdict(3, THREE, 60.0, 5.0) is None  # etcd's quorum is gone but the nodes answer: keep serving
    assert verdict(3, {"10.0.1.12": True, "10.0.1.13": False}, 60.0, 5.0) is None  # two of three reach each other
    reason = verdict(3, silent, 7.3, 5.0)
    assert reason is not None and reason.startswith("partitioned:")
    assert "reaches 0 of the 2 other nodes" in reason and "10.0.1.12, 10.0.1.13" in reason
    assert verdict(2, {"10.0.1.12": False}, 60.0, 5.0) is None  # two nodes: the survivor of a death looks the same
    # the same words while nothing changes (the caller logs and re-evaluates only on a change)
    assert verdict(3, silent, 30.0, 5.0) == reason


async def test_the_probe_counts_an_accepted_and_a_refused_connection_as_an_answer() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: the kernel refuses (RST)
    try:
        port_open, port_closed = listening.getsockname()[1], closed.getsockname()[1]
        assert await reach(["127.0.0.1"], port_open) == {"127.0.0.1": True}
        assert await reach(["127.0.0.1"], port_closed) == {"127.0.0.1": True}
    finally:
        listening.close()
        closed.close()


CONFIG = """version: 1
settings: {{management: {{enabled: false}}}}
cluster:
  name: truepacs
  node: lb1
  nodes: [{{name: lb1, address: 10.0.1.11}}, {{name: lb2, address: 10.0.1.12}}, {{name: lb3, address: 10.0.1.13}}]
  etcd: {{lease: 3s}}
  bgp: {{local_as: 65010, neighbors: [{{address: 10.0.1.1, remote_as: 65000}}]}}
  {policy}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 192.0.2.10, port: 80}}]
    real_servers: [{{name: rs1, address: 198.51.100.50, port: 80}}]
"""


def cluster_state(tmp_path: Path, answers: dict[str, bool], policy: str = "") -> tuple[ClusterState, list, list]:
    loaded = load_text(CONFIG.format(policy=policy))
    assert loaded.ok, [str(p) for p in loaded.problems]
    probed: list[tuple[list[str], int]] = []
    woken: list[bool] = []

    async def fake_reach(addresses: list[str], port: int) -> dict[str, bool]:
        probed.append((addresses, port))
        return {address: answers[address] for address in addresses}

    state = ClusterState(StatePaths(tmp_path), None, lambda: (True, "serving"), on_partition=lambda: woken.append(True),  # type: ignore[arg-type]
                         reach=fake_reach)  # fmt: skip
    state.cluster, state.keys = loaded.config.cluster, Keys("truepacs")
    return state, probed, woken


async def test_a_node_silent_for_the_lease_is_judged_cut_off_and_the_routing_woken_once(tmp_path: Path) -> None:
    answers = {"10.0.1.12": False, "10.0.1.13": False}
    state, probed, woken = cluster_state(tmp_path, answers)
    await state._judge_partition()
    assert state.partition is None and probed == [] and woken == []  # etcd was written just now: no probe
    state._quorum_at = time.monotonic() - 4.0  # the member key not renewed for longer than the 3 s lease
    await state._judge_partition()
    assert probed == [(["10.0.1.12", "10.0.1.13"], 10000)]  # the others' HAProxy peers port
    assert state.partitioned is not None and state.partitioned.startswith("partitioned:") and woken == [True]
    await state._judge_partition()
    assert woken == [True]  # the same verdict: the routing is not woken again
    answers["10.0.1.13"] = True  # lb3 answers again: two of three
    await state._judge_partition()
    assert state.partition is None and woken == [True, True]


async def test_keep_serving_shows_the_verdict_and_withdraws_nothing(tmp_path: Path) -> None:
    state, _, _ = cluster_state(tmp_path, {"10.0.1.12": False, "10.0.1.13": False}, policy="on_partition: keep-serving")
    state._quorum_at = time.monotonic() - 10.0
    await state._judge_partition()
    assert state.partition is not None and state.partitioned is None


def test_a_partitioned_node_withholds_every_vip_with_the_reason() -> None:
    loaded = load_text(CONFIG.format(policy=""))
    assert loaded.ok
    cut = "partitioned: etcd's quorum out of reach for 3s or more, and this node reaches 0 of the 2 other nodes"
    decision = decide(loaded.config, Facts(serving={"web": True}, partitioned=cut))
    assert decision.announced == () and decision.withheld == {"192.0.2.10": cut}
    drained = decide(loaded.config, Facts(serving={"web": True}, partitioned=cut, drained=True))
    assert drained.withheld["192.0.2.10"].startswith("drained")  # a drain says more than a partition


def test_on_partition_takes_two_words_only() -> None:
    loaded = load_text(CONFIG.format(policy="on_partition: ignore"))
    assert not loaded.ok
    assert any("cluster.on_partition" in str(p) for p in loaded.problems), [str(p) for p in loaded.problems]


async def test_the_watch_withdraws_without_waiting_for_a_hung_heartbeat(tmp_path: Path) -> None:
    """The verdict's own clock: etcd calls may hang for seconds on a cut-off node; the watch judges regardless."""
    state, probed, woken = cluster_state(tmp_path, {"10.0.1.12": False, "10.0.1.13": False})
    state._quorum_at = time.monotonic() - 4.0
    task = asyncio.get_running_loop().create_task(state._watch_partition())
    try:
        for _ in range(40):  # the watch looks every lease / 3 = 1 s
            if woken:
                break
            await asyncio.sleep(0.1)
    finally:
        state._stopping.set()
        await asyncio.wait_for(task, 5)
    assert woken == [True] and state.partition is not None and probed
