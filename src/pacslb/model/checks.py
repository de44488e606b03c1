"""Checks that span objects: references between services, listener clashes, what each mode can have.

`check(config)` is pure and returns every problem it finds. `check_files(config, base_dir)` is the
one place that looks at the disk: every file the configuration names (model/files.py says where they may
come from, and what they must be).
"""

from __future__ import annotations

import ipaddress
import stat
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography import x509

from .client_address import client_address_problems
from .cluster import cluster_problems
from .cluster_tls import etcd_tls_problems
from .config import Config, Mode, Protocol, VirtualService
from .files import (
    MAX_PEM_BYTES,
    Reserved,
    location_problems,
    named_files,
    read_named_file,
    regular_file_problem,
    resolve,
    script_problem,
)
from .gslb import gslb_problems
from .ha_checks import ha_problems
from .limits import MAX_PORT_RANGES
from .network import network_problems
from .problems import Problem
from .resolvers import resolvers_problems
from .rewrite import rewrite_problems
from .waf import waf_problems


def _vs_path(vs: VirtualService) -> str:
    return f"virtual_services[{vs.name}]"


def check(config: Config) -> list[Problem]:
    """Every cross-object problem of a structurally valid configuration."""
    problems: list[Problem] = []
    problems += _duplicate_names(config)
    problems += _mode_features(config)
    problems += _references(config)
    problems += _listener_clashes(config)
    problems += _layer4_addresses(config)
    problems += ha_problems(config)  # the HA pair (issue 7): model/ha.py
    problems += gslb_problems(config)  # global server load balancing (issue 19): model/gslb.py
    problems += cluster_problems(config)  # the active-active cluster (issue 20): model/cluster.py
    problems += network_problems(config)  # a single node's VIP addresses (issue 14): model/network.py
    problems += waf_problems(config)  # the WAF tier (issue 18): model/waf.py
    problems += rewrite_problems(config)  # URL rewriting (issue 15): model/rewrite.py
    problems += resolvers_problems(config)  # real servers named by DNS (issue 15): model/resolvers.py
    problems += client_address_problems(config)  # the client's address on every VIP (issue 15): model/client_address.py
    return problems


def _duplicates(names: list[str]) -> list[str]:
    return [n for n, count in Counter(names).items() if count > 1]


def _duplicate_names(config: Config) -> Iterator[Problem]:
    for name in _duplicates([vs.name for vs in config.virtual_services]):
        yield Problem(
            f"virtual_services[{name}]", f"the name '{name}' is used by more than one virtual service; names must be unique"
        )
    for vs in config.virtual_services:
        for name in _duplicates([rs.name for rs in vs.real_servers]):
            yield Problem(f"{_vs_path(vs)}.real_servers[{name}]", f"two real servers are called '{name}'; rename one")
        for name in _duplicates([r.name for r in vs.rules]):
            yield Problem(f"{_vs_path(vs)}.rules[{name}]", f"two rules are called '{name}'; rename one")
        if "fallback" in {rs.name for rs in vs.real_servers} and vs.fallback is not None:
            yield Problem(
                f"{_vs_path(vs)}.real_servers[fallback]",
                "the name 'fallback' is taken by the fallback server; rename this real server",
            )


