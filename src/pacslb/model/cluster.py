"""An active-active cluster of N appliance nodes (docs/cluster.md): every node serves every VIP it can and
announces it to the upstream routers over BGP with BFD (BIRD); the configuration, its revisions and the
membership live in etcd, which runs one member on each of the first nodes.

The `cluster` section is node-local, like `ha`: each node's file names the node itself, and configuration
sync never copies it (`NODE_LOCAL` in model/ha.py). Everything else of a cluster's configuration is shared
through etcd. Rules that span the section and the rest of the configuration (a cluster is not an HA pair
as well, the node is a member, ...) are in `cluster_problems`, called by `pacslb.model.checks.check`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict
from .host import MAX_VIP_ADDRESSES
from .problems import Problem
from .types import Duration, IPAddress, Text

# A cluster of 3 or 5 etcd members is what etcd recommends; more nodes join as non-members (learners are not used).
MAX_NODES = 32
MAX_NEIGHBORS = 8
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


def _name(value: str, what: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a {what} name: 1 to 32 lower-case letters, digits and '-', not at either end")
    return value


class ClusterNode(Strict):
    """One node of the cluster: its name and the address it is reached on (BGP, etcd, HAProxy peers)."""

    name: str = Field(description="the node's name, unique in the cluster (lower case, digits, '-')")
    address: IPAddress = Field(description="the node's own address: etcd's peer and client URLs, BGP router ID, HAProxy peers")
    etcd_member: bool = Field(
        default=True, description="this node runs a member of the cluster's etcd (3 or 5 members; the other nodes are clients)"
    )

    @field_validator("name")
    @classmethod
    def _node_name(cls, value: str) -> str:
        return _name(value, "node")


class EtcdTLS(Strict):
    """etcd over TLS (docs/cluster.md): this node's files, made by `pacslb cluster pki init` and copied to the node.

    The member serves its client and peer ports with `cert` and accepts only clients and peers whose certificate
    `ca` signed; the controller is such a client with the same pair. model/cluster_tls.py checks the files."""

    ca: Text | None = Field(default=None, description="the cluster CA's certificate (PEM): what the node trusts")
    cert: Text | None = Field(
        default=None, description="this node's certificate (PEM), signed by `ca`, valid for the node's address"
    )
    key: Text | None = Field(default=None, description="the private key of `cert` (PEM, unencrypted, mode 0600)")

    @model_validator(mode="after")
    def _all_three(self) -> "EtcdTLS":
        missing = [name for name in ("ca", "cert", "key") if getattr(self, name) is None]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(f"tls needs ca, cert and key, and {', '.join(missing)} {verb} missing: give all three "
                             "(`pacslb cluster pki init` makes them), or remove tls for plain HTTP")  # fmt: skip
        return self

    @property
    def files(self) -> tuple[str, str, str]:
        assert self.ca is not None and self.cert is not None and self.key is not None
        return self.ca, self.cert, self.key


class Etcd(Strict):
    """The cluster's etcd: one member on every node with `etcd_member`, run and supervised by pacslb."""

    client_port: int = Field(default=2379, ge=1, le=65535, description="TCP port of etcd's clients (every member)")
    peer_port: int = Field(default=2380, ge=1, le=65535, description="TCP port between etcd members")
    dial_timeout: Duration = Field(default=Duration(2000), description="how long a node waits to reach etcd before a call fails")
    lease: Duration = Field(
        default=Duration(5000), description="a node's membership lease: a node whose controller stops renewing it is shown gone"
    )
    tls: EtcdTLS | None = Field(
        default=None, description="etcd over TLS with the cluster CA (node-local files); absent: plain HTTP (docs/cluster.md)"
    )

    @model_validator(mode="after")
    def _ports_differ(self) -> "Etcd":
        if self.client_port == self.peer_port:
            raise ValueError(f"client_port and peer_port are both {self.client_port}: give them different ports")
        return self


