"""What the HA pair (issue 7) and a cluster node (issue 20) change in haproxy.cfg: pure steps after `render.build`.

- `localpeer` and a `peers pacslb` section naming both nodes (by role) at their own addresses, and
  `peers pacslb` on every stick table: source-IP, SSL-session and app-cookie persistence entries are
  pushed to the other node, so a client stays on its real server after a failover (cookie persistence
  needs no table: the cookie names the server, and both nodes have the same servers).
- `transparent` on every bind of a specific address: both nodes bind the VIPs, the backup while the
  address is not (yet) on its interface (IP_TRANSPARENT / IP_FREEBIND), so it serves the moment the
  floating IP arrives.

A cluster node (`cluster:`) gets the same peers, naming every node of the cluster by its name at its own address
and `cluster.peers_port`, so a client keeps its real server whichever node the routers send it to; its VIPs are
on its own `lo` (engines/addresses), so its binds need nothing more.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from ...model.config import Config

PEERS_SECTION = "pacslb"


@dataclass(frozen=True)
class Peers:
    name: str
    peers: tuple[tuple[str, str], ...]  # (peer name, ADDR:PORT)


def _address(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ipaddress.ip_address(address).version == 6 else f"{address}:{port}"


def _nonlocal(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return not ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def apply_ha(view, config: Config):
    """The view with the HA pair's peers and non-local binds; unchanged without an `ha` section."""
    ha = config.ha
    if ha is None:
        return view
    peers = Peers(
        PEERS_SECTION,
        tuple(sorted([(ha.role, _address(ha.address, ha.peers_port)), (ha.peer_role, _address(ha.peer_address, ha.peers_port))])),
    )
    sections = []
    for section in view.sections:
        if section.section == "frontend":
            binds = tuple(replace(b, options=(*b.options, "transparent")) if _nonlocal(b.address) else b for b in section.binds)
            section = replace(section, binds=binds)
        sections.append(section)
    return _with_peers(replace(view, sections=tuple(sections)), ha.role, peers)


def apply_cluster(view, config: Config):
    """The view with a cluster node's peers (every node of the cluster); unchanged without a `cluster` section."""
    cluster = config.cluster
    if cluster is None:
        return view
    peers = Peers(PEERS_SECTION, tuple((node.name, _address(node.address, cluster.peers_port)) for node in cluster.nodes))
    return _with_peers(view, cluster.node, peers)


def _with_peers(view, local: str, peers: Peers):
    """`localpeer`, the peers section, and `peers` on every stick table (persistence entries pushed to the peers)."""
    sections = []
    for section in view.sections:
        if section.section == "backend":
            persistence = tuple((*d, "peers", peers.name) if d and d[0] == "stick-table" else d for d in section.persistence)
            section = replace(section, persistence=persistence)
        sections.append(section)
    return replace(view, global_=replace(view.global_, localpeer=local), sections=tuple(sections), peers=peers)