def _mode_features(config: Config) -> Iterator[Problem]:
    """What each mode can and cannot have."""
    for vs in config.virtual_services:
        p = _vs_path(vs)
        mode = vs.mode
        if mode is Mode.BACKEND_ONLY:
            if vs.listen:
                yield Problem(f"{p}.listen", "a backend-only service has no listener: remove listen, or choose a Layer 7 mode")
            if vs.rules:
                yield Problem(f"{p}.rules", "a backend-only service cannot have rules: put them on the service that reaches it")
            if vs.default_service:
                yield Problem(f"{p}.default_service", "a backend-only service cannot have a default_service")
            if vs.tls:
                yield Problem(
                    f"{p}.tls", "TLS is terminated on the service that reaches this backend-only service: move tls there"
                )
        elif not vs.listen:
            yield Problem(f"{p}.listen", f"a {mode.value} service needs at least one listener (address and port)")

        if mode is not Mode.BACKEND_ONLY and not mode.is_layer4 and not vs.real_servers and not vs.default_service:
            if not any(r.use_service for r in vs.rules):
                yield Problem(
                    f"{p}.real_servers",
                    "has no real servers, no rules and no default_service: traffic would have nowhere to go",
                )
        if mode is Mode.BACKEND_ONLY and not vs.real_servers:
            yield Problem(f"{p}.real_servers", "a backend-only service needs at least one real server")
        if mode.is_layer4 and not vs.real_servers:
            yield Problem(f"{p}.real_servers", f"a {mode.value} service needs at least one real server")

        if mode.is_layer4:
            for name in ("rules", "default_service", "tls", "fallback"):
                if getattr(vs, name):
                    yield Problem(
                        f"{p}.{name}", f"{mode.value} forwards packets and cannot have {name}: use a Layer 7 mode for it"
                    )
            if vs.headers.request or vs.headers.response or vs.headers.forwarded_for:
                yield Problem(f"{p}.headers", f"{mode.value} does not see HTTP headers: remove headers, or use layer7-http")
            if vs.proxy_protocol != "none":
                yield Problem(f"{p}.proxy_protocol", f"{mode.value} cannot send the PROXY protocol: use a Layer 7 mode")
            if vs.connection_reuse != "safe":
                yield Problem(f"{p}.connection_reuse", f"{mode.value} does not see HTTP requests: remove connection_reuse")
            if vs.transparent:
                yield Problem(
                    f"{p}.transparent", f"{mode.value} is transparent by nature (or SNAT by choice): remove transparent"
                )
            if vs.persistence.type not in ("none", "source-ip"):
                yield Problem(f"{p}.persistence.type", f"{mode.value} supports persistence 'none' or 'source-ip' only")
            if any(rs.encrypted for rs in vs.real_servers):
                yield Problem(
                    f"{p}.real_servers", f"{mode.value} does not terminate TLS, so it cannot re-encrypt: set encrypted: false"
                )
            if mode is Mode.LAYER4_DR:
                for rs in vs.real_servers:
                    if rs.port is not None and any(not (lis.port.is_single and lis.port.first == rs.port) for lis in vs.listen):
                        yield Problem(
                            f"{p}.real_servers[{rs.name}].port",
                            "direct routing cannot translate ports: remove port, or make it equal to the VIP port",
                        )
        elif vs.protocol is not Protocol.TCP:
            yield Problem(f"{p}.protocol", "only Layer 4 services carry UDP: remove protocol, or choose layer4-nat")

        if mode is Mode.LAYER7_TCP:
            for rule in vs.rules:
                http = rule.match.http_only_conditions
                if http:
                    yield Problem(
                        f"{p}.rules[{rule.name}].match",
                        f"{', '.join(http)} need HTTP: a layer7-tcp service can match on sni and source only",
                    )
                if rule.redirect:
                    yield Problem(
                        f"{p}.rules[{rule.name}].redirect", "redirect is an HTTP action: use deny or use_service in layer7-tcp"
                    )
            if vs.headers.request or vs.headers.response or vs.headers.forwarded_for:
                yield Problem(f"{p}.headers", "layer7-tcp does not see HTTP headers: remove headers, or use layer7-http")
            if vs.connection_reuse != "safe":
                yield Problem(
                    f"{p}.connection_reuse", "layer7-tcp keeps one server connection per client: remove connection_reuse"
                )
            if vs.tls and (vs.tls.hsts or vs.tls.http_redirect_port):
                yield Problem(f"{p}.tls", "hsts and http_redirect_port need HTTP: use layer7-http")

        if vs.persistence.type in ("http-cookie", "app-cookie", "x-forwarded-for") and mode not in (
            Mode.LAYER7_HTTP,
            Mode.BACKEND_ONLY,
        ):
            yield Problem(
                f"{p}.persistence.type", f"'{vs.persistence.type}' persistence needs HTTP: use layer7-http, or source-ip"
            )
        if vs.persistence.type == "ssl-session-id":
            if mode not in (Mode.LAYER7_TCP, Mode.BACKEND_ONLY) or vs.tls:
                yield Problem(
                    f"{p}.persistence.type",
                    "ssl-session-id persistence reads the TLS handshake, so it needs layer7-tcp without tls termination",
                )

        for rule in vs.rules:
            if rule.match.sni and mode is Mode.LAYER7_HTTP and not vs.tls:
                yield Problem(
                    f"{p}.rules[{rule.name}].match.sni",
                    "an HTTP service sees the TLS server name only when it terminates TLS: add tls, or use layer7-tcp",
                )

        if (
            vs.tls
            and vs.tls.http_redirect_port
            and any(lis.port.first <= vs.tls.http_redirect_port <= lis.port.last for lis in vs.listen)
        ):
            yield Problem(
                f"{p}.tls.http_redirect_port", "is one of the service's own TLS ports: choose another port (usually 80)"
            )


