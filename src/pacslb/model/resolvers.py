"""Real servers named by DNS (issue 15): the appliance's `resolvers:` and a service's `resolvers: NAME`.

A real server's `address` may be a DNS name when its service names a resolvers section. HAProxy then asks
those name servers again while it runs (engines/haproxy/resolvers.py renders HAProxy's `resolvers`
section and `server ... resolvers NAME init-addr last,libc,none`):

- at start, the address comes from the server-state file (`last`), else from the system resolver (`libc`,
  unless `system_resolver: false`), else the server waits in maintenance without an address (`none`) until
  the name servers answer (within a second or so);
- every `hold_valid`, the name is asked again; a new address is used at once, with no reload;
- when the name stops resolving (NXDOMAIN, no answer, refused, a timeout), the last address is kept for
  `hold_failed`, then the server goes into maintenance (HAProxy's resolution MAINT: no traffic, `pacslb
  status` shows it as MAINT, transition "resolution") until the name resolves again, when it comes back by itself.

Each class checks what it sees alone; what spans objects is in `resolvers_problems` (called by model/checks.py).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Iterator

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .limits import MAX_TEXT
from .problems import Problem
from .types import Duration, Name, _ip_text

MAX_RESOLVERS = 16  # resolvers sections in a configuration: one per DNS view a site needs, at most
MAX_NAMESERVERS = 8  # per section: HAProxy asks them all, the first answer wins
MIN_HOLD_VALID = Duration(1000)  # asking more often than every second only loads the name servers
MAX_HOLD = Duration(24 * 3_600_000)


def _check_nameserver(value: Any) -> str:
    """ADDR:PORT of a name server: '192.0.2.53:53', '[2001:db8::53]:53'."""
    if not isinstance(value, str):
        raise ValueError("must be a name server written ADDRESS:PORT, e.g. '192.0.2.53:53' or '[2001:db8::53]:53'")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not ADDRESS:PORT (the port is needed: DNS is on 53)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ip(host) or ipaddress.ip_address(host).version != 6:
            raise ValueError(f"{value!r}: only an IPv6 address goes in brackets")
    elif not _is_ip(host) or ipaddress.ip_address(host).version != 4:
        raise ValueError(f"{value!r}: the name server must be an IPv4 address, or an IPv6 address in brackets")
    address = ipaddress.ip_address(host)
    return f"[{address}]:{int(port)}" if address.version == 6 else f"{address}:{int(port)}"


def _is_ip(text: str) -> bool:
    """Whether `text` is an IP address (model/types.py `_ip_text`: remembered, since every apply asks it of every
    real server)."""
    if isinstance(text, str):
        return _ip_text(text) is not None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


NameServer = Annotated[str, BeforeValidator(_check_nameserver)]


class Resolvers(BaseModel):
    """Name servers that HAProxy asks, while it runs, for the addresses of real servers given by DNS name."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_max_length=MAX_TEXT)

    name: Name = Field(description="what services call it in their `resolvers` field")
    nameservers: list[NameServer] = Field(
        min_length=1, max_length=MAX_NAMESERVERS, description="ADDRESS:PORT of each name server ('192.0.2.53:53')"
    )
    hold_valid: Duration = Field(
        default=Duration(10_000), description="how long an answer is used before the name is asked again"
    )
    hold_failed: Duration = Field(
        default=Duration(30_000),
        description="when a name stops resolving, how long its last address is still used; then the server goes into maintenance",
    )
    timeout: Duration = Field(default=Duration(1000), description="time to wait for an answer before asking again")
    retries: int = Field(default=3, ge=1, le=10, description="questions sent before a resolution counts as failed")
    system_resolver: bool = Field(
        default=True,
        description="at start, when the server-state file has no address, also ask the system resolver (/etc/hosts, "
        "/etc/resolv.conf); false: such a server waits in maintenance for these name servers",
    )

    @model_validator(mode="after")
    def _bounds(self) -> "Resolvers":
        if not MIN_HOLD_VALID.milliseconds <= self.hold_valid.milliseconds <= MAX_HOLD.milliseconds:
            raise ValueError(f"hold_valid must be from {MIN_HOLD_VALID} to {MAX_HOLD}")
        if self.hold_failed.milliseconds > MAX_HOLD.milliseconds:
            raise ValueError(f"hold_failed must be at most {MAX_HOLD}")
        if not 100 <= self.timeout.milliseconds <= 30_000:
            raise ValueError("timeout must be from 100ms to 30s")
        if len(set(self.nameservers)) != len(self.nameservers):
            raise ValueError("a name server is listed twice")
        return self


def is_dns_name(address: str | None) -> bool:
    """True when `address` is a DNS name rather than an IP address."""
    return address is not None and not _is_ip(address)


def resolvers_problems(config: Any) -> Iterator[Problem]:
    """What DNS-named real servers and resolvers sections cannot be, given the rest of the configuration."""
    sections = [r.name for r in config.resolvers]
    for name in sorted({n for n in sections if sections.count(n) > 1}):
        yield Problem(f"resolvers[{name}]", f"two resolvers sections are called {name!r}: rename one")
    for vs in config.virtual_services:
        p = f"virtual_services[{vs.name}]"
        if vs.resolvers is not None:
            if vs.mode.is_layer4:
                yield Problem(
                    f"{p}.resolvers", "Layer 4 services need IP addresses (nftables does not resolve names): remove resolvers"
                )
            elif vs.resolvers not in sections:
                known = ", ".join(sections) or "none is defined"
                yield Problem(f"{p}.resolvers", f"no resolvers section is called {vs.resolvers!r} (resolvers: {known})")
        if vs.mode.is_layer4:
            continue  # Layer 4 addresses are checked by the Layer 4 rules
        for rs in vs.real_servers:
            if is_dns_name(rs.address) and vs.resolvers is None:
                yield Problem(
                    f"{p}.real_servers[{rs.name}].address",
                    f"{rs.address!r} is a DNS name: name the resolvers that look it up while the appliance runs in "
                    f"{p}.resolvers (defined under resolvers:), or write an IP address",
                )
        if vs.fallback is not None and is_dns_name(vs.fallback.address) and vs.resolvers is None:
            yield Problem(
                f"{p}.fallback.address",
                f"{vs.fallback.address!r} is a DNS name: name the resolvers that look it up in {p}.resolvers, or write an IP address",
            )
