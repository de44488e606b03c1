"""Send each planned route's request through the appliance and tell which service and real server answered.

Which real server took a request is read from HAProxy's own counters: the cumulative sessions (`stot`) of
every server, read on the stats socket just before and just after the request. The request is the only
one in flight from pacslb (routes are sent one at a time), so before cut-over exactly one server's counter
moves; when other traffic moves more than one, the route is sent again (at most ATTEMPTS times) and then
reported as ambiguous. This needs no change to the running configuration, works alike for HTTP and TCP
services, and costs one `show stat` per request (docs/verify.md says why not a response header or the log).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..engines.haproxy.runtime import ProxyKind, RuntimeAPI, RuntimeAPIError
from ..engines.haproxy.waf import WAF_BACKEND_PREFIX
from ..health.amqp import AMQPProbe
from ..health.base import Target
from ..health.dicom import DicomEchoProbe
from ..model.config import Config
from .routes import Route, plan_routes, shadowed_by

ATTEMPTS = 3  # sends of one route when other traffic moved more than one server's counter
MAX_RESPONSE = 1024 * 1024  # bytes of an HTTP answer read; the status line is what counts
ANSWERED_WAIT = 1.0  # seconds to wait for a counter to move once the answer is in (a 503 moves none)
POLL = 0.02  # seconds between two reads of the counters while waiting for a server to take the connection
HAPROXY_OWN = frozenset({502, 503, 504})  # statuses HAProxy answers itself when no real server answers well

Verdict = Literal["ok", "failed", "shadowed", "not tested"]


@dataclass(frozen=True)
class RouteResult:
    """What happened to one route: who answered, with what, how fast, and whether that was expected."""

    route: Route
    verdict: Verdict
    service: str | None = None  # the service whose real server took the request
    server: str | None = None
    status: str = ""  # the HTTP status, or the protocol's own word ("connected", "C-ECHO success", ...)
    time_ms: float | None = None
    problem: str = ""


Counters = dict[tuple[str, str], int]


def read_counters(api: RuntimeAPI) -> Counters:
    """Cumulative sessions of every server, by (service, real server)."""
    return {(r.proxy, r.name): r.sessions_total for r in api.show_stat() if r.kind is ProxyKind.SERVER}


def moved(before: Counters, after: Counters) -> list[tuple[str, str]]:
    """The real servers whose session counter moved (a request a WAF policy covers also moves its WAF backend's
    counter on the way through Apache: that is the WAF tier, not the server that answered)."""
    return sorted(k for k, v in after.items() if v > before.get(k, 0) and not k[0].startswith(WAF_BACKEND_PREFIX))


async def _http(route: Route, timeout: float) -> str:
    """One request on a new connection; the answer's status code."""
    tls = None
    if route.kind == "https":
        # routing is verified here, not the certificate: the site's own CA may not be on the appliance
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    req = route.request
    host = req.host or (f"[{route.address}]" if ":" in route.address else route.address) + f":{route.port}"
    sni = req.sni or req.host if tls is not None else None
    reader, writer = await asyncio.open_connection(route.address, route.port, ssl=tls, server_hostname=sni)
    try:
        head = f"GET {req.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pacslb-verify\r\nConnection: close\r\n"
        head += "".join(f"{n}: {v}\r\n" for n, v in req.headers) + "\r\n"
        writer.write(head.encode())
        status_line = await reader.readline()
        parts = status_line.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
        await reader.read(MAX_RESPONSE)  # the rest, so that the server's answer is complete
        return parts[1].decode()
    finally:
        writer.close()


async def _held(route: Route, api: RuntimeAPI, before: Counters, deadline: float) -> tuple[str, Counters]:
    """Open a connection (TLS with the rule's SNI for 'tls') and hold it until a server's counter moves."""
    tls = None
    if route.kind == "tls":
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection(
        route.address, route.port, ssl=tls, server_hostname=route.request.sni if tls else None
    )
    try:
        after = await _counters_moved(api, before, deadline)
        return ("TLS handshake" if tls else "connected"), after
    finally:
        writer.close()


async def _counters_moved(api: RuntimeAPI, before: Counters, deadline: float) -> Counters:
    """The counters once one has moved, or as they are at the deadline."""
    while True:
        after = await asyncio.to_thread(read_counters, api)
        if moved(before, after) or time.monotonic() >= deadline:
            return after
        await asyncio.sleep(POLL)


