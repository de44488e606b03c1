"""`pacslb cluster status` as a person reads it (pure)."""

from __future__ import annotations

from pacslb.cli.cluster_commands import format_status


def node(name: str, address: str, **fields) -> dict:
    base = {"name": name, "address": address, "etcd_member": True, "online": True, "healthy": True, "health": "serving",
            "revision": 4, "error": None, "drained": False, "left": False, "vips": None, "seen_at": 100.0}  # fmt: skip
    return {**base, **fields}


def test_every_node_with_its_address_revision_and_drain() -> None:
    status = {"configured": True, "cluster": "truepacs", "node": "lb1", "latest_revision": 4, "runs": 4, "error": None,
              "etcd": {"endpoints": [], "reachable": True, "error": None},
              "nodes": [node("lb1", "10.0.1.11", vips=["192.0.2.10"],
                             sessions={"bgp": [{"neighbor": "10.0.1.1", "established": True, "state": "Established"}],
                                       "bfd": [{"address": "10.0.1.1", "state": "Up"}]}),
                        node("lb2", "10.0.1.12", drained=True),
                        node("lb3", "10.0.1.13", online=False, revision=None, seen_at=None),
                        node("lb4", "10.0.1.14", revision=3, error="cluster revision 4 cannot run here: refused")]}  # fmt: skip
    text = format_status(status, now=102.0)
    lines = text.splitlines()
    assert lines[0].startswith("cluster truepacs: latest revision 4; this node lb1 runs revision 4; etcd reachable")
    lb1 = next(line for line in lines if line.startswith("  lb1 "))
    assert "10.0.1.11" in lb1 and "192.0.2.10" in lb1 and " ok " in lb1 and "seen 2s ago" in lb1
    assert "BGP 1/1 up, BFD 1/1 up" in lb1
    assert "yes" in next(line for line in lines if line.startswith("  lb2 "))
    lb3 = next(line for line in lines if line.startswith("  lb3 "))
    assert " no " in lb3 and " - " in lb3
    assert "error: cluster revision 4 cannot run here" in text


def test_unreachable_etcd_and_no_cluster() -> None:
    assert "not a cluster node" in format_status({"configured": False})
    status = {"configured": True, "cluster": "c", "node": "a", "latest_revision": None, "runs": 2, "error": None,
              "etcd": {"endpoints": [], "reachable": False, "error": "no quorum"},
              "nodes": [node("a", "10.0.0.1", online=None, drained=None, left=None, healthy=None)]}  # fmt: skip
    text = format_status(status)
    assert "latest revision ?" in text and "NOT REACHABLE (no quorum)" in text


def test_a_node_cut_off_from_the_others_says_so_and_whether_it_keeps_announcing() -> None:
    status = {"configured": True, "cluster": "c", "node": "a", "latest_revision": None, "runs": 2, "error": None,
              "etcd": {"endpoints": [], "reachable": False, "error": "no quorum"}, "nodes": [node("a", "10.0.0.1")],
              "partition": "partitioned: etcd's quorum out of reach for 5s or more", "on_partition": "withdraw"}  # fmt: skip
    text = format_status(status)
    assert "this node is cut off: partitioned: etcd's quorum out of reach" in text and "keep-serving" not in text
    assert "keeps announcing" in format_status({**status, "on_partition": "keep-serving"})
    assert "cut off" not in format_status({**status, "partition": None})
