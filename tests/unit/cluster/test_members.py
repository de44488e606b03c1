"""etcd's membership as pacslb reads it (cluster/members.py, pure parts) and `pacslb cluster members` as a person
reads it; the rejoin's refusals that need no etcd."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

import pytest

from pacslb.cli.cluster_commands import format_members
from pacslb.cluster import members
from pacslb.engines.etcd.render import render_conf
from pacslb.model import validate_data

LISTED = [
    {"ID": "13668033151171901709", "name": "lb1", "peerURLs": ["http://10.0.1.11:2380"], "clientURLs": ["http://10.0.1.11:2379"]},
    {"ID": "12813519876769527614", "peerURLs": ["http://10.0.1.13:2380"]},  # added, not started: no name yet
    {"ID": "42", "name": "lb2", "peerURLs": ["http://10.0.1.12:2380"], "clientURLs": ["http://10.0.1.12:2379"]},
]


def _cluster(node: str = "lb3", members_: int = 3):
    nodes = [{"name": f"lb{i}", "address": f"10.0.1.1{i}", "etcd_member": i <= members_} for i in (1, 2, 3)]
    loaded = validate_data({"version": 1, "cluster": {"name": "truepacs", "node": node, "nodes": nodes,
                            "bgp": {"local_as": 65010, "neighbors": [{"address": "10.0.1.1", "remote_as": 65000}]}}})  # fmt: skip
    assert loaded.ok, loaded.problems
    return loaded.config.cluster


def test_the_list_names_ids_in_hex_started_and_the_leader() -> None:
    rows = members.describe(LISTED, leader=42)
    assert [(r["name"], r["id"], r["started"], r["leader"]) for r in rows] == [
        ("lb1", "bdae9bbc11dd390d", True, False), ("lb2", "2a", True, True), ("", "b1d2c4706141373e", False, False),
    ]  # fmt: skip
    assert not any(r["leader"] for r in members.describe(LISTED, leader=0))  # no leader known: none marked
    text = format_members({"members": rows, "leader": "2a"})
    assert "(not started)" in text and "http://10.0.1.12:2379" in text and "no leader" not in text
    assert "no leader known" in format_members({"members": members.describe(LISTED, 0), "leader": None})
    waiting = {"members": rows, "leader": "2a", "this_node": {"name": "lb3", "needs_rejoin": True, "rejoining": False}}
    assert "run `pacslb cluster rejoin`" in format_members(waiting)


def test_this_nodes_member_is_found_by_peer_url_then_by_name() -> None:
    assert members.find_own(LISTED, "lb3", "http://10.0.1.13:2380")["ID"] == "12813519876769527614"
    assert members.find_own(LISTED, "lb2", "http://10.0.9.9:2380")["ID"] == "42"  # moved address: by name
    assert members.find_own(LISTED, "lb9", "http://10.0.9.9:2380") is None


def test_the_membership_must_be_the_sections() -> None:
    own = LISTED[1]
    expected = {"http://10.0.1.11:2380", "http://10.0.1.12:2380"}
    assert members.membership_difference(LISTED, own, expected) is None
    found = members.membership_difference(LISTED, own, {"http://10.0.1.11:2380", "http://10.0.1.14:2380"})
    assert found == ("etcd has http://10.0.1.12:2380, which the cluster section does not name; "
                     "the cluster section names http://10.0.1.14:2380, which etcd does not have")  # fmt: skip


def test_a_rejoin_needs_an_etcd_member_and_another_member() -> None:
    class NoEngine:  # never reached: the refusals come first
        gate = asyncio.Lock()

    code, answer = asyncio.run(members.rejoin(_cluster("lb3", members_=1), NoEngine(), None))  # type: ignore[arg-type]
    assert code == 409 and "no etcd member (etcd_member: false)" in answer["message"]
    code, answer = asyncio.run(members.rejoin(_cluster("lb1", members_=1), NoEngine(), None))  # type: ignore[arg-type]
    assert code == 409 and "only etcd member" in answer["message"] and "nothing was changed" in answer["message"]


def test_the_file_joins_an_existing_cluster_when_asked() -> None:
    cluster = _cluster("lb1")
    assert "initial-cluster-state: 'new'" in render_conf(cluster, PurePosixPath("/d"))
    assert "initial-cluster-state: 'existing'" in render_conf(cluster, PurePosixPath("/d"), None, "existing")
    with pytest.raises(AssertionError):
        render_conf(cluster, PurePosixPath("/d"), None, "old")
