"""The cluster's state, its decisions without etcd: the keys and transactions (keys.py), what is shared and what
each node keeps (shared.py), and ClusterState's publish and apply against an in-memory etcd that keeps the same
compare-and-swap rules (the real etcd is in tests/e2e/test_cluster_etcd.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pacslb.change.result import ChangeResult, Outcome
from pacslb.change.service import Origin
from pacslb.cluster.etcd import EtcdError
from pacslb.cluster.keys import (
    KEEP_REVISIONS,
    Keys,
    b64,
    decode_kvs,
    new_revision_txn,
    prefix_end,
    shared_digest,
    txn_outcome,
    unb64,
)
from pacslb.cluster.shared import merge_own, shared_data
from pacslb.cluster.state import CLUSTER_KIND, ClusterState
from pacslb.model import load_text
from pacslb.paths import StatePaths

CONFIG = """version: 1
settings: {{health: {{agent_port: {agent}}}, management: {{enabled: false}}}}
cluster:
  name: truepacs
  node: {node}
  nodes: [{{name: lb1, address: 10.0.1.11}}, {{name: lb2, address: 10.0.1.12}}, {{name: lb3, address: 10.0.1.13}}]
  bgp: {{local_as: 65010, neighbors: [{{address: 10.0.1.1, remote_as: 65000}}]}}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 192.0.2.10, port: 80}}]
    real_servers: [{{name: rs1, address: 198.51.100.50, port: 80, weight: {weight}}}]
"""


def config(node: str = "lb1", weight: int = 1, agent: int = 334):
    loaded = load_text(CONFIG.format(node=node, weight=weight, agent=agent))
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config


# --- keys.py ----------------------------------------------------------------------------------------------


def test_the_first_revision_needs_an_absent_counter_the_next_ones_its_value() -> None:
    keys = Keys("truepacs")
    first = new_revision_txn(keys, 0, {"revision": 1})
    assert first["compare"] == [{"key": b64("/pacslb/truepacs/revision"), "target": "VERSION", "result": "EQUAL", "version": "0"}]
    later = new_revision_txn(keys, 41, {"revision": 42})
    assert later["compare"][0]["target"] == "VALUE" and unb64(later["compare"][0]["value"]) == b"41"
    puts = [unb64(op["requestPut"]["key"]).decode() for op in later["success"] if "requestPut" in op]
    assert puts == ["/pacslb/truepacs/revision", "/pacslb/truepacs/config", "/pacslb/truepacs/revisions/000000000042"]
    assert unb64(later["success"][0]["requestPut"]["value"]) == b"42"
    with pytest.raises(AssertionError):
        new_revision_txn(keys, 41, {"revision": 41})  # the record must carry the number it becomes


def test_history_keeps_the_last_revisions_only() -> None:
    keys = Keys("c")
    assert not any(
        "requestDeleteRange" in op for op in new_revision_txn(keys, KEEP_REVISIONS - 1, {"revision": KEEP_REVISIONS})["success"]
    )
    txn = new_revision_txn(keys, KEEP_REVISIONS + 4, {"revision": KEEP_REVISIONS + 5})
    deleted = [unb64(op["requestDeleteRange"]["key"]).decode() for op in txn["success"] if "requestDeleteRange" in op]
    assert deleted == [keys.revision_of(5)]


def test_txn_outcome_reads_the_counter_of_a_lost_race() -> None:
    assert txn_outcome({"succeeded": True}) == (True, None)
    lost = {"responses": [{"response_range": {"kvs": [{"key": b64("/x"), "value": b64("17")}]}}]}
    assert txn_outcome(lost) == (False, 17)


def test_prefix_end_and_node_names() -> None:
    assert unb64(prefix_end("/pacslb/c/")) == b"/pacslb/c0"
    keys = Keys("c")
    assert keys.node_of("/pacslb/c/members/lb2", keys.members) == "lb2"
    assert keys.node_of("/pacslb/c/drain/lb2", keys.members) is None
    assert decode_kvs({"kvs": [{"key": b64("/a"), "value": b64("1")}, {"key": b64("/b")}]}) == {"/a": b"1", "/b": b""}


# --- shared.py ----------------------------------------------------------------------------------------------


def test_node_local_parts_stay_with_each_node() -> None:
    one, two = config("lb1", agent=601), config("lb2", agent=602)
    assert shared_data(one) == shared_data(two)  # the node name and the agent port are each node's own
    assert "cluster" not in shared_data(one) and "agent_port" not in shared_data(one)["settings"]["health"]
    merged = merge_own(shared_data(config("lb1", weight=9, agent=601)), two)
    assert merged["cluster"]["node"] == "lb2" and merged["settings"]["health"]["agent_port"] == 602
    assert merged["virtual_services"][0]["real_servers"][0]["weight"] == 9


# --- ClusterState against an in-memory etcd -------------------------------------------------------------------


class MemoryEtcd:
    """The calls ClusterState makes, with etcd's rules for the transaction it sends (compare, then all or nothing)."""

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.down = False
        self.endpoints = ["http://memory"]

    def _up(self) -> None:
        if self.down:
            raise EtcdError("etcd cannot be reached or has no quorum (http://memory: etcdserver: request timed out)")

    async def txn(self, body: dict[str, Any]) -> dict[str, Any]:
        self._up()
        ok = True
        for compare in body["compare"]:
            key = unb64(compare["key"]).decode()
            if compare["target"] == "VERSION":
                ok &= (key in self.kv) == (compare["version"] != "0")
            else:
                ok &= self.kv.get(key) == unb64(compare["value"])
        if ok:
            for op in body["success"]:
                if "requestPut" in op:
                    self.kv[unb64(op["requestPut"]["key"]).decode()] = unb64(op["requestPut"]["value"])
                else:
                    self.kv.pop(unb64(op["requestDeleteRange"]["key"]).decode(), None)
            return {"succeeded": True}
        counter = self.kv.get("/pacslb/truepacs/revision")
        kvs = [{"key": b64("/pacslb/truepacs/revision"), "value": b64(counter)}] if counter else []
        return {"responses": [{"response_range": {"kvs": kvs}}]}

    async def get(self, key: str) -> tuple[bytes | None, int]:
        self._up()
        return self.kv.get(key), 1

    async def put(self, key: str, value: str, lease: int | None = None) -> None:
        self._up()
        self.kv[key] = value.encode()

    async def delete(self, key: str) -> None:
        self._up()
        self.kv.pop(key, None)

    async def get_prefix(self, prefix: str) -> tuple[dict[str, bytes], int]:
        self._up()
        return {k: v for k, v in self.kv.items() if k.startswith(prefix)}, 1


