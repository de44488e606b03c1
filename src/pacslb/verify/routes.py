"""The routes to verify, planned from the model alone (pure): one request per listener and rule, and the rules
that no request can reach.

A route is one way into a virtual service: a rule of one of its listeners, or the default (no rule takes the
request). For each, `plan_routes` builds a request that takes that rule and no earlier one (first match wins),
and says what should answer: a backend-only service (or the virtual service's own real servers), or a redirect
or deny status. `shadowed_by` finds rules that every request they match is taken by an earlier rule.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field, replace
from typing import Literal

from ..model.config import Config, HeaderMatch, Match, Mode, Rule, VirtualService

DEFAULT_ROUTE = "(default)"
VERIFY_PATH = "/pacslb-verify"  # a path no rule is likely to name: the default route's request
MAX_CANDIDATES = 64  # requests tried per rule to find one that no earlier rule takes (bounds the product of lists)

Kind = Literal["http", "https", "tls", "tcp", "amqp", "dicom"]


@dataclass(frozen=True)
class Request:
    """What a client sends that rules look at (None: not sent)."""

    path: str = VERIFY_PATH
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    sni: str | None = None


@dataclass(frozen=True)
class Route:
    """One route of a virtual service and what should answer it."""

    virtual_service: str
    address: str  # where the appliance connects: the listener's address (loopback for a wildcard)
    port: int
    rule: str  # a rule's name, or DEFAULT_ROUTE
    kind: Kind
    request: Request = field(default_factory=Request)
    expect_service: str | None = None  # the service whose real servers should answer
    expect_status: int | None = None  # a redirect's or deny's status (no real server answers)
    called_ae: str | None = None  # dicom: the AE title the real servers answer to
    calling_ae: str | None = None
    not_sent: str | None = None  # why no request is sent (a source-only rule, an unreachable rule)


def _connect_address(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        return "::1" if ip.version == 6 else "127.0.0.1"
    return str(ip)


def _kind(config: Config, vs: VirtualService, rule: Rule | None) -> Kind:
    """How to talk to a virtual service: its mode, its TLS, and the check of the service that should answer."""
    if vs.mode is Mode.LAYER7_HTTP:
        return "https" if vs.tls is not None else "http"
    if rule is not None and rule.match.sni:
        return "tls"
    target = _service(config, rule.use_service if rule is not None and rule.use_service else vs.default_service) or vs
    if target.health_check.type == "dicom-echo":
        return "dicom"
    if target.health_check.type == "amqp" or "AMQP" in target.name.upper():
        return "amqp"
    return "tcp"


def _service(config: Config, name: str | None) -> VirtualService | None:
    return next((s for s in config.virtual_services if s.name == name), None)


def _header_value(h: HeaderMatch) -> str:
    return h.value if h.value is not None else "1"


def candidates(match: Match) -> list[Request]:
    """Requests that `match` takes, one per combination of its lists' alternatives (at most MAX_CANDIDATES)."""
    paths: list[str] = list(match.path_begins) or [VERIFY_PATH]
    if match.path_ends:
        paths = [p.rstrip("/") + "/verify" + end for p in paths for end in match.path_ends]
    hosts: list[str | None] = list(match.host) or [None]
    snis: list[str | None] = list(match.sni) or [None]
    headers: list[tuple[tuple[str, str], ...]] = [((h.name, _header_value(h)),) for h in match.header] or [()]
    out = [Request(p, h, hd, s) for p, h, hd, s in itertools.product(paths, hosts, headers, snis)]
    return out[:MAX_CANDIDATES]


def _header_holds(h: HeaderMatch, headers: tuple[tuple[str, str], ...]) -> bool:
    values = [v for n, v in headers if n.lower() == h.name.lower()]
    if h.value is None:
        return bool(values)
    if h.match == "exact":
        return h.value in values
    if h.match == "begins":
        return any(v.startswith(h.value) for v in values)
    return any(h.value in v for v in values)


def matches(match: Match, request: Request, http: bool) -> bool:
    """Whether a rule's conditions hold for a request (as HAProxy evaluates them); `source` never holds for the
    appliance's own requests (they come from a local address)."""
    if match.source:
        return False
    if http:
        if match.path_begins and not any(request.path.startswith(p) for p in match.path_begins):
            return False
        if match.path_ends and not any(request.path.endswith(e) for e in match.path_ends):
            return False
        if match.host and (request.host or "").lower() not in {h.lower() for h in match.host}:
            return False
        if match.header and not any(_header_holds(h, request.headers) for h in match.header):
            return False
    elif match.http_only_conditions:
        return False
    if match.sni and (request.sni or "").lower() not in {s.lower() for s in match.sni}:
        return False
    return True


