"""The cluster's operations on one node (issue 20; docs/cluster.md "Status", "Drain", etcd's membership): what
`pacslb cluster status|drain|undrain|join|leave|members|rejoin`, the management API and the WebUI's Cluster page ask
of the cluster's state. A mixin of ClusterState (state.py), which owns the etcd client, the keys, the section and
what this node runs; these methods read and write etcd's keys and answer (HTTP status, body).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..model.cluster import Cluster
from . import members
from .etcd import EtcdClient, EtcdError
from .keys import Keys, decode_json

NOT_A_NODE = "this appliance is not a cluster node (no cluster section)"


class ClusterOperations:
    """What the operations read of the cluster's state; ClusterState (state.py) sets them and provides `_apply`
    (a revision applied here) and `_connection` (the etcd URLs and this node's TLS files)."""

    cluster: Cluster | None
    client: EtcdClient | None
    keys: Keys | None
    runs: int
    error: str | None
    drained: bool
    left: bool
    partition: str | None
    member_engine: Any

    async def status(self) -> dict[str, Any]:
        """Every node of the cluster: address, online, health, the revision it runs, drained, left, VIPs."""
        cluster = self.cluster
        if cluster is None or self.client is None or self.keys is None:
            return {"configured": False}
        keys = self.keys
        members: dict[str, dict] = {}
        drains: set[str] = set()
        lefts: set[str] = set()
        latest: int | None = None
        etcd_error = None
        try:
            found, _ = await self.client.get_prefix(keys.members)
            members = {n: decode_json(v) or {} for k, v in found.items() if (n := keys.node_of(k, keys.members))}
            found, _ = await self.client.get_prefix(keys.drains)
            drains = {n for k in found if (n := keys.node_of(k, keys.drains))}
            found, _ = await self.client.get_prefix(keys.lefts)
            lefts = {n for k in found if (n := keys.node_of(k, keys.lefts))}
            value, _ = await self.client.get(keys.revision)
            latest = int(value) if value else 0
        except (EtcdError, ValueError) as exc:
            etcd_error = str(exc)
        nodes = []
        for node in cluster.nodes:
            member = members.get(node.name)
            nodes.append({
                "name": node.name, "address": str(node.address), "etcd_member": node.etcd_member,
                "online": member is not None if etcd_error is None else None,
                "healthy": member.get("healthy") if member else None, "health": member.get("health") if member else None,
                "revision": member.get("revision") if member else None, "error": member.get("error") if member else None,
                "drained": node.name in drains if etcd_error is None else None,
                "left": node.name in lefts if etcd_error is None else None,
                "vips": member.get("vips") if member else None, "seen_at": member.get("at") if member else None,
                "sessions": member.get("sessions") if member else None,
            })  # fmt: skip
        return {"configured": True, "cluster": cluster.name, "node": cluster.node, "latest_revision": latest,
                "runs": self.runs, "error": self.error, "drained": self.drained, "left": self.left,
                "partition": self.partition, "on_partition": cluster.on_partition,
                "etcd": {"endpoints": self.client.endpoints, "reachable": etcd_error is None, "error": etcd_error},
                "nodes": nodes}  # fmt: skip

    async def drain(self, node: str, drained: bool) -> tuple[int, dict[str, Any]]:
        """Drain (or return) `node`: its drain key; the node itself withdraws its VIPs when it sees it."""
        cluster = self.cluster
        if cluster is None or self.client is None or self.keys is None:
            return _refused(409, NOT_A_NODE)
        if node not in {n.name for n in cluster.nodes}:
            return 404, {"ok": False, "outcome": "not-found", "message": f"there is no node {node!r} in cluster {cluster.name} "
                         f"(nodes: {', '.join(n.name for n in cluster.nodes)})"}  # fmt: skip
        try:
            if drained:
                await self.client.put(self.keys.drain(node), json.dumps({"at": time.time(), "by": cluster.node}))
            else:
                await self.client.delete(self.keys.drain(node))
        except EtcdError as exc:
            return _refused(503, f"the cluster's etcd cannot take it ({exc}): nothing was changed")
        what = "drained: it withdraws its VIPs" if drained else "back from drain: it announces its VIPs again"
        return 200, {"ok": True, "node": node, "drained": drained, "message": f"node {node} {what}"}

    async def leave(self) -> tuple[int, dict[str, Any]]:
        """This node leaves: drained, it takes no further revision (it keeps serving nothing new)."""
        return await self._membership(True)

    async def join(self) -> tuple[int, dict[str, Any]]:
        """This node (back) in the cluster: no longer left nor drained; it applies the latest revision."""
        return await self._membership(False)

    async def _membership(self, leaving: bool) -> tuple[int, dict[str, Any]]:
        cluster = self.cluster
        if cluster is None or self.client is None or self.keys is None:
            return _refused(409, NOT_A_NODE)
        me = cluster.node
        try:
            if leaving:
                await self.client.put(self.keys.drain(me), json.dumps({"at": time.time(), "by": me}))
                await self.client.put(self.keys.left(me), json.dumps({"at": time.time()}))
            else:
                await self.client.delete(self.keys.left(me))
                await self.client.delete(self.keys.drain(me))
                value, _ = await self.client.get(self.keys.config)
                self.left = False
                if value is not None and (record := decode_json(value)) is not None:
                    await self._apply(record)
        except EtcdError as exc:
            return _refused(503, f"the cluster's etcd cannot take it ({exc}): nothing was changed")
        if leaving:
            return 200, {"ok": True, "message": f"node {me} left the cluster: drained, it takes no further revision"}
        return 200, {"ok": True, "message": f"node {me} joined: it runs cluster revision {self.runs}"}

    # --- etcd's membership: members, rejoin (members.py) ----------------------------------------------------

    async def members(self) -> tuple[int, dict[str, Any]]:
        """etcd's members: name, ID, peer and client URLs, started, leader."""
        if self.cluster is None or self.client is None:
            return _refused(409, NOT_A_NODE)
        code, answer = await members.members(self.client)
        if self.member_engine is not None:  # this node's member waits for a rejoin, or is catching up after one
            detail = self.member_engine.observe().detail
            answer["this_node"] = {"name": self.cluster.node, "needs_rejoin": bool(detail.get("needs_rejoin")),
                                   "rejoining": bool(detail.get("rejoining"))}  # fmt: skip
        return code, answer

    async def rejoin(self, force: bool = False) -> tuple[int, dict[str, Any]]:
        """This node's etcd member back in the cluster on an empty data directory (its data lost or corrupt)."""
        if self.cluster is None or self.member_engine is None:
            return _refused(409, NOT_A_NODE)
        return await members.rejoin(self.cluster, self.member_engine, self._connection(self.cluster)[1], force)


def _refused(code: int, message: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and answer of a cluster request refused (drain, leave, join): nothing was changed."""
    return code, {"ok": False, "outcome": "refused", "message": message}
