"""A change of the `cluster` section while the controller runs (cluster/live.py; docs/cluster.md, "Changing the
`cluster` section"): what a running node refuses, through the real change front door over fake engines, and what
the cluster's state takes (ClusterState.take) over an in-memory etcd. The real etcd and controller are in
tests/e2e/test_cluster_live.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import pacslb.cluster.state as state_module
from pacslb.change.result import Outcome
from pacslb.change.service import Changes, Origin, Running
from pacslb.cluster.etcd import EtcdError
from pacslb.cluster.keys import Keys, unb64
from pacslb.cluster.live import ClusterSection, refusal, refusal_problem, taken
from pacslb.cluster.state import ClusterState
from pacslb.engines.contract import EngineState, Prepared
from pacslb.model import Config, load_text
from pacslb.paths import StatePaths

NODES = {"lb1": "10.0.1.11", "lb2": "10.0.1.12", "lb3": "10.0.1.13", "lb4": "10.0.1.14"}


def text(node: str = "lb1", nodes: tuple[str, ...] = ("lb1", "lb2", "lb3"), name: str = "truepacs", lease: str = "5s",
         dial: str = "2s", members: tuple[str, ...] = ("lb1", "lb2", "lb3"), cluster: bool = True,
         on_partition: str = "withdraw") -> str:  # fmt: skip
    listed = ", ".join(f"{{name: {n}, address: {NODES[n]}, etcd_member: {str(n in members).lower()}}}" for n in nodes)
    section = [
        "cluster:",
        f"  name: {name}",
        f"  node: {node}",
        f"  nodes: [{listed}]",
        f"  etcd: {{lease: {lease}, dial_timeout: {dial}}}",
        f"  on_partition: {on_partition}",
        "  bgp: {local_as: 65010, neighbors: [{address: 10.0.1.1, remote_as: 65000}]}",
    ]  # fmt: skip
    return "\n".join([
        "version: 1",
        "settings: {management: {enabled: false}}",
        *(section if cluster else []),
        "virtual_services:",
        "  - name: web",
        "    mode: layer7-http",
        "    listen: [{address: 192.0.2.10, port: 80}]",
        "    real_servers: [{name: rs1, address: 198.51.100.50, port: 80}]",
    ]) + "\n"  # fmt: skip


def config(**kwargs: Any) -> Config:
    loaded = load_text(text(**kwargs))
    assert loaded.ok, [str(p) for p in loaded.problems]
    assert loaded.config is not None
    return loaded.config


async def wait_until_async(predicate, timeout: float, what: str) -> None:
    """Wait for `predicate` on the event loop (the tasks under test run on it), up to `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def section(**kwargs: Any):
    return config(**kwargs).cluster


# --- refusal and taken: pure ------------------------------------------------------------------------------------


def test_another_node_or_cluster_is_refused_naming_the_field_and_the_restart() -> None:
    node = refusal_problem(section(), section(node="lb2"))
    assert node is not None and node.path == "cluster.node" and "node lb1 -> lb2" in node.message
    name = refusal_problem(section(), section(name="radiology"))
    assert name is not None and name.path == "cluster.name" and "cluster truepacs -> radiology" in name.message
    both = refusal_problem(section(), section(name="radiology", node="lb2"))
    assert both is not None and both.path == "cluster.name, cluster.node"
    for problem in (node, name, both):
        assert "`pacslb stop`, edit the file, `pacslb up`" in problem.message
        assert problem.message.endswith("nothing was changed")
    assert str(refusal(section(), section(node="lb2"))).startswith("cluster.node: node lb1 -> lb2: ")


def test_adding_or_removing_the_section_is_refused_with_what_the_node_does_at_start() -> None:
    joining = refusal_problem(None, section())
    assert joining is not None and joining.path == "cluster"
    assert "adds a `cluster` section to a running single node" in joining.message
    assert "`pacslb stop`" in joining.message and "`pacslb up`" in joining.message
    assert "cluster revision 1" in joining.message and "latest revision" in joining.message  # what the start does
    leaving = refusal_problem(section(), None)
    assert leaving is not None and leaving.path == "cluster"
    assert "this node is node lb1 of cluster truepacs" in leaving.message and "node-local" in leaving.message
    assert "`pacslb cluster drain lb1`" in leaving.message and "runs as a single node" in leaving.message
    assert "etcdctl member remove" in leaving.message and leaving.message.endswith("nothing was changed")
    assert refusal(None, None) is None


def test_a_changed_section_of_the_same_node_is_taken() -> None:
    old = section()
    assert refusal(old, old) is None and taken(old, old) == []
    fourth = section(nodes=("lb1", "lb2", "lb3", "lb4"))
    assert refusal(old, fourth) is None and taken(old, fourth) == ["cluster.nodes"]
    assert taken(old, section(lease="9s", dial="1s")) == ["cluster.etcd"]
    assert taken(old, section(on_partition="keep-serving")) == ["cluster.on_partition"]
    assert taken(old, section(node="lb2")) == [] and taken(None, old) == [] and taken(old, None) == []


# --- the change front door refuses before any engine commits and before etcd is written ----------------------


class FakeEngine:
    """An engine of the contract that runs a digest of the configuration, and records its steps."""

    name = "haproxy"

    def __init__(self, config: Config) -> None:
        self.runs = self._digest(config)
        self.calls: list[str] = []

    @staticmethod
    def _digest(config: Config) -> str:
        return hashlib.sha256(config.model_dump_json().encode()).hexdigest()

    def wanted(self, config: Config) -> bool:
        return True

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        digest = self._digest(new)
        return Prepared(self.name, digest != self.runs, digest, ["haproxy: new file"], data=digest)

    async def check(self, prepared: Prepared) -> None:
        self.calls.append("check")

    async def commit(self, prepared: Prepared) -> None:
        self.calls.append("commit")
        self.runs = prepared.data

    async def undo(self, prepared: Prepared) -> None:
        self.calls.append("undo")

    def discard(self, prepared: Prepared) -> None:
        pass

    def applied_digest(self) -> str | None:
        return self.runs

    def observe(self) -> EngineState:
        return EngineState(self.name, True)


def front_door(tmp_path: Path, running: Config) -> tuple[Changes, FakeEngine, list, list]:
    engine = FakeEngine(running)
    published: list[Config] = []
    notified: list[Config] = []

    async def publish(old, new, origin, kind, check):  # a cluster node writes the change to etcd here
        published.append(new)
        return None

    async def notify(config: Config) -> None:
        notified.append(config)

    changes = Changes(StatePaths(tmp_path / "state"), Running(running, tmp_path, tmp_path / "pacslb.yaml"), [engine],
                      asyncio.Lock(), notify=notify, preconditions=[ClusterSection()], publish=publish)  # fmt: skip
    first = changes.store.add(running.model_dump_json(), "", author="setup", message="first", kind="file", parent=None)
    changes.store.mark_applied(first.id)
    return changes, engine, published, notified


@pytest.mark.parametrize(
    ("running", "new", "path"),
    [
        ({}, {"node": "lb2"}, "cluster.node"),
        ({}, {"name": "radiology"}, "cluster.name"),
        ({}, {"cluster": False}, "cluster"),
        ({"cluster": False}, {}, "cluster"),
    ],
    ids=["node", "name", "removed", "added"],
)
async def test_the_front_door_refuses_and_changes_nothing(tmp_path: Path, running: dict, new: dict, path: str) -> None:
    old = config(**running)
    changes, engine, published, notified = front_door(tmp_path, old)
    for dry_run in (True, False):
        result = await changes.apply(text=text(**new), origin=Origin("ann", "cli"), dry_run=dry_run)
        assert result.outcome is Outcome.REFUSED and result.http_status == 409, result.message
        assert result.message.startswith(f"{path}: ") and "`pacslb up`" in result.message
        assert result.message.endswith("nothing was changed")
    assert engine.calls == [] and published == [] and notified == []  # no engine checked, nothing written to etcd
    assert changes.config is old and changes.store.current_id() == 1


async def test_the_front_door_applies_a_fourth_node_and_the_subsystems_hear_of_it(tmp_path: Path) -> None:
    changes, engine, published, notified = front_door(tmp_path, config())
    result = await changes.apply(text=text(nodes=("lb1", "lb2", "lb3", "lb4"), lease="9s"), origin=Origin("ann", "cli"))
    assert result.outcome is Outcome.APPLIED, result.message
    assert engine.calls == ["check", "commit"] and len(published) == 1  # node-local: publish says so itself
    assert [n.name for n in notified[0].cluster.nodes] == ["lb1", "lb2", "lb3", "lb4"]


# --- ClusterState takes the section ------------------------------------------------------------------------------


class Memory:
    """etcd's data, shared by every client made during a test; the leases and the clients made, for the asserts."""

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.leases: dict[int, int] = {}  # id -> TTL
        self.key_lease: dict[str, int] = {}
        self.revoked: list[int] = []
        self.clients: list[FakeClient] = []
        self.next_lease = 100
        self.down = False


class FakeClient:
    """EtcdClient's calls that ClusterState makes, on a Memory; its watch waits until cancelled."""

    memory: Memory

    def __init__(self, endpoints: list[str], timeout: float = 2.0, tls=None) -> None:
        self.endpoints, self.timeout, self.closed, self.tls = list(endpoints), timeout, False, tls
        self.memory.clients.append(self)

    def _up(self) -> None:
        if self.memory.down or self.closed:
            raise EtcdError("etcd cannot be reached or has no quorum (memory: down)")

    async def close(self) -> None:
        self.closed = True

    async def get(self, key: str) -> tuple[bytes | None, int]:
        self._up()
        return self.memory.kv.get(key), 1

    async def get_prefix(self, prefix: str) -> tuple[dict[str, bytes], int]:
        self._up()
        return {k: v for k, v in self.memory.kv.items() if k.startswith(prefix)}, 1

    async def put(self, key: str, value: str, lease: int | None = None) -> None:
        self._up()
        self.memory.kv[key] = value.encode()
        if lease is not None:
            self.memory.key_lease[key] = lease

    async def delete(self, key: str) -> None:
        self._up()
        self.memory.kv.pop(key, None)

    async def txn(self, body: dict[str, Any]) -> dict[str, Any]:
        self._up()  # the bootstrap's compare-and-swap on an empty store: it wins
        for op in body["success"]:
            if "requestPut" in op:
                self.memory.kv[unb64(op["requestPut"]["key"]).decode()] = unb64(op["requestPut"]["value"])
        return {"succeeded": True}

    async def grant(self, ttl: int) -> int:
        self._up()
        self.memory.next_lease += 1
        self.memory.leases[self.memory.next_lease] = ttl
        return self.memory.next_lease

    async def keepalive(self, lease: int) -> int:
        self._up()
        return self.memory.leases.get(lease, 0)

    async def revoke(self, lease: int) -> None:
        self._up()
        self.memory.leases.pop(lease, None)
        self.memory.revoked.append(lease)
        for key in [k for k, v in self.memory.key_lease.items() if v == lease]:
            self.memory.kv.pop(key, None)
            del self.memory.key_lease[key]

    async def watch_prefix(self, prefix: str, start_revision: int):
        self._up()
        await asyncio.Event().wait()
        yield ("PUT", prefix, b"")  # never reached: an async generator needs a yield


class FakeChanges:
    def __init__(self, running: Config, base_dir: Path | None = None) -> None:
        self.config = running
        self.base_dir = base_dir


@pytest.fixture
def memory(monkeypatch) -> Memory:
    found = Memory()
    FakeClient.memory = found
    monkeypatch.setattr(state_module, "EtcdClient", FakeClient)
    return found


def member(memory: Memory, node: str = "lb1") -> dict | None:
    value = memory.kv.get(Keys("truepacs").member(node))
    return json.loads(value) if value else None


async def test_a_fourth_node_a_new_lease_and_new_endpoints_are_taken(tmp_path: Path, memory: Memory) -> None:
    running = config()
    state = ClusterState(StatePaths(tmp_path / "lb1"), FakeChanges(running), lambda: (True, "serving"))  # type: ignore[arg-type]
    await state.start(running)
    try:
        await wait_until_async(lambda: member(memory) is not None and state.runs == 1, 5, "the member key and revision 1")
        first, lease = memory.clients[0], memory.key_lease[Keys("truepacs").member("lb1")]
        assert memory.leases[lease] == 5 and first.endpoints == [f"http://{NODES[n]}:2379" for n in ("lb1", "lb2", "lb3")]
        # a fourth node, no etcd member: the same endpoints and lease, the same client; the status lists it at once
        await state.applied(config(nodes=("lb1", "lb2", "lb3", "lb4")))
        assert [n["name"] for n in (await state.status())["nodes"]] == ["lb1", "lb2", "lb3", "lb4"]
        assert memory.clients == [first] and not first.closed and state._lease == lease
        # lb3 no longer an etcd member (lb4 is), a new lease and dial_timeout: a new client and a new lease
        changed = config(nodes=("lb1", "lb2", "lb3", "lb4"), members=("lb1", "lb2", "lb4"), lease="9s", dial="1s")
        await state.applied(changed)
        second = memory.clients[-1]
        assert not first.closed  # a request in flight on it may still end: it is closed after its timeout (2 s)
        await wait_until_async(lambda: first.closed, 5, "the previous client closed")
        assert second.endpoints == [f"http://{NODES[n]}:2379" for n in ("lb1", "lb2", "lb4")]
        assert second.timeout == 1.0 and state.cluster == changed.cluster
        # the member key moves to a lease of 9 s; the old lease is revoked once it holds nothing
        key = Keys("truepacs").member("lb1")
        await wait_until_async(lambda: lease in memory.revoked and memory.key_lease.get(key) != lease, 5, "the old lease revoked")
        assert memory.leases[memory.key_lease[key]] == 9 and member(memory) is not None and state.runs == 1
        assert len(state._tasks) == 3 and not any(t.done() for t in state._tasks)  # follow, heartbeat, partition run on
    finally:
        await state.stop()
    assert member(memory) is None  # stop revoked the lease: the member key went at once


async def test_the_partition_verdict_counts_the_new_node_list(tmp_path: Path, memory: Memory) -> None:
    """Cut off with three nodes (etcd out of reach, no other node answers): withdrawn; the section is changed to two
    nodes (lb3 taken out): a cluster of two is never judged cut off, so the verdict goes and the routing is woken."""
    woken: list[str | None] = []

    async def nobody(addresses: list[str], port: int) -> dict[str, bool]:
        return dict.fromkeys(addresses, False)

    running = config(lease="2s", members=("lb1",))
    state = ClusterState(StatePaths(tmp_path / "lb1"), FakeChanges(running), lambda: (True, "serving"),  # type: ignore[arg-type]
                         reach=nobody)  # fmt: skip
    state.on_partition = lambda: woken.append(state.partitioned)
    memory.down = True
    await state.start(running)
    try:
        state._quorum_at -= 10  # etcd out of reach for longer than the lease
        await state._judge_partition()
        assert state.partitioned is not None and "reaches 0 of the 2 other nodes" in state.partitioned
        await state.applied(config(lease="2s", members=("lb1",), nodes=("lb1", "lb2")))
        await wait_until_async(lambda: state.partitioned is None, 5, "the verdict over two nodes")
        assert woken[-1] is None and len(state.cluster.nodes) == 2
    finally:
        await state.stop()


async def test_a_refused_section_is_never_taken_and_the_watch_never_cancels_itself(tmp_path: Path, memory: Memory) -> None:
    running = config()
    state = ClusterState(StatePaths(tmp_path / "lb1"), FakeChanges(running), lambda: (True, "serving"))  # type: ignore[arg-type]
    await state.start(running)
    try:
        tasks = list(state._tasks)
        await state.take(section(node="lb2"))  # the front door refused it: were it to get here, nothing is taken
        assert state.cluster == running.cluster and state._tasks == tasks
        # a section change heard from inside the watch's own task: taken by a task of its own, not by cancelling it
        follow = tasks[0]
        fourth = config(nodes=("lb1", "lb2", "lb3", "lb4"))

        async def as_follow() -> None:
            state._tasks[0] = asyncio.current_task()  # type: ignore[assignment]
            await state.applied(fourth)  # hands the section to a task of its own and returns without awaiting it
            state._tasks[0] = follow

        await asyncio.get_running_loop().create_task(as_follow())
        await wait_until_async(lambda: state.cluster == fourth.cluster and not state._section_tasks, 5, "the section taken")
        assert len(state._tasks) == 3 and not any(t.done() for t in state._tasks)
    finally:
        await state.stop()


async def test_tls_turned_on_while_running_gives_a_new_client_with_the_nodes_files(tmp_path: Path, memory: Memory) -> None:
    """cluster.etcd.tls added by an apply: the member restarts on its new file (engines/etcd) and the controller's
    client is made again with the node's CA, certificate and key (relative paths from the configuration's folder)."""
    running = config()
    state = ClusterState(StatePaths(tmp_path / "lb1"), FakeChanges(running, tmp_path), lambda: (True, "serving"))  # type: ignore[arg-type]
    await state.start(running)
    try:
        await wait_until_async(lambda: member(memory) is not None, 5, "the member key")
        first = memory.clients[0]
        assert first.tls is None
        secured = load_text(text().replace("  etcd: {lease: 5s, dial_timeout: 2s}",
                                           "  etcd: {lease: 5s, dial_timeout: 2s, tls: {ca: ca.pem, cert: e.pem, key: e.key}}"))  # fmt: skip
        assert secured.ok and secured.config is not None and secured.config.cluster.etcd.tls is not None
        await state.applied(secured.config)
        second = memory.clients[-1]
        assert second is not first and second.endpoints == [u.replace("http://", "https://") for u in first.endpoints]
        assert (second.tls.ca, second.tls.cert, second.tls.key) == (
            f"{tmp_path}/ca.pem",
            f"{tmp_path}/e.pem",
            f"{tmp_path}/e.key",
        )
        await wait_until_async(lambda: first.closed, 5, "the plain client closed once its requests timed out")
    finally:
        await state.stop()