def _implies_header(k: HeaderMatch, j: HeaderMatch) -> bool:
    """Every value that satisfies `k` satisfies `j` (same header)."""
    if k.name.lower() != j.name.lower():
        return False
    if j.value is None:
        return True
    if k.value is None:
        return False
    if j.match == "exact":
        return k.match == "exact" and k.value == j.value
    if j.match == "begins":
        return k.match in ("exact", "begins") and k.value.startswith(j.value)
    return j.value in k.value


def _covers(later: Match, earlier: Match) -> bool:
    """Every request `later` takes, `earlier` takes too (a sufficient test: each condition of `earlier` is implied)."""
    if earlier.path_begins and not (
        later.path_begins and all(any(p.startswith(q) for q in earlier.path_begins) for p in later.path_begins)
    ):
        return False
    if earlier.path_ends and not (
        later.path_ends and all(any(p.endswith(q) for q in earlier.path_ends) for p in later.path_ends)
    ):
        return False
    for name in ("host", "sni"):
        mine, theirs = getattr(later, name), getattr(earlier, name)
        if theirs and not (mine and {v.lower() for v in mine} <= {v.lower() for v in theirs}):
            return False
    if earlier.header and not (later.header and all(any(_implies_header(k, j) for j in earlier.header) for k in later.header)):
        return False
    if earlier.source and not (later.source and all(any(_subnet(n, m) for m in earlier.source) for n in later.source)):
        return False
    return True


def _subnet(inner: str, outer: str) -> bool:
    a, b = ipaddress.ip_network(inner, strict=False), ipaddress.ip_network(outer, strict=False)
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def shadowed_by(vs: VirtualService) -> dict[str, str]:
    """Rules that no request can reach, each with the earlier rule that takes every request it matches."""
    found: dict[str, str] = {}
    for k, rule in enumerate(vs.rules):
        for earlier in vs.rules[:k]:
            if _covers(rule.match, earlier.match):
                found[rule.name] = earlier.name
                break
    return found


def _expectation(rule: Rule) -> tuple[str | None, int | None]:
    if rule.redirect is not None:
        return None, rule.redirect.code
    if rule.deny is not None:
        return None, rule.deny.status
    return rule.use_service, None


def _route_for_rule(config: Config, vs: VirtualService, k: int, address: str, port: int, shadow: dict[str, str]) -> Route:
    rule = vs.rules[k]
    http = vs.mode is Mode.LAYER7_HTTP
    service, status = _expectation(rule)
    base = Route(vs.name, address, port, rule.name, _kind(config, vs, rule), expect_service=service, expect_status=status)
    base = _with_ae(config, base)
    if rule.name in shadow:
        return _replace(base, not_sent=f"shadowed: rule {shadow[rule.name]} (earlier) takes every request it matches")
    if rule.match.source:
        nets = ", ".join(str(n) for n in rule.match.source)
        return _replace(base, not_sent=f"needs a client in {nets}: send one from there")
    for request in candidates(rule.match):
        if not any(matches(e.match, request, http) for e in vs.rules[:k]):
            return _replace(base, request=request)
    return _replace(base, not_sent="every request pacslb builds for it is taken by an earlier rule: verify it by hand")


def _default_route(config: Config, vs: VirtualService, address: str, port: int) -> Route:
    http = vs.mode is Mode.LAYER7_HTTP
    service = vs.default_service or (vs.name if vs.real_servers else None)
    route = _with_ae(config, Route(vs.name, address, port, DEFAULT_ROUTE, _kind(config, vs, None), expect_service=service))
    if service is None:
        return _replace(route, expect_status=503, not_sent=None)
    if any(matches(r.match, route.request, http) for r in vs.rules):
        return _replace(route, not_sent="a rule takes every request: no default route")
    return route


def _with_ae(config: Config, route: Route) -> Route:
    target = _service(config, route.expect_service)
    check = target.health_check if target is not None else None
    if route.kind == "dicom" and check is not None and check.type == "dicom-echo":
        return _replace(route, called_ae=check.called_ae, calling_ae=check.calling_ae)
    return route


def _replace(route: Route, **changes) -> Route:
    return replace(route, **changes)


def plan_routes(config: Config) -> list[Route]:
    """Every route of every Layer 7 virtual service, per listener, in the order of the configuration.

    Layer 4 services have no rules and are not verified here (nftables keeps no per-request record).
    """
    routes: list[Route] = []
    for vs in config.virtual_services:
        if not vs.mode.is_layer7:
            continue
        shadow = shadowed_by(vs)
        for listener in vs.listen:
            address, port = _connect_address(str(listener.address)), listener.port.first
            routes.extend(_route_for_rule(config, vs, k, address, port, shadow) for k in range(len(vs.rules)))
            routes.append(_default_route(config, vs, address, port))
    return routes
