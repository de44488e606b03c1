"""A change of the `cluster` section while the controller runs (issue 20; docs/cluster.md, "Changing the `cluster`
section"): what a running node takes, and what it refuses with the way to do it instead.

The section is node-local (model/ha.py `NODE_LOCAL`): each node's file has its own, and a change of it is made on
each node with `pacslb apply`. A running node takes a change of the section that keeps it the same node of the same
cluster: `nodes` (a node added or removed), `etcd` (ports, `dial_timeout`, `lease`), `bgp`, `peers_port`,
`on_partition`. The engines render the new section in the change's transaction (BIRD, etcd, HAProxy's peers) and the
cluster's state takes it when it is applied (cluster/state.py `ClusterState.applied`: a new etcd client on the new
endpoints, a new lease, the partition verdict over the new node list).

What it refuses, before any engine is touched and before anything is written to etcd (a precondition of the change
front door, change/service.py), because each one is a different identity, not a different setting:
  - `cluster.name` or `cluster.node` changed: the node's keys in etcd (its member key, drain key, the cluster's
    revisions) and the cluster revision it runs belong to the old name;
  - a `cluster` section added to a running single node, or removed from a running cluster node: the cluster's state
    runs (or not) from the controller's start, with the API and WebUI it serves.
Each refusal names the field and the fix: `pacslb stop`, edit the file, `pacslb up`, and what the node does at that
start. A node that is in an HA pair and a cluster at once is refused by the model already (model/cluster.py).

    refusal(old, new) -> str | None       why a running node refuses going from `old` to `new` (pure)
    taken(old, new) -> list[str]          the fields of the section a running node takes from the change (pure)
    ClusterSection                        the precondition of the change front door (change/service.py `Precondition`)
"""

from __future__ import annotations

from ..model import Config
from ..model.cluster import Cluster
from ..model.problems import Problem

NOTHING = "nothing was changed"
# the fields of the section a running node takes (ClusterState.applied) in the order docs/cluster.md lists them
LIVE_FIELDS = ("nodes", "etcd", "bgp", "peers_port", "on_partition")


def _joining(new: Cluster) -> Problem:
    return Problem("cluster", f"adds a `cluster` section to a running single node: joining cluster {new.name} as node "
                   f"{new.node} takes a restart: `pacslb stop`, keep the section in the file, `pacslb up`. At that start "
                   "the node starts its etcd member (when it is one) and BIRD, and follows the cluster: when etcd holds no "
                   "revision yet its configuration becomes cluster revision 1, otherwise it applies the cluster's latest "
                   f"revision in place of its own file (its node-local sections stay its own); {NOTHING}")  # fmt: skip


def _leaving(old: Cluster) -> Problem:
    return Problem("cluster", f"is missing, but this node is node {old.node} of cluster {old.name}: keep this node's "
                   "`cluster` section in the file (it is node-local: each node's file has its own), or take the node out "
                   f"of the cluster with a restart: `pacslb cluster drain {old.node}` (its flows move to the other nodes), "
                   "`pacslb stop` (its VIPs withdrawn, its etcd member and BIRD stopped), remove the section from the "
                   "file, `pacslb up`. At that start it runs as a single node on its own file and revision store: no "
                   "etcd, no BGP (its VIPs on settings.network.interface when one is named). Then remove it from "
                   "`cluster.nodes` on the other nodes (and, if it was an etcd member, from etcd's membership with "
                   f"`etcdctl member remove`); {NOTHING}")  # fmt: skip


def _renamed(old: Cluster, new: Cluster) -> Problem:
    moved = [f"cluster.{field}" for field in ("name", "node") if getattr(old, field) != getattr(new, field)]
    said = {"cluster.name": f"cluster {old.name} -> {new.name}", "cluster.node": f"node {old.node} -> {new.node}"}
    return Problem(", ".join(moved), f"{'; '.join(said[m] for m in moved)}: which cluster this is and which node of it "
                   "this node is are read at the controller's start (its member, drain and revision keys in etcd, the "
                   "cluster revision it runs, BIRD's router ID); a running node does not change them: `pacslb stop`, "
                   "edit the file, `pacslb up`, which starts the node as that node of that cluster and applies the "
                   f"cluster's latest revision; {NOTHING}")  # fmt: skip


def refusal_problem(old: Cluster | None, new: Cluster | None) -> Problem | None:
    """The problem (field path and fix) of going from `old` to `new` on a running node, or None when it takes it."""
    if old is None and new is None:
        return None
    if old is None:
        assert new is not None
        return _joining(new)
    if new is None:
        return _leaving(old)
    if old.name != new.name or old.node != new.node:
        return _renamed(old, new)
    return None


def refusal(old: Cluster | None, new: Cluster | None) -> str | None:
    """Why a running node refuses going from cluster section `old` to `new` ("path: message"), or None."""
    problem = refusal_problem(old, new)
    return str(problem) if problem is not None else None


def taken(old: Cluster | None, new: Cluster | None) -> list[str]:
    """The dotted fields of the section that differ and that a running node takes (none when it refuses the change)."""
    if old is None or new is None or refusal(old, new) is not None:
        return []
    return [f"cluster.{name}" for name in LIVE_FIELDS if getattr(old, name) != getattr(new, name)]


class ClusterSection:
    """The change front door's precondition (change/service.py `Precondition`): refuse a change of the `cluster`
    section that a running node cannot take, before any engine commits and before the change is written to etcd.
    It takes nothing, so it gives nothing back."""

    async def prepare(self, old: Config, new: Config) -> str | None:
        return refusal(old.cluster, new.cluster)

    async def release(self, running: Config) -> None:
        return None
