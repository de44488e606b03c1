"""How real servers learn who the client was, and where connections to them leave from (issue 15).

The guide lists X-Forwarded-For for HTTP and TPROXY (`transparent: true`) for the rest; a Layer 7 service
may instead leave from a chosen address (`source_address`, e.g. its own VIP). `client_address_problems` is
pure: what cannot work is an error, what the real servers' side needs is a warning (docs/client-address.md).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Iterator

from .problems import Problem

if TYPE_CHECKING:
    from .config import Config, VirtualService


def _vs_path(vs: "VirtualService") -> str:
    return f"virtual_services[{vs.name}]"


def client_address_problems(config: "Config") -> list[Problem]:
    """Every problem of source_address (errors) and what the real servers need (warnings)."""
    problems: list[Problem] = []
    for vs in config.virtual_services:
        problems += _source_address(vs)
    return problems


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
