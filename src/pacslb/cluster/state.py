"""The cluster's state in etcd, on one node (issue 20; docs/cluster.md "etcd"): a subsystem of the appliance.

  publish    the change front door (change/service.py `Changes`) calls it for every change after it validated and
             before any engine commits: every engine's checker runs first, then a change of the shared configuration
             becomes cluster revision N+1 by a compare-and-swap on the revision counter (keys.py), N being the
             latest revision this node took or refused. Another node's
             change that landed first makes it a 409 (Outcome.CONFLICT), like a stale base revision; etcd without
             quorum makes it a refusal that says so. Nothing runs differently until etcd took it.
  follow     one watch on the cluster's keys: every node (the writer too) applies each new revision through
             `Changes` in its own transaction (kind "cluster"), with its own node-local sections put back
             (shared.py), records it in its local revision store as every change is recorded, and
             remembers the cluster revision it runs (<state>/cluster/applied.json). A revision this node cannot
             apply leaves the previous one running; the failure is in its member key. On start and on every
             reconnection it reads the latest revision first and applies it when it runs another.
  heartbeat  this node's member key, bound to a lease it renews: name, address, health, the revision it runs,
             its last failure, drained, and the VIPs it announces when the routing half reports them.
  drain      `drain/<node>` keys; the node named applies its own through `drain_routing` (the seam with the
             routing half: Appliance._drain_routing).
  live       a change of this node's `cluster` section while it runs (live.py): `applied` takes the new section (a new
             etcd client on the new endpoints, a new lease, the partition verdict over the new node list); what it
             cannot take (`name`, `node`, the section added or removed) the change front door refused before.
  partition  when the member key could not be renewed for the lease's time, the other nodes are probed
             (partition.py): a node that reaches no majority of the cluster is cut off, and the routing half
             withdraws its VIPs (`partitioned`, `on_partition` wakes it) unless `cluster.on_partition` is keep-serving.

Without a `cluster` section none of this runs, and `publish` answers None at once: a single node and an HA pair
keep their SQLite store alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from typing import Any, Awaitable, Callable

from .. import files as atomic
from ..change.result import ChangeResult, Outcome
from ..change.service import Changes, Origin
from ..engines.contract import EngineError
from ..model import Config
from ..model.cluster import Cluster
from ..paths import StatePaths
from ..serving import SubsystemError
from .etcd import EtcdClient, EtcdError
from .keys import MAX_VALUE_BYTES, Keys, decode_json, new_revision_txn, shared_digest, txn_outcome
from .live import refusal, taken
from .operations import ClusterOperations
from .partition import reach, verdict
from .shared import merge_own, shared_data

log = logging.getLogger("pacslb.cluster")

CLUSTER_KIND = "cluster"  # the kind of a local revision that applies a cluster revision (never published again)
RETRY_MIN, RETRY_MAX = 0.2, 2.0  # pause before reading etcd again after it failed (growing)

DrainRouting = Callable[[bool], "Awaitable[None] | None"]
Healthy = Callable[[], tuple[bool, str]]
Vips = Callable[[], "list[str] | None"]
Reach = Callable[[list[str], int], Awaitable[dict[str, bool]]]


def endpoints(cluster: Cluster) -> list[str]:
    from ..engines.etcd.render import client_urls  # the URLs the members listen on, rendered once

    return client_urls(cluster)


def lease_ttl(cluster: Cluster) -> int:
    """The TTL in whole seconds of this node's membership lease (etcd counts leases in seconds; 2 at the least)."""
    return max(2, round(cluster.etcd.lease.seconds))


