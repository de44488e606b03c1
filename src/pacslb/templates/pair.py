"""The `ha` section of an HA pair, for `pacslb init --ha primary|secondary`.

Any template can be written for a pair: this module renders one node's `ha` section as YAML text that
`pacslb init` appends to the template's configuration. The two nodes' files differ only in what must
differ (role, this node's address, the peer's address); everything else, the peer certificate's file
name included, is the same on both, so that the rest of the two files can be compared line by line.

`render_ha_section(params)` is pure; `PairParams.problems()` says in words what is wrong before anything
is written.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Literal

from ..model.ha import DEFAULT_PRIORITY

Role = Literal["primary", "secondary"]
ROLES: tuple[Role, ...] = ("primary", "secondary")

# The peer's peer-link certificate, beside the configuration file; the same name on both nodes.
PEER_CERTIFICATE = "ha-peer.pem"
DEFAULT_VIRTUAL_ROUTER_ID = 51

_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


@dataclass(frozen=True, kw_only=True)
class PairParams:
    """One node's place in an HA pair.

    role               primary (where changes are made; pushes them) or secondary
    node_address       this node's own address on `interface` (VRRP, configuration sync, HAProxy peers)
    peer_address       the other node's own address
    interface          the interface that carries VRRP and the floating IPs
    interface_network  that interface's network (ADDRESS/PREFIX); optional, checked when given
    virtual_router_id  VRRP router ID, the same on both nodes and unique on the network segment
    peer_certificate   the peer's peer-link certificate file (`pacslb ha pair` on the peer prints it)
    """

    role: Role
    node_address: str
    peer_address: str
    interface: str
    interface_network: str | None = None
    virtual_router_id: int = DEFAULT_VIRTUAL_ROUTER_ID
    peer_certificate: str = PEER_CERTIFICATE

    def problems(self, vip_address: str | None = None) -> list[tuple[str, str]]:
        """(option, what is wrong and what to do) for each problem; empty when the parameters are usable.

        `vip_address` is the address the template's virtual services listen on: it becomes the floating IP.
        """
        found: list[tuple[str, str]] = []
        if self.role not in ROLES:
            found.append(("--ha", f"{self.role!r} is not a role: write --ha primary or --ha secondary"))
        addresses: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
        for option, value in (("--node-address", self.node_address), ("--peer", self.peer_address)):
            try:
                addresses[option] = ipaddress.ip_address(value)
            except ValueError:
                found.append((option, f"{value!r} is not an IP address: give the node's own address, e.g. 10.0.0.2"))
        node, peer = addresses.get("--node-address"), addresses.get("--peer")
        if node is not None and peer is not None:
            if node == peer:
                found.append(("--peer", f"{peer} is this node's own address (--node-address): give the other node's"))
            elif node.version != peer.version:
                found.append(("--peer", "--node-address and --peer must be of the same family (both IPv4 or both IPv6)"))
        vip = None
        if vip_address is not None:
            try:
                vip = ipaddress.ip_address(vip_address)
            except ValueError:
                vip = None  # the template says so itself
        if vip is not None:
            if vip.is_unspecified:
                found.append(("--vip-address", f"{vip} listens on every address and cannot float: give the VIP address"))
            for option, address in addresses.items():
                if address == vip:
                    found.append((option, f"{address} is the VIP address: a node's own address must be a third address"))
        if not _INTERFACE_RE.match(self.interface):
            found.append(("--interface", f"{self.interface!r} is not an interface name: 1 to 15 letters, digits, '.', '-', '_', "
                          "':' or '@', e.g. eth0"))  # fmt: skip
        if self.interface_network is not None:
            try:
                network = ipaddress.ip_network(self.interface_network, strict=False)
            except ValueError:
                found.append(("--interface-network", f"{self.interface_network!r} is not a network: write ADDRESS/PREFIX, "
                              "e.g. 10.0.0.0/24"))  # fmt: skip
            else:
                named = {**addresses, **({"--vip-address": vip} if vip is not None else {})}
                for option, address in named.items():
                    if address.version == network.version and address not in network:
                        found.append((option, f"{address} is outside --interface-network {network}: the nodes and the "
                                      "VIP must share the interface's network"))  # fmt: skip
        if not 1 <= self.virtual_router_id <= 255:
            found.append(("--virtual-router-id", f"{self.virtual_router_id} is out of range: 1 to 255, the same on both nodes"))
        if not self.peer_certificate.strip():
            found.append(("--peer-certificate", "give the peer certificate's file name"))
        return found

    @property
    def priority(self) -> int:
        return DEFAULT_PRIORITY[self.role]


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML); addresses and names are checked plain words."""
    return json.dumps(text, ensure_ascii=False)


def render_ha_section(params: PairParams) -> str:
    """This node's `ha` section as commented YAML text, to append to a configuration."""
    other = "secondary" if params.role == "primary" else "primary"
    lines = [
        "",
        "# HA pair (docs/high-availability.md). This section is this node's own: configuration sync never",
        f"# copies it. The {other} node's file has the same section with role: {other} and the two",
        "# addresses swapped; the rest of the two files is the same (the primary pushes every change).",
        "ha:",
        f"  role: {params.role}  # VRRP priority {params.priority}; preempt is off, so a returning node does not take the VIP back",
        f"  address: {params.node_address}  # this node's own address on {params.interface}",
        f"  peer_address: {params.peer_address}  # the {other} node",
        f"  interface: {params.interface}",
    ]
    if params.interface_network is not None:
        network = ipaddress.ip_network(params.interface_network, strict=False)
        lines.append(f"  interface_network: {network}")
    lines += [
        f"  virtual_router_id: {params.virtual_router_id}  # the same on both nodes, unique on the segment",
        "  # floating_ips omitted: every VIP address of this file floats to the master",
        "  sync:",
        f"    peer_certificate: {_quoted(params.peer_certificate)}  # the {other}'s `pacslb ha pair` output",
        "",
    ]
    return "\n".join(lines)
