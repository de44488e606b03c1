"""Real servers named by DNS (issue 15; model/resolvers.py): HAProxy's `resolvers` sections, and what a server
line given by name adds.

  resolvers dns
      nameserver ns1 192.0.2.53:53
      accepted_payload_size 1232    answers over 512 bytes still come by UDP (EDNS0; 1232 avoids fragments)
      resolve_retries 3             retries
      timeout resolve 1s            how often HAProxy looks at its resolutions (it asks once hold valid ran out)
      timeout retry 1s              timeout: time to wait for an answer before asking again
      hold valid 10s                hold_valid: an answer is used this long, then the name is asked again
      hold obsolete 30s             hold_failed: an address the name no longer has is still used this long
      hold nx|refused|timeout|other 30s   hold_failed: when the name stops resolving, its last address stays
                                    this long; then the server goes into maintenance until the name resolves again

  server rs1 pacs.example.org:443 ... resolvers dns resolve-prefer ipv4 init-addr last,libc,none

`init-addr last,libc,none`: at start the address comes from the server-state file, else the system resolver,
else the server waits in maintenance for the name servers (`last,none` with `system_resolver: false`). `resolve-prefer ipv4` asks A records first (HAProxy
asks AAAA when there is none), as hospital networks mostly are IPv4.
"""

from __future__ import annotations

from dataclasses import replace

from ...model.config import Config, VirtualService
from ...model.resolvers import is_dns_name
from .view import Directive, Resolvers, Server

ACCEPTED_PAYLOAD_SIZE = "1232"  # the DNS flag day 2020 size: no IP fragmentation of UDP answers


def transform_resolvers(config: Config) -> tuple[Resolvers, ...]:
    """A `resolvers` section for each one of the configuration that a service uses (an unused one is not written)."""
    used = {vs.resolvers for vs in config.virtual_services if vs.resolvers}
    sections = []
    for r in config.resolvers:
        if r.name not in used:
            continue
        failed = str(r.hold_failed)
        settings: tuple[Directive, ...] = (
            ("accepted_payload_size", ACCEPTED_PAYLOAD_SIZE),
            ("resolve_retries", str(r.retries)),
            ("timeout", "resolve", "1s"),
            ("timeout", "retry", str(r.timeout)),
            ("hold", "valid", str(r.hold_valid)),
            ("hold", "obsolete", failed),
            *(("hold", status, failed) for status in ("nx", "refused", "timeout", "other")),
        )
        nameservers = tuple((f"ns{i}", address) for i, address in enumerate(r.nameservers, 1))
        sections.append(Resolvers(r.name, nameservers, settings))
    return tuple(sections)


def resolve_options(vs: VirtualService, address: str | None, config: Config) -> list[object]:
    """The server options that make HAProxy look `address` up at run time: none for an IP address."""
    if vs.resolvers is None or not is_dns_name(address):
        return []
    section = next((r for r in config.resolvers if r.name == vs.resolvers), None)
    init_addr = "last,libc,none" if section is None or section.system_resolver else "last,none"
    return ["resolvers", vs.resolvers, "resolve-prefer", "ipv4", "init-addr", init_addr]


def resolved_servers(servers: list[Server], vs: VirtualService, config: Config) -> list[Server]:
    """`servers` (the real servers', then the fallback's) with the resolve options of those given by DNS name."""
    addresses = {rs.name: rs.address for rs in vs.real_servers}
    if vs.fallback is not None:
        addresses["fallback"] = vs.fallback.address
    return [replace(s, options=(*s.options, *resolve_options(vs, addresses.get(s.name), config))) for s in servers]