class FakeChanges:
    """The front door as ClusterState sees it: the running configuration, and apply (answers as told)."""

    def __init__(self, running) -> None:
        self.config = running
        self.applied: list[dict] = []
        self.answer = Outcome.APPLIED

    async def apply(self, *, data, origin, message, kind, action, target) -> ChangeResult:
        self.applied.append({"data": data, "origin": origin, "kind": kind, "message": message})
        if self.answer is Outcome.APPLIED:
            loaded = load_text(json.dumps(data))
            assert loaded.ok, [str(p) for p in loaded.problems]
            self.config = loaded.config
        return ChangeResult(self.answer, "refused by HAProxy" if self.answer is Outcome.REFUSED else "revision applied")


def node(tmp_path: Path, name: str, etcd: MemoryEtcd, weight: int = 1) -> ClusterState:
    running = config(name, weight)
    state = ClusterState(StatePaths(tmp_path / name), FakeChanges(running), lambda: (True, "serving"))  # type: ignore[arg-type]
    state.cluster, state.keys, state.client = running.cluster, Keys("truepacs"), etcd  # type: ignore[assignment]
    return state


async def test_two_nodes_based_on_the_same_revision_one_wins_the_other_is_a_conflict(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one, two = node(tmp_path, "lb1", etcd), node(tmp_path, "lb2", etcd)
    assert await one.publish(config("lb1"), config("lb1", 5), Origin("alice", "api"), "apply") is None
    one_record = json.loads(etcd.kv["/pacslb/truepacs/config"])
    assert one_record["revision"] == 1 and one_record["node"] == "lb1" and one_record["author"] == "alice"
    lost = await two.publish(config("lb2"), config("lb2", 7), Origin("bob", "api"), "apply")
    assert lost is not None and lost.outcome is Outcome.CONFLICT and lost.http_status == 409
    assert "another node's change landed first" in lost.message and lost.extra["cluster_revision"] == 1
    assert json.loads(etcd.kv["/pacslb/truepacs/config"])["author"] == "alice"  # nothing of bob's was written
    # lb1's own commit ran it: it runs revision 1 once told (Changes' notify)
    await one.applied(config("lb1", 5))
    assert one.runs == 1 and json.loads((tmp_path / "lb1" / "cluster" / "applied.json").read_text())["revision"] == 1


async def test_every_node_applies_a_revision_with_its_own_node_local_parts(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one, two = node(tmp_path, "lb1", etcd), node(tmp_path, "lb2", etcd)
    assert await one.publish(config("lb1"), config("lb1", 5), Origin("alice"), "apply") is None
    record = json.loads(etcd.kv["/pacslb/truepacs/config"])
    await two._apply(record)
    applied = two.changes.applied[-1]  # type: ignore[attr-defined]
    assert applied["kind"] == CLUSTER_KIND and applied["origin"].via == "cluster"
    assert applied["data"]["cluster"]["node"] == "lb2" and two.runs == 1 and two.error is None
    # applying the revision made no new one: a cluster-kind change is never published again
    assert await two.publish(config("lb2"), config("lb2", 5), Origin("alice", "cluster"), CLUSTER_KIND) is None
    assert etcd.kv["/pacslb/truepacs/revision"] == b"1"
    await two._apply(record)  # the same revision again (a reconnection): nothing to do
    assert len(two.changes.applied) == 1  # type: ignore[attr-defined]


async def test_a_node_that_cannot_apply_keeps_its_revision_and_says_why(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one, two = node(tmp_path, "lb1", etcd), node(tmp_path, "lb2", etcd)
    await one.publish(config("lb1"), config("lb1", 5), Origin("alice"), "apply")
    two.changes.answer = Outcome.REFUSED  # type: ignore[attr-defined]
    await two._apply(json.loads(etcd.kv["/pacslb/truepacs/config"]))
    assert two.runs == 0 and two.latest == 1
    assert two.error is not None and "cluster revision 1 cannot run here: refused by HAProxy" in two.error
    record = await two.member_record()
    assert (record["revision"], record["error"]) == (0, two.error)


async def test_without_quorum_a_change_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one = node(tmp_path, "lb1", etcd)
    etcd.down = True
    refused = await one.publish(config("lb1"), config("lb1", 5), Origin("alice"), "apply")
    assert refused is not None and refused.outcome is Outcome.REFUSED
    assert "the cluster's etcd cannot take the change" in refused.message and "no quorum" in refused.message
    assert "nothing was changed" in refused.message
    assert etcd.kv == {}


async def test_a_change_of_node_local_parts_only_stays_on_the_node(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one = node(tmp_path, "lb1", etcd)
    assert await one.publish(config("lb1", agent=334), config("lb1", agent=601), Origin("alice"), "apply") is None
    assert etcd.kv == {}


async def test_a_configuration_too_large_for_etcd_is_refused(tmp_path: Path, monkeypatch) -> None:
    import pacslb.cluster.state as state_module

    monkeypatch.setattr(state_module, "MAX_VALUE_BYTES", 100)
    refused = await node(tmp_path, "lb1", MemoryEtcd()).publish(config("lb1"), config("lb1", 5), Origin("a"), "apply")
    assert refused is not None and refused.outcome is Outcome.REFUSED and "more than etcd takes" in refused.message


async def test_drain_names_a_node_of_the_cluster(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one = node(tmp_path, "lb1", etcd)
    code, body = await one.drain("lb9", True)
    assert code == 404 and "lb1, lb2, lb3" in body["message"] and etcd.kv == {}
    code, _ = await one.drain("lb2", True)
    assert code == 200 and "/pacslb/truepacs/drain/lb2" in etcd.kv
    status = await one.status()
    assert [n["drained"] for n in status["nodes"]] == [False, True, False]
    code, _ = await one.drain("lb2", False)
    assert code == 200 and "/pacslb/truepacs/drain/lb2" not in etcd.kv
    etcd.down = True
    code, body = await one.drain("lb2", True)
    assert code == 503 and "nothing was changed" in body["message"]
    status = await one.status()
    assert status["etcd"]["reachable"] is False and status["nodes"][0]["online"] is None


async def test_the_drain_seam_is_called_with_the_drain_state(tmp_path: Path) -> None:
    calls: list[bool] = []

    async def set_drained(drained: bool) -> None:
        calls.append(drained)

    one = node(tmp_path, "lb1", MemoryEtcd())
    one.drain_routing = set_drained
    await one._set_drained(True)
    await one._set_drained(True)  # no change: not called again
    await one._set_drained(False)
    assert calls == [True, False]


def test_the_digest_is_of_the_shared_part() -> None:
    assert shared_digest(shared_data(config("lb1", agent=601))) == shared_digest(shared_data(config("lb3", agent=602)))
    assert shared_digest(shared_data(config("lb1", 2))) != shared_digest(shared_data(config("lb1", 3)))


async def test_a_write_etcd_did_not_confirm_is_not_said_to_be_lost(tmp_path: Path) -> None:
    """A member took the proposal and its quorum did not answer in time: it may still commit, so the answer says so."""

    class Unconfirmed(MemoryEtcd):
        async def txn(self, body):
            raise EtcdError("etcd cannot be reached or has no quorum (http://memory: ReadTimeout)", uncertain=True)

    refused = await node(tmp_path, "lb1", Unconfirmed()).publish(config("lb1"), config("lb1", 5), Origin("a"), "apply")
    assert refused is not None and refused.outcome is Outcome.REFUSED and refused.extra["uncertain"] is True
    assert "did not confirm the change in time" in refused.message and "nothing was changed on this node" in refused.message
    assert "etcd may still commit it" in refused.message


async def test_what_an_engine_refuses_here_is_never_written_to_the_cluster(tmp_path: Path) -> None:
    from pacslb.engines.contract import EngineError

    async def refuse() -> None:
        raise EngineError("HAProxy refuses the rendered configuration (nothing was changed)", ["[ALERT] bad"], refused=True)

    etcd = MemoryEtcd()
    refused = await node(tmp_path, "lb1", etcd).publish(config("lb1"), config("lb1", 5), Origin("a"), "apply", refuse)
    assert refused is not None and refused.outcome is Outcome.REFUSED and refused.messages == ["[ALERT] bad"]
    assert "nothing was written to the cluster" in refused.message and etcd.kv == {}


async def test_a_revision_no_node_could_run_is_replaced_by_the_next_change(tmp_path: Path) -> None:
    """Every node refused revision 1 and runs none: a change made on any of them is based on it, not a conflict."""
    etcd = MemoryEtcd()
    one, two = node(tmp_path, "lb1", etcd), node(tmp_path, "lb2", etcd)
    assert await one.publish(config("lb1"), config("lb1", 5), Origin("a"), "apply") is None
    two.changes.answer = Outcome.REFUSED  # type: ignore[attr-defined]
    await two._apply(json.loads(etcd.kv["/pacslb/truepacs/config"]))
    assert (two.runs, two.seen) == (0, 1)
    assert await two.publish(config("lb2"), config("lb2", 6), Origin("b"), "apply") is None
    assert etcd.kv["/pacslb/truepacs/revision"] == b"2"


async def test_leave_drains_and_takes_no_revision_join_returns_and_applies_the_latest(tmp_path: Path) -> None:
    etcd = MemoryEtcd()
    one, two = node(tmp_path, "lb1", etcd), node(tmp_path, "lb2", etcd)
    code, body = await two.leave()
    assert code == 200 and "left the cluster" in body["message"]
    assert {"/pacslb/truepacs/drain/lb2", "/pacslb/truepacs/left/lb2"} <= set(etcd.kv)
    two.left = True  # as its watch would see its own left key
    refused = await two.publish(config("lb2"), config("lb2", 6), Origin("b"), "apply")
    assert refused is not None and refused.outcome is Outcome.REFUSED and "left the cluster" in refused.message
    assert await one.publish(config("lb1"), config("lb1", 5), Origin("a"), "apply") is None
    await two._apply(json.loads(etcd.kv["/pacslb/truepacs/config"]))
    assert two.runs == 0 and two.changes.applied == []  # type: ignore[attr-defined]
    code, body = await two.join()
    assert code == 200 and two.runs == 1 and not two.left and "runs cluster revision 1" in body["message"]
    assert not any(k.startswith(("/pacslb/truepacs/drain/", "/pacslb/truepacs/left/")) for k in etcd.kv)
