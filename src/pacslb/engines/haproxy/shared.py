"""The small transforms that frontends and backends both use: addresses, timeout overrides, header rules."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ...model.config import Config, VirtualService
from .quoting import LogFormat, Word
from .tables import TIMEOUT_NAMES
from .view import Directive


def haproxy_address(address: str, port: str | int | None) -> str:
    """`ADDR:PORT` in HAProxy's words; IPv6 addresses in brackets (a bare one would lose its last group to the port)."""
    host = f"[{address}]" if _is_ipv6(address) else address
    return host if port is None else f"{host}:{port}"


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False  # a DNS name


def timeout_overrides(config: Config, vs: VirtualService, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The service's own timeouts among `names`; the rest come from the defaults section."""
    effective = config.effective_timeouts(vs)
    return tuple((TIMEOUT_NAMES[name], str(getattr(effective, name))) for name in names if getattr(vs.timeouts, name) is not None)


def header_rules(keyword: str, rules: Iterable) -> list[Directive]:
    """Header changes in the order given: set-header, add-header, del-header."""
    lines: list[Directive] = []
    for rule in rules:
        if rule.action == "delete":
            lines.append((keyword, "del-header", Word(rule.name)))
        else:
            lines.append((keyword, f"{rule.action}-header", Word(rule.name), LogFormat(rule.value)))
    return lines