async def _send(route: Route, api: RuntimeAPI, before: Counters, timeout: float) -> tuple[str, Counters, str]:
    """Send a route's request: (status, counters after, problem)."""
    deadline = time.monotonic() + timeout
    target = Target(route.address, route.port)
    async with asyncio.timeout(timeout):
        if route.kind in ("http", "https"):
            status = await _http(route, timeout)
        elif route.kind in ("tcp", "tls"):
            return (*(await _held(route, api, before, deadline)), "")
        elif route.kind == "amqp":
            result = await AMQPProbe(timeout).probe(target)
            status = "AMQP Connection.Start" if result.up else "no AMQP"
            if not result.up:
                return status, await asyncio.to_thread(read_counters, api), result.reason
        else:
            result = await DicomEchoProbe(timeout, route.calling_ae or "PACSLB", route.called_ae or "ANY-SCP").probe(target)
            status = "C-ECHO success" if result.up else "no C-ECHO"
            if not result.up:
                return status, await asyncio.to_thread(read_counters, api), result.reason
    # The server was counted when HAProxy connected to it, before its answer came back: the counters show it
    # at once, and ANSWERED_WAIT only bounds the wait. A redirect or deny moves no counter: read them once.
    wait = min(deadline, time.monotonic() + ANSWERED_WAIT) if route.expect_status is None else time.monotonic()
    return status, await _counters_moved(api, before, wait), ""


def judge(route: Route, status: str, servers: list[tuple[str, str]], problem: str) -> tuple[Verdict, str]:
    """Whether what answered is what the route expects (pure)."""
    if problem:
        return "failed", problem
    if route.expect_status is not None:
        if status != str(route.expect_status):
            return "failed", f"expected status {route.expect_status}, got {status}"
        if servers and route.expect_service is None:
            return "failed", f"expected the appliance to answer, but {servers[0][0]}/{servers[0][1]} took it"
        return "ok", ""
    if not servers:
        return "failed", f"no real server of {route.expect_service} took the request"
    service = servers[0][0]
    if service != route.expect_service:
        return "failed", f"expected {route.expect_service}, but {service} took it"
    if status.isdigit() and int(status) in HAPROXY_OWN:
        return "failed", f"{servers[0][1]} was tried but the answer was {status}"
    return "ok", ""


async def verify_route(route: Route, api: RuntimeAPI, timeout: float) -> RouteResult:
    """Send one route (again when other traffic makes the answer ambiguous) and judge it."""
    if route.not_sent is not None:
        verdict: Verdict = "shadowed" if route.not_sent.startswith("shadowed") else "not tested"
        return RouteResult(route, verdict, problem=route.not_sent)
    for _ in range(ATTEMPTS):
        before = await asyncio.to_thread(read_counters, api)
        started = time.monotonic()
        try:
            status, after, problem = await _send(route, api, before, timeout)
        except (OSError, TimeoutError, ConnectionError, ssl.SSLError) as exc:
            return RouteResult(route, "failed", problem=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        elapsed = (time.monotonic() - started) * 1000
        servers = moved(before, after)
        if len(servers) <= 1:
            verdict, why = judge(route, status, servers, problem)
            service, server = servers[0] if servers else (None, None)
            return RouteResult(route, verdict, service, server, status, round(elapsed, 1), why)
    return RouteResult(route, "failed", status=status, problem=f"ambiguous: other traffic moved {len(servers)} servers' counters")


@dataclass(frozen=True)
class Report:
    results: list[RouteResult]
    shadowed: dict[str, dict[str, str]]  # virtual service -> rule -> the earlier rule that takes its requests

    @property
    def ok(self) -> bool:
        return all(r.verdict in ("ok", "not tested") for r in self.results)


# One verify at a time per controller (the API and the WebUI share it): two at once would move each other's
# counters and make every answer ambiguous.
_one_at_a_time = asyncio.Lock()


async def verify(config: Config, stats_socket: Path, timeout: float = 5.0) -> Report:
    """Verify every route of the configuration against the HAProxy behind `stats_socket`, one at a time."""
    async with _one_at_a_time:
        return await _verify(config, stats_socket, timeout)


async def _verify(config: Config, stats_socket: Path, timeout: float) -> Report:
    api = RuntimeAPI(stats_socket, timeout=timeout)
    try:
        await asyncio.to_thread(read_counters, api)
    except RuntimeAPIError as exc:
        raise RuntimeAPIError(f"cannot read HAProxy's counters ({exc}): is the appliance running (pacslb up)?") from exc
    results = [await verify_route(route, api, timeout) for route in plan_routes(config)]
    shadowed = {vs.name: s for vs in config.virtual_services if (s := shadowed_by(vs))}
    return Report(results, shadowed)
