"""What the addresses engine wants on the interface, as plain data and as the text its digest is taken of (pure).

A single node: every VIP on `settings.network.interface`, announced with a gratuitous ARP (or unsolicited NA).
A cluster node: every VIP on `cluster.bgp.vip_interface` (`lo` by default), never announced on a link: the
upstream routers route the VIPs to the nodes that announce them over BGP (engines/bird); the address is there
so that the node accepts the routed traffic and HAProxy can bind it."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from ...model.config import Config
from ...model.network import vip_addresses


@dataclass(frozen=True)
class Wanted:
    """The interface and the addresses (ADDRESS/PREFIX, a host prefix each) that should be on it."""

    interface: str | None
    addresses: tuple[str, ...]
    # how, not what: left out of comparisons (the record, which a plan compares with, knows only the what)
    announce: bool = field(default=True, compare=False)  # a gratuitous ARP / unsolicited NA (not in a cluster: routed)
    setting: str = field(default="settings.network.interface", compare=False)  # the field that names the interface

    def text(self) -> str:
        """One line per address, `dev IFACE ADDRESS/PREFIX`: what the digest is taken of."""
        return "".join(f"dev {self.interface} {a}\n" for a in self.addresses)

    def digest(self) -> str | None:
        return hashlib.sha256(self.text().encode()).hexdigest() if self.addresses else None


def host_prefix(address: str) -> str:
    """ADDRESS/32 or ADDRESS/128: a VIP is one address, so it brings no route of its own onto the interface."""
    return f"{address}/{32 if ipaddress.ip_address(address).version == 4 else 128}"


def wanted(config: Config) -> Wanted:
    if config.cluster is not None:  # every node holds every VIP; BGP decides which nodes receive its flows
        addresses = tuple(host_prefix(a) for a in vip_addresses(config))
        return Wanted(config.cluster.bgp.vip_interface, addresses, announce=False, setting="cluster.bgp.vip_interface")
    interface = config.settings.network.interface
    if interface is None or config.ha is not None:  # an HA pair: keepalived holds them (validation refuses both)
        return Wanted(None, ())
    return Wanted(interface, tuple(host_prefix(a) for a in vip_addresses(config)))