def _layer4_addresses(config: Config) -> Iterator[Problem]:
    """Layer 4 forwards packets: real servers are IP addresses of the same family as the service's listeners."""
    for vs in config.virtual_services:
        if not vs.mode.is_layer4 or not vs.listen:
            continue
        families = {ipaddress.ip_address(lis.address).version for lis in vs.listen}
        if len(families) > 1:
            yield Problem(
                f"{_vs_path(vs)}.listen", f"{vs.mode.value} listens on one address family: split IPv4 and IPv6 into two services"
            )
            continue
        family = families.pop()
        for rs in vs.real_servers:
            try:
                version = ipaddress.ip_address(rs.address).version
            except ValueError:
                yield Problem(
                    f"{_vs_path(vs)}.real_servers[{rs.name}].address", f"{vs.mode.value} needs an IP address, not a DNS name"
                )
                continue
            if version != family:
                yield Problem(
                    f"{_vs_path(vs)}.real_servers[{rs.name}].address",
                    f"is IPv{version} behind an IPv{family} listener: {vs.mode.value} cannot translate address families",
                )


def _references(config: Config) -> Iterator[Problem]:
    """Rules and defaults must name backend-only services, and every backend-only service must be reached."""
    by_name = {vs.name: vs for vs in config.virtual_services}
    reached_from: dict[str, set[Mode]] = defaultdict(set)
    for vs in config.virtual_services:
        targets = [(f"{_vs_path(vs)}.rules[{r.name}].use_service", r.use_service) for r in vs.rules if r.use_service]
        if vs.default_service:
            targets.append((f"{_vs_path(vs)}.default_service", vs.default_service))
        for path, target in targets:
            other = by_name.get(target)
            if other is None:
                yield Problem(path, f"no virtual service is called '{target}': add it as a backend-only service, or fix the name")
            elif other.mode is not Mode.BACKEND_ONLY:
                yield Problem(
                    path, f"'{target}' is a {other.mode.value} service; rules can send traffic only to backend-only services"
                )
            elif target == vs.name:
                yield Problem(path, "a service cannot send traffic to itself")
            else:
                reached_from[target].add(vs.mode)
    for vs in config.virtual_services:
        if vs.mode is not Mode.BACKEND_ONLY:
            continue
        modes = reached_from.get(vs.name)
        if not modes:
            yield Problem(
                _vs_path(vs),
                "nothing reaches this backend-only service: name it in a rule's use_service or a default_service, or remove it",
            )
        elif len(modes) > 1:
            yield Problem(
                _vs_path(vs),
                "is reached from both layer7-http and layer7-tcp services; a backend-only service serves one of them",
            )
        elif Mode.LAYER7_TCP in modes:
            if vs.persistence.type in ("http-cookie", "app-cookie", "x-forwarded-for"):
                yield Problem(
                    f"{_vs_path(vs)}.persistence.type", "is reached from a layer7-tcp service, which cannot use HTTP persistence"
                )
            if vs.headers.request or vs.headers.response or vs.headers.forwarded_for:
                yield Problem(
                    f"{_vs_path(vs)}.headers",
                    "is reached from a layer7-tcp service, which does not see HTTP headers: remove headers",
                )
            if vs.connection_reuse != "safe":
                yield Problem(
                    f"{_vs_path(vs)}.connection_reuse",
                    "is reached from a layer7-tcp service, which keeps one server connection per client: remove connection_reuse",
                )
            if vs.fallback is not None and vs.fallback.maintenance_page:
                yield Problem(
                    f"{_vs_path(vs)}.fallback.maintenance_page",
                    "is reached from a layer7-tcp service, where a maintenance page (HTTP) cannot be served: use a fallback server",
                )
        elif Mode.LAYER7_HTTP in modes and vs.persistence.type == "ssl-session-id":
            yield Problem(
                f"{_vs_path(vs)}.persistence.type",
                "is reached from a layer7-http service, where TLS is already decrypted: use source-ip or http-cookie",
            )


