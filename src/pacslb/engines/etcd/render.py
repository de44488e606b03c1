"""etcd.conf.yml of this node's etcd member (pure: the cluster section in, the text out).

One member per node with `etcd_member: true`, named as the node, listening on the node's own address only
(never 0.0.0.0), its data in the state directory. `initial-cluster` lists every member; etcd reads it only when it
bootstraps an empty data directory (afterwards the membership is in the data: `etcdctl member add/remove`).
`initial-cluster-state` is `new` (the members bootstrap the cluster together), or `existing` for a member that
joins a running cluster on an empty data directory: `pacslb cluster rejoin` (cluster/members.py) asks for it
through the engine's marker file (engines/etcd/engine.py).
The cluster token is the cluster's name, so that two clusters on one network never join each other's members.

With `cluster.etcd.tls` (docs/cluster.md, "etcd over TLS") every URL is https, and the member serves its client
and peer ports with the node's certificate and accepts only clients and peers whose certificate the cluster CA
signed (client-cert-auth on both: etcd 3.4's `--cert-file/--key-file/--trusted-ca-file/--client-cert-auth` and
their `--peer-` twins, which its configuration file spells as `client-transport-security` and
`peer-transport-security`). Every node of a cluster uses TLS or none does: a member cannot speak to a peer of the
other kind. Without it the members and clients speak plain HTTP on the nodes' addresses: the network between the
nodes must then be the management network, not one clients reach.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from ...model.cluster import Cluster, ClusterNode

HEARTBEAT_MS = 100  # etcd's defaults; a node is a member of a LAN cluster, not a WAN one
ELECTION_MS = 1000


def url(address: str, port: int, tls: bool = False) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{'https' if tls else 'http'}://{host}:{port}"


def client_urls(cluster: Cluster) -> list[str]:
    """Every member's client URL, this node's own first (a client prefers the member beside it)."""
    members = sorted(cluster.etcd_members, key=lambda n: n.name != cluster.node)
    return [url(n.address, cluster.etcd.client_port, cluster.etcd.tls is not None) for n in members]


def initial_cluster(cluster: Cluster) -> str:
    tls = cluster.etcd.tls is not None
    return ",".join(f"{n.name}={url(n.address, cluster.etcd.peer_port, tls)}" for n in cluster.etcd_members)


@dataclass(frozen=True)
class TLSFiles:
    """This node's etcd TLS files as absolute paths (etcd runs in its state directory; the controller anywhere)."""

    ca: str
    cert: str
    key: str


def tls_files(cluster: Cluster, base_dir: PurePath | None) -> TLSFiles | None:
    """`cluster.etcd.tls` resolved like every configured file: relative to the configuration file's folder."""
    tls = cluster.etcd.tls
    if tls is None:
        return None
    found = []
    for value in tls.files:
        path = PurePath(value)
        if not path.is_absolute():
            assert base_dir is not None, "a relative tls path needs the configuration file's folder"
            path = base_dir / path
        found.append(str(path))
    return TLSFiles(*found)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _transport(section: str, files: TLSFiles) -> list[str]:
    return [
        f"{section}:",
        f"  cert-file: {_quote(files.cert)}",
        f"  key-file: {_quote(files.key)}",
        f"  trusted-ca-file: {_quote(files.ca)}",
        "  client-cert-auth: true",  # only certificates the cluster CA signed: a client or peer without one is refused
        "  auto-tls: false",
    ]


INITIAL_STATES = ("new", "existing")


def render_conf(cluster: Cluster, data_dir: PurePosixPath, base_dir: PurePath | None = None, initial_state: str = "new") -> str:
    """The member's configuration file (etcd --config-file); this node must be an etcd member. `base_dir`: the
    configuration file's folder, where relative `cluster.etcd.tls` paths start. `initial_state`: `new`, or
    `existing` when this member joins a running cluster on an empty data directory (a rejoin)."""
    node: ClusterNode = cluster.this_node
    assert node.etcd_member, "only an etcd member runs etcd"
    assert initial_state in INITIAL_STATES, initial_state
    tls = tls_files(cluster, base_dir)
    peer = url(node.address, cluster.etcd.peer_port, tls is not None)
    client = url(node.address, cluster.etcd.client_port, tls is not None)
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
        f"initial-cluster-state: {_quote(initial_state)}",
        f"heartbeat-interval: {HEARTBEAT_MS}",
        f"election-timeout: {ELECTION_MS}",
        "enable-v2: false",
        "enable-grpc-gateway: true",  # the JSON gateway cluster/etcd.py speaks (a config file's default is false)
        "logger: 'zap'",
        "log-outputs: ['stderr']",
    ]
    if tls is not None:
        lines += _transport("client-transport-security", tls) + _transport("peer-transport-security", tls)
    return "\n".join(lines) + "\n"
