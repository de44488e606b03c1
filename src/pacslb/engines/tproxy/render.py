"""What transparent proxying needs from the kernel, as plain data and text (pure).

HAProxy's `source 0.0.0.0 usesrc clientip` connects to a real server from the client's own address
(IP_TRANSPARENT). The real server answers that address through the appliance, its gateway; those replies
are not addressed to the appliance, so the kernel would forward them. Three things deliver them to
HAProxy instead (the kernel's tproxy documentation):

  nftables   a packet that belongs to a local transparent socket gets a mark
             (`meta l4proto tcp socket transparent 1 meta mark set MARK`, in prerouting)
  ip rule    marked packets look up a table of pacslb's own (`ip rule add fwmark MARK lookup TABLE`)
  ip route   that table says every address is local (`ip route add local 0.0.0.0/0 dev lo table TABLE`)

once per address family that a transparent service's real servers use.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from ...model.client_address import transparent_services
from ...model.config import Config

TABLE_NAME = "pacslb_tproxy"  # its own nftables table: the Layer 4 engine's `inet pacslb` is never touched
DEFAULT_ROUTE = {4: "0.0.0.0/0", 6: "::/0"}


@dataclass(frozen=True)
class Wanted:
    """The mark, the table, and the families (4, 6) that need a rule and a route; none when nothing is transparent."""

    mark: int = 0
    table: int = 0
    families: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.families

    def items(self) -> tuple[str, ...]:
        """What is installed, in the order it is added (the route before the rule that uses it, the mark last);
        removed in the reverse order."""
        if self.empty:
            return ()
        return (*(f"route{f}" for f in self.families), *(f"rule{f}" for f in self.families), "nftables")

    def ruleset(self) -> str:
        """The nftables table, replaced in one transaction (create, delete, create: atomic whether it exists or not)."""
        return (
            f"table inet {TABLE_NAME} {{}}\n"
            f"delete table inet {TABLE_NAME}\n"
            f"table inet {TABLE_NAME} {{\n"
            "\tchain prerouting {\n"
            "\t\ttype filter hook prerouting priority mangle; policy accept;\n"
            f"\t\tmeta l4proto tcp socket transparent 1 meta mark set {self.mark:#x} accept\n"
            "\t}\n"
            "}\n"
        )

    def text(self) -> str:
        """Everything as a person reads it: what the digest is taken of."""
        if self.empty:
            return ""
        lines = [f"ip -{f} route add local {DEFAULT_ROUTE[f]} dev lo table {self.table}" for f in self.families]
        lines += [f"ip -{f} rule add fwmark {self.mark:#x} lookup {self.table}" for f in self.families]
        return "\n".join(lines) + "\n" + self.ruleset()

    def digest(self) -> str | None:
        return hashlib.sha256(self.text().encode()).hexdigest() if not self.empty else None


def families(config: Config) -> tuple[int, ...]:
    """The address families of the transparent services' real servers; a DNS name may resolve to either."""
    found: set[int] = set()
    for vs in transparent_services(config):
        for rs in vs.real_servers:
            try:
                found.add(ipaddress.ip_address(rs.address).version)
            except ValueError:
                found.update((4, 6))
    return tuple(sorted(found))


def wanted(config: Config) -> Wanted:
    found = families(config)
    if not found:
        return Wanted()
    settings = config.settings.transparent
    return Wanted(settings.mark, settings.table, found)
