"""The VIP addresses of a single node: `settings.network` names the interface that carries them.

With an interface named, the appliance adds the address of every listener of its virtual services to
it (engines/addresses/), and removes them again when it stops or a change drops them. Loopback and
wildcard listeners (127.0.0.1, ::1, 0.0.0.0, ::) are already local, so they are never added. In an HA
pair keepalived carries the addresses (ha.floating_ips) and follows the master: the two together are
refused (`network_problems`).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .host import MAX_VIP_ADDRESSES
from .problems import Problem

if TYPE_CHECKING:
    from .config import Config


def vip_addresses(config: "Config") -> list[str]:
    """The addresses the listeners of `config` need on the interface, sorted, each once (pure)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for vs in config.virtual_services:
        for listener in vs.listen:
            ip = ipaddress.ip_address(listener.address)
            if not (ip.is_unspecified or ip.is_loopback):
                found.add(ip)
    return [str(ip) for ip in sorted(found, key=lambda ip: (ip.version, ip))]


def network_problems(config: "Config") -> list[Problem]:
    """settings.network against the rest: not with an HA pair, and a bounded number of addresses."""
    interface = config.settings.network.interface
    if interface is None:
        return []
    problems = []
    if config.ha is not None:
        problems.append(
            Problem(
                "settings.network.interface",
                "in an HA pair keepalived brings up the VIP addresses on the master (ha.floating_ips, on ha.interface); "
                "drop settings.network.interface",
            )
        )
    count = len(vip_addresses(config))
    if count > MAX_VIP_ADDRESSES:
        problems.append(
            Problem(
                "settings.network.interface",
                f"the listeners use {count} VIP addresses, more than the {MAX_VIP_ADDRESSES} one interface gets from "
                "pacslb: use fewer addresses (more ports on each), or bring them up yourself and drop the interface",
            )
        )
    return problems