class BFD(Strict):
    """Bidirectional Forwarding Detection on every BGP session: a silent node is found in interval x multiplier."""

    enabled: bool = Field(
        default=True, description="BFD on the BGP sessions (without it a silent node is found by the hold timer)"
    )
    interval: Duration = Field(default=Duration(100), description="BFD transmit and receive interval")
    multiplier: int = Field(default=3, ge=2, le=50, description="missed BFD packets before the session is down")

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: Duration) -> Duration:
        if not 10 <= value.milliseconds <= 10_000:
            raise ValueError("interval must be between 10ms and 10s")
        return value


class BGPNeighbor(Strict):
    """An upstream router that this node announces its VIPs to."""

    address: IPAddress = Field(description="the router's address on a network this node is attached to")
    remote_as: int = Field(ge=1, le=4_294_967_295, description="the router's AS number")
    port: int = Field(default=179, ge=1, le=65535, description="the router's BGP port")


class BGP(Strict):
    """How the node announces its VIPs: one BGP session (BIRD) per upstream router, each with BFD."""

    local_as: int = Field(ge=1, le=4_294_967_295, description="this cluster's AS number (the same on every node)")
    neighbors: list[BGPNeighbor] = Field(min_length=1, max_length=MAX_NEIGHBORS, description="the upstream routers")
    hold_time: Duration = Field(default=Duration(9000), description="BGP hold time (BFD finds a silent node much sooner)")
    keepalive: Duration = Field(default=Duration(3000), description="BGP keepalive interval, at most a third of hold_time")
    bfd: BFD = Field(default_factory=BFD, description="BFD on every session")
    local_port: int = Field(default=179, ge=1, le=65535, description="the TCP port this node's BIRD listens on for the routers")
    vip_interface: str = Field(
        default="lo", description="where this node holds the VIP addresses it announces (routed to it, never answered by ARP)"
    )

    @field_validator("vip_interface")
    @classmethod
    def _interface(cls, value: str) -> str:
        if not _INTERFACE_RE.match(value):
            raise ValueError(f"{value!r} is not an interface name: 1 to 15 letters, digits, '.', '-', '_', ':' or '@'")
        return value

    @model_validator(mode="after")
    def _timers(self) -> "BGP":
        hold, keepalive = self.hold_time.milliseconds, self.keepalive.milliseconds
        if hold != 0 and not 3000 <= hold <= 65_535_000:
            raise ValueError("hold_time must be 0 (no hold timer) or between 3s and 65535s")
        if hold and keepalive * 3 > hold:
            raise ValueError(f"keepalive ({keepalive} ms) must be at most a third of hold_time ({hold} ms)")
        if hold % 1000 or keepalive % 1000:
            raise ValueError("BGP counts hold_time and keepalive in whole seconds: give e.g. 9s and 3s")
        return self


class Cluster(Strict):
    """This node's part in an active-active cluster (node-local: never synced)."""

    name: str = Field(description="the cluster's name: its key prefix in etcd, the same on every node")
    node: str = Field(description="this node's name: one of `nodes`")
    nodes: list[ClusterNode] = Field(
        min_length=1, max_length=MAX_NODES, description="every node of the cluster (the same list on every node)"
    )
    etcd: Etcd = Field(default_factory=Etcd, description="the cluster's etcd")
    bgp: BGP = Field(description="the VIPs' announcement to the upstream routers")
    peers_port: int = Field(
        default=10000, ge=1, le=65535, description="TCP port of HAProxy's peers (stick tables shared among nodes)"
    )
    mode: Literal["active"] = Field(default="active", description="every node serves (the only mode)")
    on_partition: Literal["withdraw", "keep-serving"] = Field(
        default="withdraw",
        description="a node cut off from the cluster (no etcd quorum, no majority of nodes answering) withdraws its "
        "VIPs, or keeps announcing them",
    )

    @field_validator("name")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        return _name(value, "cluster")

    @model_validator(mode="after")
    def _membership(self) -> "Cluster":
        names = [n.name for n in self.nodes]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"node names must be unique: {', '.join(twice)} more than once")
        addresses = [ipaddress.ip_address(n.address) for n in self.nodes]
        again = sorted({str(a) for a in addresses if addresses.count(a) > 1})
        if again:
            raise ValueError(f"node addresses must be unique: {', '.join(again)} more than once")
        if self.node not in names:
            raise ValueError(f"node {self.node!r} is not one of nodes ({', '.join(names)}): add it, or name this node's entry")
        members = sum(1 for n in self.nodes if n.etcd_member)
        if members not in (1, 3, 5):
            raise ValueError(
                f"{members} nodes have etcd_member: etcd needs 3 or 5 members to survive a loss (1 only for a test); "
                "set etcd_member: false on the others"
            )
        return self

    @property
    def this_node(self) -> ClusterNode:
        return next(n for n in self.nodes if n.name == self.node)

    @property
    def etcd_members(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.etcd_member]


