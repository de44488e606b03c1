"""The checks of an HA pair that span the whole configuration (its VIPs, its services), and the floating IPs it
derives from them. The `ha` section's own schema is model/ha.py, which knows nothing of the rest."""

from __future__ import annotations

import ipaddress
from typing import Iterator

from .config import Config
from .ha import FloatingIP
from .problems import Problem


def vip_addresses(config: Config) -> list[str]:
    """Every VIP address the configuration listens on, in file order, without 0.0.0.0 and ::."""
    found: dict[str, None] = {}
    for vs in config.virtual_services:
        for listener in vs.listen:
            if not ipaddress.ip_address(listener.address).is_unspecified:
                found[listener.address] = None
    return list(found)


def floating_ips(config: Config) -> list[FloatingIP]:
    """The floating IPs of the pair: the configured ones, else one per VIP address (/32 or /128)."""
    ha = config.ha
    if ha is None:
        return []
    if ha.floating_ips is not None:
        return list(ha.floating_ips)
    return [FloatingIP(address=a) for a in vip_addresses(config)]


def ha_problems(config: Config) -> Iterator[Problem]:
    """Cross-object rules of the `ha` section."""
    ha = config.ha
    if ha is None:
        return
    if ha.address == ha.peer_address:
        yield Problem("ha.peer_address", f"{ha.peer_address} is this node's own address (ha.address): give the other node's")
    if ipaddress.ip_address(ha.address).version != ipaddress.ip_address(ha.peer_address).version:
        yield Problem("ha.peer_address", "address and peer_address must be of the same family (both IPv4 or both IPv6)")
    vips = set(vip_addresses(config))
    ips = floating_ips(config)
    if not ips:
        yield Problem("ha.floating_ips", "the pair has no floating IP: give virtual services a VIP address (not 0.0.0.0), "
                      "or list floating_ips")  # fmt: skip
    seen: set[str] = set()
    for i, ip in enumerate(ips):
        path = f"ha.floating_ips[{i}]" if ha.floating_ips is not None else "ha"
        if ip.address in seen:
            yield Problem(path, f"{ip.address} is listed twice")
        seen.add(ip.address)
        if ha.floating_ips is not None and ip.address not in vips:
            yield Problem(f"{path}.address", f"{ip.address} is not the address of any virtual service: "
                          "list only VIP addresses, or add a listener on it")  # fmt: skip
        if ip.address in (ha.address, ha.peer_address):
            yield Problem(path, f"{ip.address} is a node's own address; a floating IP must be a third address")
        if ha.interface_network is not None:
            network = ipaddress.ip_network(ha.interface_network)
            if ipaddress.ip_address(ip.address) not in network:
                yield Problem(path, f"{ip.address} is outside the interface's network {network}: "
                              "the peer could not take it over on the same link")  # fmt: skip
    if ha.interface_network is not None:
        network = ipaddress.ip_network(ha.interface_network)
        for field in ("address", "peer_address"):
            value = getattr(ha, field)
            if ipaddress.ip_address(value) not in network:
                yield Problem(f"ha.{field}", f"{value} is outside interface_network {network}")
    if ha.sync.peer_certificate is None:
        yield Problem("ha.sync.peer_certificate", "the peer link needs the peer's certificate: run `pacslb ha pair` on "
                      "the peer and give the PEM file it names here")  # fmt: skip
    if ha.sync.port == ha.peers_port:
        yield Problem("ha.peers_port", f"port {ha.peers_port} is also the sync port: choose another")
    for vs in config.virtual_services:
        for listener in vs.listen:
            if listener.address in (ha.address, ha.peer_address, "0.0.0.0", "::"):
                for port in (ha.peers_port, ha.sync.port):
                    if listener.port.first <= port <= listener.port.last:
                        yield Problem(f"virtual_services[{vs.name}].listen",
                                      f"port {port} is taken by the HA pair on {ha.address} (peers_port or sync.port)")  # fmt: skip
