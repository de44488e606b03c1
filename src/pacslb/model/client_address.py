"""How real servers learn who the client was, and where connections to them leave from (issue 15).

The guide lists X-Forwarded-For for HTTP and TPROXY (`transparent: true`) for the rest; a Layer 7 service
may instead leave from a chosen address (`source_address`, e.g. its own VIP). `client_address_problems` is
pure: what cannot work is an error, what the real servers' side needs is a warning (docs/client-address.md).
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from .modes import Mode
from .problems import Problem
from .types import _ip_text

if TYPE_CHECKING:
    from .config import Config, VirtualService


def transparent_services(config: "Config") -> list["VirtualService"]:
    """The services whose connections to real servers leave from the client's address (Layer 7 only: validation
    refuses transparent on Layer 4)."""
    return [vs for vs in config.virtual_services if vs.transparent and not vs.mode.is_layer4]


def _vs_path(vs: "VirtualService") -> str:
    return f"virtual_services[{vs.name}]"


def client_address_problems(config: "Config") -> list[Problem]:
    """Every problem of source_address (errors) and what the real servers need (warnings)."""
    problems: list[Problem] = []
    for vs in config.virtual_services:
        problems += _source_address(vs)
    problems += shared_real_servers(config)
    problems += _transparent_hints(config)
    return problems


def _transparent_hints(config: "Config") -> Iterator[Problem]:
    """What the real servers of a transparent service need: their replies to the clients must come back through
    the appliance, or the client gets a reply from an address it never called and drops it."""
    services = [vs for vs in transparent_services(config) if vs.real_servers]  # else its backend-only ones carry it
    if len(services) > MAX_SHARED_WARNINGS:
        yield Problem(
            "virtual_services",
            f"{len(services) - MAX_SHARED_WARNINGS} more transparent services (the first {MAX_SHARED_WARNINGS} are "
            "named): their real servers too must route their replies to the clients through this appliance",
            severity="warning",
        )
    for vs in services[:MAX_SHARED_WARNINGS]:
        addresses = ", ".join(rs.address for rs in vs.real_servers[:3]) + (", ..." if len(vs.real_servers) > 3 else "")
        yield Problem(
            f"{_vs_path(vs)}.transparent",
            f"the real servers ({addresses}) see each client's own address: their route to the clients (their default "
            "route, or a route to the client networks) must go through this appliance, or their replies go straight to "
            "clients that drop them (docs/client-address.md#tproxy-the-clients-own-address)",
            severity="warning",
        )


def _source_address(vs: "VirtualService") -> Iterator[Problem]:
    if vs.source_address is None:
        return
    path = f"{_vs_path(vs)}.source_address"
    source = ipaddress.ip_address(vs.source_address)
    if vs.mode.is_layer4:
        yield Problem(
            path,
            f"{vs.mode.value} forwards packets (the real servers see the client, or the appliance with layer4-snat): "
            "remove source_address, or use a Layer 7 mode",
        )
        return
    if vs.transparent:
        yield Problem(
            path,
            "source_address and transparent both choose the address connections to real servers leave from "
            "(transparent: the client's own; source_address: this one): keep one of them",
        )
    if source.is_unspecified or source.is_multicast:
        yield Problem(path, f"{source} is not an address a connection can leave from: name one of the appliance's addresses")
        return
    for rs in vs.real_servers:
        try:
            server = ipaddress.ip_address(rs.address)
        except ValueError:
            continue  # a DNS name: its family is known when it resolves
        if server.version != source.version:
            yield Problem(
                path,
                f"real server {rs.name} ({rs.address}) is IPv{server.version} and source_address IPv{source.version}: "
                "a connection leaves from an address of its own family; choose an IPv"
                f"{server.version} source_address",
            )


# --- one RIP:PORT behind a Layer 7 service and a Layer 4 SNAT service -----------------------------


@dataclass(frozen=True)
class _Target:
    """A real server as the packets reach it: its address and the ports it is reached on (inclusive ranges)."""

    service: str
    server: str
    address: str
    ports: tuple[tuple[int, int], ...]


def _listener_ports(services: list["VirtualService"]) -> tuple[tuple[int, int], ...]:
    """The listeners' ports as disjoint ranges (at most 32,768, however many listeners and services)."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted({(lis.port.first, lis.port.last) for vs in services for lis in vs.listen}):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return tuple(merged)