def cluster_problems(config) -> list[Problem]:  # config: model.config.Config (which imports this module)
    """Rules between `cluster` and the rest of a configuration (called by model/checks.py)."""
    cluster: Cluster | None = getattr(config, "cluster", None)
    if cluster is None:
        return []
    problems: list[Problem] = []
    if getattr(config, "ha", None) is not None:
        problems.append(Problem(path="cluster", message="a node is in an HA pair (`ha`) or a cluster (`cluster`), not both: "
                                "remove one of the two sections"))  # fmt: skip
    if config.settings.network.interface is not None:
        problems.append(Problem(path="settings.network.interface", message="a cluster node holds its VIPs on "
                                "cluster.bgp.vip_interface (routed to it over BGP, never announced by ARP): drop "
                                "settings.network.interface"))  # fmt: skip
    count = len(_vips_of_family(config, 4)) + len(_vips_of_family(config, 6))
    if count > MAX_VIP_ADDRESSES:  # each one an address on vip_interface and a route in BIRD
        problems.append(Problem(path="cluster.bgp.vip_interface", message=f"the listeners use {count} VIP addresses, more "
                                f"than the {MAX_VIP_ADDRESSES} a cluster node holds and announces: use fewer addresses "
                                "(more ports on each)"))  # fmt: skip
    families = {ipaddress.ip_address(n.address).version for n in cluster.bgp.neighbors}
    for version in (4, 6):
        vips = _vips_of_family(config, version)
        if vips and version not in families:
            problems.append(Problem(path="cluster.bgp.neighbors", severity="warning",
                                    message=f"no IPv{version} neighbour: the IPv{version} VIPs ({', '.join(vips[:3])}"
                                    f"{', ...' if len(vips) > 3 else ''}) are announced to no router (a BGP session "
                                    f"carries the VIPs of its own family): add an IPv{version} neighbour"))  # fmt: skip
    own = {n.address for n in cluster.nodes}
    neighbor_addresses = [n.address for n in cluster.bgp.neighbors]
    for i, address in enumerate(neighbor_addresses):
        if address in own:
            problems.append(Problem(path=f"cluster.bgp.neighbors[{i}].address",
                                    message=f"{address} is a node of the cluster, not an upstream router"))  # fmt: skip
        if neighbor_addresses.index(address) != i:
            problems.append(Problem(path=f"cluster.bgp.neighbors[{i}].address", message=f"{address} is given twice"))
    for i, asn in enumerate(n.remote_as for n in cluster.bgp.neighbors):
        if asn == cluster.bgp.local_as:
            problems.append(Problem(path=f"cluster.bgp.neighbors[{i}].remote_as", severity="warning",
                                    message="an iBGP session (remote_as = local_as): the router must accept the VIPs' "
                                    "next hop from a client; eBGP is what docs/cluster.md describes"))  # fmt: skip
    return problems


def _vips_of_family(config, version: int) -> list[str]:
    found: list[str] = []
    for vs in config.virtual_services:
        for listener in vs.listen:
            ip = ipaddress.ip_address(listener.address)
            if ip.version == version and not (ip.is_unspecified or ip.is_loopback) and str(ip) not in found:
                found.append(str(ip))
    return found


__all__ = ["BFD", "BGP", "BGPNeighbor", "Cluster", "ClusterNode", "Etcd", "EtcdTLS", "MAX_NODES", "cluster_problems"]
