"""Global server load balancing (issue 19): the `gslb:` section, health-aware DNS answers across sites.

The appliance answers DNS for the names listed here (PowerDNS Authoritative is the engine: engines/powerdns/),
with the addresses of healthy sites, per name by one policy:

    failover   the first healthy site, in order of priority and then of the name's `sites` list
    weighted   every healthy site, each picked in proportion to its weight
    topology   the healthy site whose `near` networks hold the client (EDNS Client Subnet, else the resolver's
               address), else the failover order

A site is healthy when its health check passes against its address (every check type of the appliance), and,
when it is this appliance (`virtual_service`), when that local virtual service is up. When every site of a name
is down, the name answers its `fallback` addresses (or every site's), rather than nothing.

The section is synced to an HA peer like the rest of the configuration (it is not node-local); cross-object
rules (references, overlaps, limits) are in `gslb_problems`, called by `pacslb.model.checks.check`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Iterator, Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict
from .health_checks import HealthCheck, NoCheck
from .problems import Problem
from .types import IPAddress, Name, Network

# The limits of the section, each tested (tests/unit/model/test_gslb.py): a zone file pdns reloads in
# well under a second at these sizes, and a status page a person can read.
MAX_ZONES = 64
MAX_SITES = 64
MAX_NAMES = 1024
MAX_SITES_PER_NAME = 32
MAX_ADDRESSES_PER_SITE = 16
MAX_NEAR_NETWORKS_PER_SITE = 256
MAX_NAMESERVERS = 8
MAX_FALLBACK_ADDRESSES = 16

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})+$")


def _check_domain(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a DNS name written as text, e.g. 'pacs.example.org'")
    name = value.lower().removesuffix(".")
    if not _DOMAIN_RE.match(name):
        raise ValueError(
            f"{value!r} is not a DNS name: write at least two labels of letters, digits and '-' "
            "(1 to 63 each, 253 in all), e.g. 'wfc.pacs.example.org'"
        )
    return name


def domain(value: Any) -> str:
    """The name in the form the model keeps: lower case, without the final dot (raises ValueError)."""
    return _check_domain(value)


class Listen(Strict):
    """Where the DNS server answers (UDP and TCP)."""

    address: IPAddress = Field(
        default="127.0.0.1",
        description="address PowerDNS listens on; a floating IP of an HA pair works on both nodes (bound non-locally)",
    )
    port: int = Field(default=5300, ge=1, le=65535, description="UDP and TCP port (53 for clients; PowerDNS runs unprivileged)")


class Zone(Strict):
    """A zone the appliance is authoritative for: its SOA and NS records."""

    name: str = Field(description="the zone's name, e.g. 'pacs.example.org'")
    nameservers: list[str] = Field(
        min_length=1, max_length=MAX_NAMESERVERS, description="the zone's NS records (host names of its DNS servers)"
    )
    nameserver_addresses: list[IPAddress] = Field(
        default_factory=list,
        max_length=MAX_ADDRESSES_PER_SITE,
        description="A/AAAA records of the nameservers that lie inside the zone (glue); omitted, none",
    )
    hostmaster: str | None = Field(default=None, description="the SOA mailbox as a name; omitted, 'hostmaster.<zone>'")
    ttl: int = Field(default=3600, ge=60, le=604800, description="TTL of the SOA and NS records, in seconds")
    negative_ttl: int = Field(default=60, ge=0, le=86400, description="how long resolvers cache NXDOMAIN (SOA minimum)")

    @field_validator("name", "hostmaster")
    @classmethod
    def _domain_names(cls, value: str | None) -> str | None:
        return None if value is None else _check_domain(value)

    @field_validator("nameservers")
    @classmethod
    def _nameserver_names(cls, values: list[str]) -> list[str]:
        return [_check_domain(v) for v in values]

    @property
    def mailbox(self) -> str:
        return self.hostmaster or f"hostmaster.{self.name}"


class Site(Strict):
    """One place a service runs (a data centre, a cloud region): its addresses, its clients, its health."""

    name: Name
    addresses: list[IPAddress] = Field(
        min_length=1, max_length=MAX_ADDRESSES_PER_SITE, description="the site's VIP addresses (IPv4 for A, IPv6 for AAAA)"
    )
    near: list[Network] = Field(
        default_factory=list,
        max_length=MAX_NEAR_NETWORKS_PER_SITE,
        description="client networks for which this site is the nearest (topology policy)",
    )
    weight: int = Field(default=100, ge=1, le=1000, description="share of answers under the weighted policy")
    priority: int = Field(default=1, ge=1, le=100, description="lower comes first in failover order")
    health_check: HealthCheck = Field(
        default_factory=lambda: NoCheck(type="none"),
        description="checked against check_address (the check's port is needed); 'none': always up",
    )
    check_address: IPAddress | None = Field(default=None, description="address the check goes to; omitted, the first address")
    virtual_service: Name | None = Field(
        default=None,
        description="this site is this appliance: it is up only while this local virtual service is up",
    )

    @property
    def checked_address(self) -> str:
        return self.check_address or self.addresses[0]


class GslbName(Strict):
    """One name the appliance answers, its sites and its policy."""

    name: str = Field(description="the fully qualified name, inside one of the zones, e.g. 'wfc.pacs.example.org'")
    policy: Literal["failover", "weighted", "topology"] = Field(
        description="failover: the first healthy site; weighted: healthy sites by weight; topology: the site near the client"
    )
    sites: list[Name] = Field(
        min_length=1, max_length=MAX_SITES_PER_NAME, description="the member sites, in failover order (after priority)"
    )
    ttl: int = Field(default=30, ge=1, le=86400, description="TTL of the answers, in seconds (short: clients move soon)")
    fallback: list[IPAddress] = Field(
        default_factory=list,
        max_length=MAX_FALLBACK_ADDRESSES,
        description="answered when every member site is down; omitted, every member's addresses",
    )

    @field_validator("name")
    @classmethod
    def _domain_name(cls, value: str) -> str:
        return _check_domain(value)


class GSLB(Strict):
    """Health-aware DNS across sites (PowerDNS Authoritative)."""

    listen: Listen = Field(default_factory=Listen)
    zones: list[Zone] = Field(min_length=1, max_length=MAX_ZONES)
    sites: list[Site] = Field(min_length=1, max_length=MAX_SITES)
    names: list[GslbName] = Field(min_length=1, max_length=MAX_NAMES)

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name == name), None)

    def zone_of(self, name: str) -> Zone | None:
        """The longest zone that holds `name` (None: no zone does)."""
        holding = [z for z in self.zones if name == z.name or name.endswith("." + z.name)]
        return max(holding, key=lambda z: len(z.name), default=None)

    @model_validator(mode="after")
    def _unique(self) -> "GSLB":
        for what, names in (("zones", [z.name for z in self.zones]), ("sites", [s.name for s in self.sites]),
                            ("names", [n.name for n in self.names])):  # fmt: skip
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{what}: '{name}' is listed twice; each must be unique")
                seen.add(name)
        return self


def _needs_port(check: object) -> bool:
    return not isinstance(check, NoCheck) and getattr(check, "type", None) != "external"


def gslb_problems(config: Any) -> Iterator[Problem]:
    """Cross-object rules of the `gslb` section (config: the whole Config)."""
    gslb: GSLB | None = config.gslb
    if gslb is None:
        return
    services = {vs.name for vs in config.virtual_services}
    for vs in config.virtual_services:
        for listener in vs.listen:
            same_address = gslb.listen.address == listener.address or listener.address in ("0.0.0.0", "::")
            if same_address and listener.port.first <= gslb.listen.port <= listener.port.last:
                yield Problem("gslb.listen.port", f"virtual service '{vs.name}' listens on {listener.address} port "
                              f"{gslb.listen.port} (TCP): choose another port or address for DNS")  # fmt: skip
    for site in gslb.sites:
        p = f"gslb.sites[{site.name}]"
        if site.check_address is not None and site.check_address not in site.addresses:
            yield Problem(f"{p}.check_address", f"{site.check_address} is not one of the site's addresses: list it, or omit it")
        if _needs_port(site.health_check) and site.health_check.port is None:
            yield Problem(f"{p}.health_check.port", "a site has no port of its own: give the port its VIP serves (e.g. 443)")
        if site.virtual_service is not None and site.virtual_service not in services:
            yield Problem(f"{p}.virtual_service", f"there is no virtual service '{site.virtual_service}' on this appliance")
    for zone in gslb.zones:
        inside = [ns for ns in zone.nameservers if ns == zone.name or ns.endswith("." + zone.name)]
        if inside and not zone.nameserver_addresses:
            yield Problem(f"gslb.zones[{zone.name}].nameserver_addresses",
                          f"{inside[0]} lies inside the zone: give its addresses (glue), or name a nameserver outside it")  # fmt: skip
    for n in gslb.names:
        p = f"gslb.names[{n.name}]"
        zone = gslb.zone_of(n.name)
        if zone is None:
            yield Problem(f"{p}.name", f"{n.name} is in none of the zones: add its zone to gslb.zones")
        elif zone.name == n.name:
            yield Problem(f"{p}.name", "a name cannot be the zone's apex (it holds the SOA and NS): use a name below it")
        elif n.name in zone.nameservers:
            yield Problem(f"{p}.name", f"{n.name} is a nameserver of the zone: choose another name")
        seen: set[str] = set()
        members = []
        for i, s in enumerate(n.sites):
            if s in seen:
                yield Problem(f"{p}.sites[{i}]", f"'{s}' is listed twice")
            seen.add(s)
            site = gslb.site(s)
            if site is None:
                yield Problem(f"{p}.sites[{i}]", f"there is no site '{s}' in gslb.sites")
            else:
                members.append(site)
        if n.policy == "topology" and members and not any(site.near for site in members):
            yield Problem(f"{p}.policy", "topology needs at least one member site with near networks (gslb.sites[].near)")
        if n.policy == "topology":
            yield from _overlaps(p, members)
        if n.fallback and members:
            families = {ipaddress.ip_address(a).version for site in members for a in site.addresses}
            for i, a in enumerate(n.fallback):
                if ipaddress.ip_address(a).version not in families:
                    yield Problem(
                        f"{p}.fallback[{i}]", f"{a} is of a family no member site has; list addresses of the sites' families"
                    )


def _overlaps(path: str, members: list[Site]) -> Iterator[Problem]:
    """The same near network in two member sites would make the answer depend on file order."""
    owner: dict[str, str] = {}
    for site in members:
        for net in site.near:
            if net in owner and owner[net] != site.name:
                yield Problem(f"{path}.sites", f"{net} is near both '{owner[net]}' and '{site.name}': keep it in one site")
            owner.setdefault(net, site.name)


__all__ = ["GSLB", "GslbName", "Listen", "Site", "Zone", "domain", "gslb_problems"]
