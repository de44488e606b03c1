"""Settings of the appliance's own host that the configuration holds: the interface that carries a single node's VIP
addresses (settings.network: model/network.py says what is done with it) and TPROXY's packet mark and routing table
(settings.transparent: model/client_address.py). Classes only: what they mean for a whole configuration is checked
in those two modules, which read the configuration; the configuration imports only this one.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from .base import Strict

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


# The kernel's own routing tables (local 255, main 254, default 253) and 0 (unspecified) are never ours.
RESERVED_TABLES = (0, 253, 254, 255)
MAX_TABLE = 2**31 - 1  # `ip route ... table N` takes 1 to 2^32-1; iproute2 prints the upper half oddly, so stay below
MAX_MARK = 2**32 - 1


class TransparentSettings(Strict):
    """What the kernel needs for `transparent: true` (TPROXY): a packet mark and a routing table of pacslb's own."""

    mark: int = Field(
        default=0x504C,
        ge=1,
        le=MAX_MARK,
        description="the packet mark nftables sets on the real servers' replies to a transparent connection; "
        "choose one no other firewall rule on the host uses",
    )
    table: int = Field(
        default=20556,
        ge=1,
        le=MAX_TABLE,
        description="the routing table (ip rule fwmark MARK lookup TABLE) that delivers marked replies to HAProxy; "
        "choose one no other route on the host uses",
    )

    @field_validator("table")
    @classmethod
    def _not_a_kernel_table(cls, table: int) -> int:
        if table in RESERVED_TABLES:
            raise ValueError(f"table {table} is the kernel's own (253 default, 254 main, 255 local): choose another")
        return table