def _normal_address(address: str) -> str:
    """One spelling per address (IPv6 compressed, lower case); parsing each of 10,000 real servers' addresses on
    every apply was a sizeable part of its validation: model/types.py `_ip_text` remembers them."""
    found = _ip_text(address)
    return found if found is not None else address.lower()  # a DNS name: the same name is the same server


def _targets(vs: "VirtualService", reached_from: list["VirtualService"]) -> Iterator[_Target]:
    """A real server without a port is reached on the client's port: the listeners' of the service, or of the
    services whose rules reach a backend-only one."""
    listener_ports = _listener_ports(reached_from or [vs])  # once per service, shared by its portless servers
    for rs in vs.real_servers:
        address = _normal_address(rs.address)
        ports = ((rs.port, rs.port),) if rs.port is not None else listener_ports
        yield _Target(vs.name, rs.name, address, ports)


class _PortIndex:
    """The port ranges of one address's Layer 7 real servers, for "which one holds a port of this range" in
    O(log n): sorted by first port, with the running maximum of the last port (a configuration may hold
    100,000 real servers; comparing every pair would take minutes)."""

    def __init__(self, entries: list[tuple[int, int, _Target]]) -> None:
        self.entries = sorted(entries, key=lambda e: e[:2])
        self.firsts = [e[0] for e in self.entries]
        self.reach: list[int] = []  # index of the entry with the highest last port among entries[: i + 1]
        for i, (_, last, _) in enumerate(self.entries):
            self.reach.append(i if not self.reach or last > self.entries[self.reach[-1]][1] else self.reach[-1])

    def overlap(self, first: int, last: int) -> tuple[int, _Target] | None:
        """A port of [first, last] that some entry holds, with that entry's target; None when none does."""
        count = bisect.bisect_right(self.firsts, last)  # entries that start at or below `last`
        if not count:
            return None
        e_first, e_last, target = self.entries[self.reach[count - 1]]
        return (max(first, e_first), target) if e_last >= first else None


MAX_SHARED_WARNINGS = 50  # then one line says how many more: a warning per real server of a big site helps nobody


def shared_real_servers(config: "Config") -> list[Problem]:
    """Warnings: one RIP:PORT used by a Layer 7 service (HAProxy connects to it) and by a layer4-snat service
    (nftables masquerades to it). The guide warns that the firewall rules the two need conflict: the SNAT
    service's connection tracking and HAProxy's own connections meet on the same address and port (pure)."""

    if not any(vs.mode is Mode.LAYER4_SNAT for vs in config.virtual_services):
        return []  # no SNAT service: no real server to compare (the index of 10,000 Layer 7 ones took 180 ms)
    reached_from: dict[str, list["VirtualService"]] = {}
    for vs in config.virtual_services:
        names = {r.use_service for r in vs.rules if r.use_service} | ({vs.default_service} if vs.default_service else set())
        for name in names:
            reached_from.setdefault(name, []).append(vs)
    layer7: list[_Target] = []
    snat: list[_Target] = []
    for vs in config.virtual_services:
        if vs.mode is Mode.LAYER4_SNAT:
            snat += _targets(vs, [])
        elif not vs.mode.is_layer4:
            layer7 += _targets(vs, reached_from.get(vs.name, []) if vs.mode is Mode.BACKEND_ONLY else [])
    by_address: dict[str, list[tuple[int, int, _Target]]] = {}
    for t in layer7:
        by_address.setdefault(t.address, []).extend((first, last, t) for first, last in t.ports)
    index = {address: _PortIndex(entries) for address, entries in by_address.items()}
    problems: list[Problem] = []
    more = 0
    for s in snat:
        found = next((hit for r in s.ports if s.address in index and (hit := index[s.address].overlap(*r))), None)
        if found is None:
            continue
        if len(problems) >= MAX_SHARED_WARNINGS:
            more += 1
            continue
        port, t = found
        where = f"[{s.address}]:{port}" if ":" in s.address else f"{s.address}:{port}"
        problems.append(
            Problem(
                f"virtual_services[{s.service}].real_servers[{s.server}]",
                f"{where} is also a real server of the Layer 7 service {t.service} ({t.server}): the guide warns "
                "that one RIP:PORT behind both a Layer 7 and a Layer 4 SNAT service conflicts (their firewall "
                "rules meet); give one of them another port on the real server, or use one mode for both",
                severity="warning",
            )
        )
    if more:
        problems.append(
            Problem(
                "virtual_services",
                f"{more} more layer4-snat real servers share a RIP:PORT with a Layer 7 service (the first "
                f"{MAX_SHARED_WARNINGS} are named above)",
                severity="warning",
            )
        )
    return problems
