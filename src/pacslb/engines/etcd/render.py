"""etcd.conf.yml of this node's etcd member (pure: the cluster section in, the text out).

One member per node with `etcd_member: true`, named as the node, listening on the node's own address only
(never 0.0.0.0), its data in the state directory. `initial-cluster` lists every member; etcd reads it only when it
bootstraps an empty data directory (afterwards the membership is in the data: `etcdctl member add/remove`).
The cluster token is the cluster's name, so that two clusters on one network never join each other's members.

No TLS yet (docs/cluster.md, "etcd"): the members and clients speak plain HTTP on the nodes' addresses; the
network between the nodes must be the management network, not one clients reach.
"""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath

from ...model.cluster import Cluster, ClusterNode

HEARTBEAT_MS = 100  # etcd's defaults; a node is a member of a LAN cluster, not a WAN one
ELECTION_MS = 1000


def url(address: str, port: int) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"http://{host}:{port}"


def client_urls(cluster: Cluster) -> list[str]:
    """Every member's client URL, this node's own first (a client prefers the member beside it)."""
    members = sorted(cluster.etcd_members, key=lambda n: n.name != cluster.node)
    return [url(n.address, cluster.etcd.client_port) for n in members]


def initial_cluster(cluster: Cluster) -> str:
    return ",".join(f"{n.name}={url(n.address, cluster.etcd.peer_port)}" for n in cluster.etcd_members)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_conf(cluster: Cluster, data_dir: PurePosixPath) -> str:
    """The member's configuration file (etcd --config-file); this node must be an etcd member."""
    node: ClusterNode = cluster.this_node
    assert node.etcd_member, "only an etcd member runs etcd"
    peer = url(node.address, cluster.etcd.peer_port)
    client = url(node.address, cluster.etcd.client_port)
    lines = [
        "# pacslb: this node's member of the cluster's etcd (rendered from the cluster section; do not edit)",
        f"name: {_quote(node.name)}",
        f"data-dir: {_quote(str(data_dir))}",
        f"listen-peer-urls: {_quote(peer)}",
        f"initial-advertise-peer-urls: {_quote(peer)}",
        f"listen-client-urls: {_quote(client)}",
        f"advertise-client-urls: {_quote(client)}",
        f"initial-cluster: {_quote(initial_cluster(cluster))}",
        f"initial-cluster-token: {_quote('pacslb-' + cluster.name)}",
        "initial-cluster-state: 'new'",
        f"heartbeat-interval: {HEARTBEAT_MS}",
        f"election-timeout: {ELECTION_MS}",
        "enable-v2: false",
        "enable-grpc-gateway: true",  # the JSON gateway cluster/etcd.py speaks (a config file's default is false)
        "logger: 'zap'",
        "log-outputs: ['stderr']",
    ]
    return "\n".join(lines) + "\n"
