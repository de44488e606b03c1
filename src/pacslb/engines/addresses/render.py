"""What the addresses engine wants on the interface, as plain data and as the text its digest is taken of (pure)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from ...model.config import Config
from ...model.network import vip_addresses


@dataclass(frozen=True)
class Wanted:
    """The interface and the addresses (ADDRESS/PREFIX, a host prefix each) that should be on it."""

    interface: str | None
    addresses: tuple[str, ...]

    def text(self) -> str:
        """One line per address, `dev IFACE ADDRESS/PREFIX`: what the digest is taken of."""
        return "".join(f"dev {self.interface} {a}\n" for a in self.addresses)

    def digest(self) -> str | None:
        return hashlib.sha256(self.text().encode()).hexdigest() if self.addresses else None


def host_prefix(address: str) -> str:
    """ADDRESS/32 or ADDRESS/128: a VIP is one address, so it brings no route of its own onto the interface."""
    return f"{address}/{32 if ipaddress.ip_address(address).version == 4 else 128}"


def wanted(config: Config) -> Wanted:
    interface = config.settings.network.interface
    if interface is None or config.ha is not None:  # an HA pair: keepalived holds them (validation refuses both)
        return Wanted(None, ())
    return Wanted(interface, tuple(host_prefix(a) for a in vip_addresses(config)))