def _protocols(vs: VirtualService) -> set[str]:
    if vs.protocol is Protocol.TCP_UDP:
        return {"tcp", "udp"}
    return {vs.protocol.value}


@dataclass(frozen=True)
class _Bound:
    """One listener as the clash check sees it (its place in the configuration decides which one is named)."""

    order: int
    path: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    wildcard: bool
    first: int
    last: int
    protocols: frozenset[str]

    def clashes(self, other: "_Bound") -> bool:
        same_family = self.ip.version == other.ip.version
        return (
            (self.ip == other.ip or ((self.wildcard or other.wildcard) and same_family))
            and self.first <= other.last
            and other.first <= self.last
            and bool(self.protocols & other.protocols)
        )


def _bounds(config: Config) -> Iterator[_Bound]:
    order = 0
    for vs in config.virtual_services:
        ports = [(f"{_vs_path(vs)}.listen[{i}]", lis.address, lis.port.first, lis.port.last) for i, lis in enumerate(vs.listen)]
        if vs.tls and vs.tls.http_redirect_port:
            # The renderer writes one plain redirect listener per address, however many TLS ports it has.
            ports += [
                (f"{_vs_path(vs)}.tls.http_redirect_port", address, vs.tls.http_redirect_port, vs.tls.http_redirect_port)
                for address in dict.fromkeys(lis.address for lis in vs.listen)
            ]
        protocols = frozenset(_protocols(vs))
        for path, address, first, last in ports:
            ip = ipaddress.ip_address(address)
            yield _Bound(order, path, ip, ip.is_unspecified, first, last, protocols)
            order += 1


def _listener_clashes(config: Config) -> Iterator[Problem]:
    """Two services on the same address, port and protocol (a wildcard address clashes with every address).

    Each listener is named against the first earlier one it clashes with. Single ports (nearly all) are
    looked up by (family, port) in an index, so that 1,000s of services cost no more than a pass; port
    ranges, rare, are compared with each earlier listener (at most MAX_PORT_RANGES of them, model/limits.py)."""
    every: dict[tuple[int, int], list[_Bound]] = defaultdict(list)  # single ports by (family, port)
    exact: dict[tuple[object, int], list[_Bound]] = defaultdict(list)  # ... by (address, port)
    wildcards: dict[tuple[int, int], list[_Bound]] = defaultdict(list)  # ... 0.0.0.0 and :: by (family, port)
    ranges: list[_Bound] = []
    bounds = list(_bounds(config))
    ranged = sum(1 for b in bounds if b.first != b.last)
    if ranged > MAX_PORT_RANGES:  # each range is compared with every listener: their number is bounded
        yield Problem("virtual_services", f"at most {MAX_PORT_RANGES:,} listeners with a port range in all (this one has "
                                          f"{ranged:,}): list the ports that are used, or merge ranges")  # fmt: skip
        return
    for bound in bounds:
        family = bound.ip.version
        if bound.first != bound.last:
            ports = range(bound.first, bound.last + 1)
            if len(ports) > len(every):  # look up whichever is fewer: the range's ports, or the ports in use
                ports = [port for (v, port) in every if v == family and bound.first <= port <= bound.last]  # type: ignore[assignment]
            candidates = [b for port in ports for b in every.get((family, port), ())]
        elif bound.wildcard:
            candidates = list(every.get((family, bound.first), ()))
        else:
            candidates = [*exact.get((bound.ip, bound.first), ()), *wildcards.get((family, bound.first), ())]
        candidates += ranges
        taken = min((c for c in candidates if bound.clashes(c)), key=lambda c: c.order, default=None)
        if taken is not None:
            port = max(bound.first, taken.first)
            yield Problem(bound.path, f"{bound.ip} port {port} is already taken by {taken.path}: choose another address or port")
        if bound.first != bound.last:
            ranges.append(bound)
            continue
        every[(family, bound.first)].append(bound)
        (wildcards[(family, bound.first)] if bound.wildcard else exact[(bound.ip, bound.first)]).append(bound)