class ClusterState(ClusterOperations):
    name = "cluster"

    def __init__(self, paths: StatePaths, changes: Changes, healthy: Healthy, drain_routing: DrainRouting | None = None,
                 vips: Vips | None = None, on_partition: Callable[[], None] | None = None,
                 sessions: Callable[[], dict | None] | None = None,
                 reach: Reach = reach, member_engine: Any = None) -> None:  # fmt: skip
        self.paths = paths
        self.member_engine = member_engine  # this node's etcd engine: `pacslb cluster rejoin` restarts it (members.py)
        self.changes = changes
        self.healthy = healthy
        self.drain_routing = drain_routing
        self.vips = vips
        self.sessions = sessions  # this node's BGP and BFD sessions (sessions.py summary), for its member key
        self.on_partition = on_partition  # the routing half looks again when the verdict changes
        self._reach = reach
        self.partition: str | None = None  # why this node counts as cut off from the cluster (partition.py), or None
        self._quorum_at = time.monotonic()  # when this node last wrote to etcd (its member key)
        self.cluster: Cluster | None = None
        self.keys: Keys | None = None
        self.client: EtcdClient | None = None
        self.runs = 0  # the cluster revision this node runs (0: none yet)
        self.runs_digest: str | None = None
        self.error: str | None = None  # why the latest revision does not run here
        self.etcd_error: str | None = None  # why etcd cannot be read now
        self.drained = False
        self.left = False
        self.latest = 0  # the latest cluster revision seen
        self.seen = 0  # the latest cluster revision this node applied or failed to apply
        self._published: tuple[int, str] | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._report = asyncio.Event()  # the member key is due now (a revision applied, drained)
        self._lease: int | None = None
        self._connected: tuple[list[str], Any] | None = None  # what the client was made with (endpoints, TLS files)
        self._retired_lease: int | None = None  # the lease of a previous `cluster.etcd.lease`: revoked once replaced
        self._section_tasks: set[asyncio.Task] = set()

    # --- the record of what runs ------------------------------------------------------------------------

    def _load(self) -> None:
        found = decode_json((atomic.read_text(self.paths.cluster_dir / "applied.json") or "").encode())
        if found and found.get("cluster") == (self.cluster.name if self.cluster else None):
            self.runs = self.seen = int(found.get("revision") or 0)
            self.runs_digest = found.get("digest")

    def _save(self) -> None:
        self.paths.cluster_dir.mkdir(parents=True, exist_ok=True)
        record = {"cluster": self.cluster.name if self.cluster else None, "revision": self.runs, "digest": self.runs_digest}
        atomic.atomic_write(self.paths.cluster_dir / "applied.json", json.dumps(record) + "\n")

    def _runs(self, number: int, digest: str) -> None:
        self.runs, self.runs_digest, self.error = number, digest, None
        self.seen = max(self.seen, number)
        self.latest = max(self.latest, number)
        self._save()
        self._report.set()

    # --- publish: the change front door's hook ---------------------------------------------------------

    async def publish(self, old: Config, new: Config, origin: Origin, kind: str,
                      check: Callable[[], Awaitable[None]] | None = None) -> ChangeResult | None:  # fmt: skip
        """Called under the change gate before any engine commits: None to go on, or the answer that refuses.
        `check` runs every engine's checker first: what an engine refuses here is never written to etcd."""
        if new.cluster is None or self.client is None or self.keys is None or kind == CLUSTER_KIND:
            return None
        shared = shared_data(new)
        digest = shared_digest(shared)
        if digest == shared_digest(shared_data(old)):
            return None  # node-local sections only: nothing of the cluster's changes
        if self.left:
            return ChangeResult(Outcome.REFUSED, "this node left the cluster (`pacslb cluster join` brings it back): "
                                "make the change on a node of the cluster; nothing was changed")  # fmt: skip
        if check is not None:
            try:
                await check()
            except EngineError as exc:
                return ChangeResult(Outcome.REFUSED, f"{exc.summary}: nothing was changed, nothing was written to the cluster",
                                    messages=list(exc.messages))  # fmt: skip
        # the latest revision this node has taken or refused: a revision that no node can run is replaced by the
        # next change, instead of making every change after it a conflict
        expected = max(self.runs, self.seen)
        record = {"revision": expected + 1, "config": shared, "digest": digest, "author": origin.author,
                  "via": origin.via, "node": new.cluster.node, "kind": kind, "at": time.time()}  # fmt: skip
        size = len(json.dumps(record))
        if size > MAX_VALUE_BYTES:
            return ChangeResult(Outcome.REFUSED, f"the configuration is {size} bytes as JSON, more than etcd takes in one "
                                f"value ({MAX_VALUE_BYTES} bytes): nothing was changed")  # fmt: skip
        try:
            answer = await self.client.txn(new_revision_txn(self.keys, expected, record))
        except EtcdError as exc:
            if exc.uncertain:  # etcd may commit it once quorum returns: then every node applies it, this one too
                return ChangeResult(Outcome.REFUSED, f"the cluster's etcd did not confirm the change in time ({exc}): "
                                    "nothing was changed on this node; etcd may still commit it when its quorum returns, "
                                    "and every node then applies it as the next revision: look at `pacslb cluster "
                                    "status` before making it again", extra={"uncertain": True})  # fmt: skip
            return ChangeResult(Outcome.REFUSED, f"the cluster's etcd cannot take the change ({exc}): nothing was changed; "
                                f"every node keeps serving the revision it runs (this one: cluster revision {expected})")  # fmt: skip
        won, current = txn_outcome(answer)
        if not won:
            self.latest = max(self.latest, current or 0)
            return ChangeResult(Outcome.CONFLICT, f"another node's change landed first: the cluster is at revision {current}, "
                                f"this node is at cluster revision {expected}; nothing was changed: make the change again "
                                "on top of the latest revision", extra={"cluster_revision": current,
                                "base_cluster_revision": expected})  # fmt: skip
        self._published = (expected + 1, digest)
        self.latest = max(self.latest, expected + 1)
        log.info("cluster revision %d written to etcd by %s", expected + 1, origin.author)
        return None

    # --- follow: apply every revision -------------------------------------------------------------------

    async def _apply(self, record: dict[str, Any]) -> None:
        number = int(record.get("revision") or 0)
        digest = str(record.get("digest") or "")
        self.latest = max(self.latest, number)
        if self.left or (number == self.runs and digest == self.runs_digest) or self.changes.config.cluster is None:
            return  # left; already runs it; or the cluster section was removed here (it takes effect at the next start)
        if shared_digest(shared_data(self.changes.config)) == digest:
            self._runs(number, digest)  # it runs already (this node wrote it, or applied it before a restart)
            return
        merged = merge_own(record.get("config") or {}, self.changes.config)
        author = str(record.get("author") or "pacslb")[:200]
        result = await self.changes.apply(
            data=merged, origin=Origin(author, CLUSTER_KIND),
            message=f"cluster revision {number} from node {record.get('node')}"[:2000], kind=CLUSTER_KIND,
            action="cluster.apply", target=f"cluster revision {number}",
        )  # fmt: skip
        if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            self._runs(number, digest)
            log.info("cluster revision %d runs here (%s)", number, result.message)
            return
        self.seen = max(self.seen, number)
        problems = "; ".join(str(p) for p in result.problems[:5])
        self.error = f"cluster revision {number} cannot run here: {result.message}" + (f" ({problems})" if problems else "")
        log.error("%s; cluster revision %d keeps serving", self.error, self.runs)
        self._report.set()

    async def _bootstrap(self, config: Config) -> None:
        """No revision in etcd yet: this node's configuration becomes revision 1 (one node wins; the others apply it)."""
        assert self.client is not None and self.keys is not None and config.cluster is not None
        shared = shared_data(config)
        record = {"revision": 1, "config": shared, "digest": shared_digest(shared), "author": "pacslb", "via": "startup",
                  "node": config.cluster.node, "kind": "bootstrap", "at": time.time()}  # fmt: skip
        won, _ = txn_outcome(await self.client.txn(new_revision_txn(self.keys, 0, record)))
        if won:
            log.info("the cluster had no revision: this node's configuration is cluster revision 1")

    async def _follow(self) -> None:
        assert self.client is not None and self.keys is not None and self.cluster is not None
        keys, me, pause = self.keys, self.cluster.node, RETRY_MIN
        while not self._stopping.is_set():
            try:
                value, at = await self.client.get(keys.config)
                if value is None:
                    await self._bootstrap(self.changes.config)
                    continue
                drained, _ = await self.client.get(keys.drain(me))
                await self._set_drained(drained is not None)
                gone, _ = await self.client.get(keys.left(me))
                self.left = gone is not None
                if (record := decode_json(value)) is not None:
                    await self._apply(record)
                self.etcd_error, pause = None, RETRY_MIN
                async for event, key, found in self.client.watch_prefix(keys.root, at + 1):
                    if key == keys.config and event == "PUT" and (record := decode_json(found)) is not None:
                        await self._apply(record)
                    elif key == keys.drain(me):
                        await self._set_drained(event == "PUT")
                    elif key == keys.left(me):
                        self.left = event == "PUT"
                        self._report.set()
            except EtcdError as exc:
                if self.etcd_error != str(exc):
                    log.warning("etcd: %s", exc)
                self.etcd_error = str(exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=pause)
            pause = min(pause * 2, RETRY_MAX)

    async def _set_drained(self, drained: bool) -> None:
        if drained == self.drained:
            return
        self.drained = drained
        log.warning("this node is %s", "drained: its VIPs are withdrawn" if drained else "back from drain: it announces again")
        if self.drain_routing is not None:
            try:
                outcome = self.drain_routing(drained)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("the routing could not be told of the drain")
        self._report.set()

    # --- heartbeat: this node's member key ---------------------------------------------------------------

    async def member_record(self) -> dict[str, Any]:
        assert self.cluster is not None
        ok, why = await asyncio.to_thread(self.healthy)
        node = self.cluster.this_node
        return {"name": node.name, "address": str(node.address), "healthy": ok, "health": why, "revision": self.runs,
                "error": self.error, "drained": self.drained, "left": self.left, "at": time.time(),
                "vips": self.vips() if self.vips is not None else None,
                "sessions": self.sessions() if self.sessions is not None else None}  # fmt: skip

    async def _heartbeat(self) -> None:
        assert self.client is not None and self.keys is not None and self.cluster is not None
        ttl = lease_ttl(self.cluster)
        period = ttl / 3
        while not self._stopping.is_set():
            self._report.clear()
            try:
                if self._lease is not None and await self.client.keepalive(self._lease) <= 0:
                    self._lease = None  # it expired (etcd was away longer than its TTL): a new one
                if self._lease is None:
                    self._lease = await self.client.grant(ttl)
                await self.client.put(self.keys.member(self.cluster.node), json.dumps(await self.member_record()), self._lease)
                self._quorum_at = time.monotonic()  # a put commits only with quorum
                if self._retired_lease is not None:  # the member key is on the new lease: the old one holds nothing
                    with contextlib.suppress(EtcdError):
                        await self.client.revoke(self._retired_lease)
                    self._retired_lease = None
                await self._judge_partition()
            except EtcdError as exc:
                self.etcd_error = str(exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._report.wait(), timeout=period)

    # --- partition: is this node cut off from the others? ------------------------------------------------

    @property
    def partitioned(self) -> str | None:
        """Why the routing should withdraw this node's VIPs as cut off from the cluster (None: it should not)."""
        if self.cluster is None or self.cluster.on_partition != "withdraw":
            return None
        return self.partition

    async def _judge_partition(self) -> None:
        """Probe the other nodes when etcd has been out of reach for the lease's time; tell the routing of a change."""
        assert self.cluster is not None
        cluster = self.cluster
        lost_for = time.monotonic() - self._quorum_at
        grace = cluster.etcd.lease.seconds
        found: dict[str, bool] = {}
        if lost_for >= grace:
            others = [str(n.address) for n in cluster.nodes if n.name != cluster.node]
            found = await self._reach(others, cluster.peers_port)
        reason = verdict(len(cluster.nodes), found, lost_for if lost_for >= grace else None, grace)
        if reason == self.partition:
            return
        if reason is not None:
            log.error("%s%s", reason, ": its VIPs are withdrawn" if cluster.on_partition == "withdraw"
                      else " (cluster.on_partition: keep-serving: it keeps announcing)")  # fmt: skip
        elif self.partition is not None:
            log.warning("this node reaches the cluster again: no longer partitioned")
        self.partition = reason
        if self.on_partition is not None:
            self.on_partition()

    async def _watch_partition(self) -> None:
        """The verdict's clock: the heartbeat may hang in etcd calls for seconds while the node is cut off."""
        assert self.cluster is not None
        period = max(0.5, self.cluster.etcd.lease.seconds / 3)
        while not self._stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=period)
            if time.monotonic() - self._quorum_at >= self.cluster.etcd.lease.seconds or self.partition is not None:
                try:
                    await self._judge_partition()
                except Exception:
                    log.exception("the partition verdict could not be made; next look in %gs", period)

    # --- the subsystem -----------------------------------------------------------------------------------

    async def start(self, config: Config) -> None:
        cluster = config.cluster
        assert cluster is not None
        self.cluster, self.keys = cluster, Keys(cluster.name)
        self._connected = self._connection(cluster)  # the members' URLs; this node's certificate, key and CA, if any
        try:
            self.client = EtcdClient(self._connected[0], timeout=cluster.etcd.dial_timeout.seconds, tls=self._connected[1])
        except EtcdError as exc:
            raise SubsystemError(f"cluster {cluster.name}: {exc}") from None
        await asyncio.to_thread(self._load)
        self._stopping.clear()
        self._quorum_at = time.monotonic()
        self._run_tasks()
        log.info("cluster %s: node %s, etcd at %s", cluster.name, cluster.node, ", ".join(self.client.endpoints))

    def _run_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow()), loop.create_task(self._heartbeat()),
                       loop.create_task(self._watch_partition())]  # fmt: skip

    async def applied(self, config: Config) -> None:
        """A configuration runs: when it is the revision this node just published, it runs that revision; when this
        node's `cluster` section changed (live.py), the cluster's state takes it."""
        if self._published is not None:
            number, digest = self._published
            self._published = None
            if shared_digest(shared_data(config)) == digest:
                self._runs(number, digest)
        if config.cluster is None or self.cluster is None or config.cluster == self.cluster or not self._tasks:
            return
        if asyncio.current_task() in self._tasks:  # a revision applied by the watch itself: never cancel oneself
            self._keep(asyncio.get_running_loop().create_task(self.take(config.cluster)))
            return
        await self.take(config.cluster)

    def _connection(self, cluster: Cluster) -> tuple[list[str], Any]:
        from ..engines.etcd.render import tls_files

        return endpoints(cluster), tls_files(cluster, self.changes.base_dir) if cluster.etcd.tls is not None else None

    def _keep(self, task: asyncio.Task) -> None:
        """A task of a section change, held until it ends (stop cancels it)."""
        self._section_tasks.add(task)
        task.add_done_callback(self._section_tasks.discard)

    async def take(self, new: Cluster) -> None:
        """Take a changed `cluster` section of the running node: the follow, heartbeat and partition tasks start again
        on it, with a new etcd client when the endpoints or `dial_timeout` changed and a new lease when its TTL did
        (the member key moves to it, then the old lease is revoked). The partition verdict counts the new node list
        at its next look. A change live.py refuses (another cluster or node) never gets here: the front door refused."""
        old = self.cluster
        assert old is not None and self.client is not None
        if reason := refusal(old, new):  # the precondition refused it before any engine ran it
            log.error("the cluster's state keeps its section: %s", reason)
            return
        fields = taken(old, new)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.cluster = new
        connection = self._connection(new)  # the members' URLs and this node's TLS files (cluster.etcd.tls)
        if connection != self._connected or new.etcd.dial_timeout != old.etcd.dial_timeout:
            try:
                fresh = EtcdClient(connection[0], timeout=new.etcd.dial_timeout.seconds, tls=connection[1])
            except EtcdError as exc:  # a TLS file it cannot use: the model checked them, the disk may have changed since
                log.error("the changed cluster.etcd cannot be used (%s): this node reaches etcd as before", exc)
            else:
                previous, self.client, self._connected = self.client, fresh, connection
                # a status, drain or join request may be in flight on the previous client: closed once they timed out
                self._keep(asyncio.get_running_loop().create_task(_close_later(previous, previous.timeout)))
        if lease_ttl(new) != lease_ttl(old) and self._lease is not None:
            # etcd cannot change a lease's TTL: the heartbeat grants a new one, puts the member key on it, revokes this
            self._retired_lease, self._lease = self._lease, None
        if not self._stopping.is_set():
            self._run_tasks()
        self._report.set()  # the member key at once, with the new section's address and lease
        log.info("cluster %s: node %s takes the changed %s; etcd at %s, %d nodes", new.name, new.node,
                 ", ".join(fields) or "section", ", ".join(self.client.endpoints), len(new.nodes))  # fmt: skip

    async def stop(self) -> None:
        self._stopping.set()
        for task in [*self._tasks, *self._section_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._section_tasks, return_exceptions=True)
        self._tasks = []
        if self.client is not None:
            for lease in (self._lease, self._retired_lease):  # the member key goes at once, not when the lease runs out
                if lease is not None:
                    with contextlib.suppress(EtcdError):
                        await self.client.revoke(lease)
            self._lease = self._retired_lease = None
            await self.client.close()
            self.client = None


async def _close_later(client: EtcdClient, delay: float) -> None:
    """Close `client` after `delay` seconds, or at once when cancelled (the controller stops)."""
    try:
        await asyncio.sleep(delay)
    finally:
        await client.close()
