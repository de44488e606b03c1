"""The view objects: the configuration in HAProxy's words, which the templates only lay out.

Plain frozen dataclasses that the transforms build and nothing else changes (engines/haproxy/ha.py
replaces, never mutates). Free text in them is Text, LogFormat or Word (quoting.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .quoting import Text, Word

Directive = tuple[object, ...]
"""The words of one configuration line: HAProxy syntax as `str`, free text as Text, LogFormat or Word."""


@dataclass(frozen=True)
class Acl:
    name: str
    fetch: Word  # sample fetch expression with converters
    flags: tuple[str, ...] = ()  # -m beg, -i
    patterns: tuple[object, ...] = ()  # Text for free text, str for addresses and networks

    @property
    def words(self) -> Directive:
        # `--` ends the flags, so that a pattern beginning with '-' is not read as one
        dashes = ("--",) if any(str(p).startswith("-") for p in self.patterns) else ()
        return ("acl", self.name, self.fetch, *self.flags, *dashes, *self.patterns)


@dataclass(frozen=True)
class Bind:
    address: str  # "192.0.2.10:443", "[2001:db8::1]:8000-8010"
    options: Directive = ()


@dataclass(frozen=True)
class Server:
    name: str
    address: str  # "192.0.2.21:443", "[2001:db8::21]", "pacs1.example.org:443"
    options: Directive = ()


@dataclass(frozen=True)
class Global:
    logs: tuple[Directive, ...]
    maxconn: int | None
    nbthread: int
    hard_stop_after: str
    max_reloads: int
    stats_socket: Word
    server_state_file: Word
    ssl_bind_ciphers: str
    ssl_bind_ciphersuites: str
    ssl_bind_options: str
    ssl_server_options: str
    localpeer: str | None = None  # the HA pair: this node's name in the peers section
    chroot: Word | None = None  # the workers' root directory
    user: Word | None = None  # the user and group the workers run as
    group: Word | None = None
    notes: tuple[str, ...] = ()  # comment lines: why a worker keeps a privilege
    lua_loads: tuple[Word, ...] = ()  # Lua scripts (the WAF tier's header-only verdict)


@dataclass(frozen=True)
class Defaults:
    retries: int
    timeouts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Frontend:
    section: ClassVar[str] = "frontend"
    name: str
    description: Text | None
    mode: str
    binds: tuple[Bind, ...]
    maxconn: int | None
    options: tuple[str, ...]
    timeouts: tuple[tuple[str, str], ...]
    tcp_request: tuple[Directive, ...]  # inspect-delay and content rules
    acls: tuple[Acl, ...]
    http_request: tuple[Directive, ...]
    http_response: tuple[Directive, ...]
    use_backends: tuple[tuple[str, str], ...]  # (backend, condition), first match wins
    default_backend: str | None


@dataclass(frozen=True)
class Backend:
    section: ClassVar[str] = "backend"
    name: str
    description: Text | None
    mode: str
    balance: str
    hash_type: str | None
    options: tuple[str, ...]
    timeouts: tuple[tuple[str, str], ...]
    persistence: tuple[Directive, ...]  # stick-table, stick rules, cookie, and what they need
    health_check: tuple[Directive, ...]  # http-check rules, timeout check
    http_request: tuple[Directive, ...]
    http_response: tuple[Directive, ...]
    http_reuse: str | None
    retries: tuple[Directive, ...]  # Layer 7 retries of idempotent requests
    source: Directive | None
    default_server: Directive
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Skipped:
    """A service that HAProxy does not carry, written as a comment so the file says where it went."""

    section: ClassVar[str] = "skipped"
    name: str
    mode: str
    engine: str


@dataclass(frozen=True)
class Resolvers:
    """A `resolvers` section: name servers HAProxy asks at run time (engines/haproxy/resolvers.py)."""

    name: str
    nameservers: tuple[tuple[str, str], ...]  # (name, ADDR:PORT)
    settings: tuple[Directive, ...]  # resolve_retries, timeouts, holds


@dataclass(frozen=True)
class HAProxyConfig:
    global_: Global
    defaults: Defaults
    sections: tuple[Frontend | Backend | Skipped, ...]
    peers: object | None = None  # the HA pair's peers section (engines/haproxy/ha.py)
    resolvers: tuple[Resolvers, ...] = ()  # real servers named by DNS (engines/haproxy/resolvers.py)