def check_files(config: Config, base_dir: Path, reserved: Reserved | None = None) -> list[Problem]:
    """Every file the configuration names: in an allowed directory (never in `reserved`, the appliance's state
    directory, when the caller knows it), a regular file of bounded size, and then what it must hold (PEM,
    a page) or be (a script root may run). Relative paths are read from `base_dir`. A file refused for where
    it lies is never opened."""
    problems = location_problems(config, base_dir, reserved)
    refused = {p.path for p in problems}
    pem = _pem_fields(config)
    for named in named_files(config):
        if named.field in refused or named.field.startswith("cluster.etcd.tls."):  # etcd's files: etcd_tls_problems
            continue
        file = resolve(named.value, base_dir)
        if named.kind == "script":
            problem = script_problem(named.field, named.value)
        elif named.kind == "page":
            problem = _page_problem(named.field, file)
        elif named.field in pem:
            problems += _pem_problems(named.field, file, need_key=pem[named.field])
            continue
        else:  # a file HAProxy does not read as PEM here (the management server reads its certificate at its start)
            problem = regular_file_problem(named.field, file, MAX_PEM_BYTES, "PEM file")
        problems += [problem] if problem else []
    problems += etcd_tls_problems(config, base_dir, refused)  # the cluster's etcd over TLS (issue 20)
    for vs in config.virtual_services:
        encrypted = any(rs.encrypted for rs in vs.real_servers) or (vs.fallback and vs.fallback.encrypted)
        if encrypted and vs.server_tls.verify == "required" and not vs.server_tls.ca_file:
            problems.append(
                Problem(
                    f"{_vs_path(vs)}.server_tls.ca_file",
                    "encrypted real servers are verified by default: set ca_file to the CA that signed them, or verify: none",
                )
            )
    return problems


def _pem_fields(config: Config) -> dict[str, bool]:
    """The fields whose files are read as PEM, and whether each must hold a private key too."""
    fields: dict[str, bool] = {}
    for vs in config.virtual_services:
        for i in range(len(vs.tls.certificates) if vs.tls else 0):
            fields[f"{_vs_path(vs)}.tls.certificates[{i}]"] = True
        if vs.server_tls.ca_file and vs.server_tls.verify == "required":  # with verify none HAProxy never reads it
            fields[f"{_vs_path(vs)}.server_tls.ca_file"] = False
    if config.ha is not None and config.ha.sync.peer_certificate:
        fields["ha.sync.peer_certificate"] = False
    return fields


# HAProxy answers `http-request return ... file` from one buffer (16 KiB with the response's headers).
MAX_PAGE_BYTES = 15 * 1024


def _page_problem(path: str, file: Path) -> Problem | None:
    found = read_named_file(path, file, MAX_PAGE_BYTES, "maintenance page")
    if isinstance(found, Problem):
        return found
    mode = found.mode
    if not mode & stat.S_IROTH:
        # A page goes to every client of the VIP: never publish what the host keeps from its own users.
        return Problem(
            path,
            f"{file} is not readable by every local user (mode {mode:04o}): a maintenance page is served "
            "to every client of the VIP, so pacslb serves only a file that is public on the host already; make it "
            "readable (chmod o+r) if it is meant to be public",
        )
    return None


def _pem_problems(path: str, file: Path, need_key: bool) -> list[Problem]:
    found = read_named_file(path, file, MAX_PEM_BYTES, "PEM file")
    if isinstance(found, Problem):
        return [found]
    text = found.data.decode(errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        return [Problem(path, f"{file} holds no PEM certificate")]
    if need_key and "PRIVATE KEY-----" not in text:
        return [Problem(path, f"{file} holds no private key: put the key in the same PEM file as the certificate")]
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        return [Problem(path, f"{file}: the first certificate cannot be read (damaged PEM)")]
    if need_key and cert.issuer == cert.subject:
        return [
            Problem(
                path,
                f"{file} is self-signed: clients will warn; replace it with a certificate from your CA before production",
                severity="warning",
            )
        ]
    return []
