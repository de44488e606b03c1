"""The VIP addresses of a single node: `settings.network` names the interface that carries them.

With an interface named, the appliance adds the address of every listener of its virtual services to
it (engines/addresses/), and removes them again when it stops or a change drops them. Loopback and
wildcard listeners (127.0.0.1, ::1, 0.0.0.0, ::) are already local, so they are never added. In an HA
pair keepalived carries the addresses (ha.floating_ips) and follows the master: the two together are
refused (`network_problems`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from .base import Strict
from .problems import Problem

if TYPE_CHECKING:
    from .config import Config

# Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no slash, no white space, not "." or ".."
_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
MAX_VIP_ADDRESSES = 4096  # addresses one interface gets from a configuration (the kernel takes more; a bound on one change)


class NetworkSettings(Strict):
    """Where a single node's VIP addresses live."""

    interface: str | None = Field(
        default=None,
        max_length=15,  # IFNAMSIZ - 1; the validator below, run first, says why a name is refused
        description="network interface that gets the VIP addresses of the listeners (each as /32 or /128, with a "
        "gratuitous ARP or unsolicited neighbour advertisement); omitted, the appliance adds no address",
    )

    @field_validator("interface", mode="before")
    @classmethod
    def _interface_name(cls, value: object) -> object:
        if isinstance(value, str) and (not _INTERFACE_RE.fullmatch(value) or value in (".", "..")):
            raise ValueError(f"{value!r} is not an interface name: at most 15 letters, digits and _.:@- (e.g. eth0, ens18)")
        return value


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
