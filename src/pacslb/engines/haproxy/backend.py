"""The backend of a virtual service with real servers: balancing, health checks, persistence, servers, fallback."""

from __future__ import annotations

import ipaddress

from ...model.checks import resolve
from ...model.config import (
    APPLIANCE_CHECK_TYPES,
    AppCookiePersistence,
    Config,
    CookiePersistence,
    FallbackServer,
    HTTPCheck,
    Mode,
    RealServer,
    RealServerState,
    StickTablePersistence,
    VirtualService,
)
from .env import HAProxyEnv
from .quoting import LogFormat, Text, Word, fetch
from .resolvers import resolved_servers
from .shared import haproxy_address, header_rules, timeout_overrides
from .tables import BACKEND_TIMEOUTS, BALANCE, HASH_TYPE, INSPECT_DELAY, PROXY_MODE, SEND_PROXY, TLS_VERSION
from .view import Backend, Directive, Server


def transform_backend(vs: VirtualService, config: Config, env: HAProxyEnv, reached_from: list[VirtualService]) -> Backend:
    mode = _backend_mode(vs, reached_from)
    http = mode == "http"
    options: list[str] = []
    health_check: list[Directive] = []
    check = vs.health_check
    if isinstance(check, HTTPCheck):
        options.append("httpchk")
        health_check += _http_check(check, _check_host(vs, reached_from), _traffic_port(vs, check))
    if check.type != "none":
        health_check.append(("timeout", "check", str(check.timeout)))
    is_backend_only = vs.mode is Mode.BACKEND_ONLY
    if http and is_backend_only and vs.headers.forwarded_for:
        options.append("forwardfor")  # asked for explicitly; a service with listeners inserts it in its frontend

    default_server: list[object] = []
    if check.type != "none":
        default_server += ["inter", str(check.interval), "rise", str(check.rise), "fall", str(check.fall)]
        if check.port is not None:
            default_server += ["port", str(check.port)]

    # In the user's order: HAProxy sends traffic to the first backup that is up (no `allbackups`),
    # so the order of backups is their priority, and the fallback comes after every one of them.
    servers = [_server(rs, vs, env, config.settings.health.agent_port) for rs in vs.real_servers]
    if vs.fallback and not vs.fallback.maintenance_page:
        servers.append(_fallback_server(vs.fallback, vs, env))
    servers = resolved_servers(servers, vs, config)  # DNS names looked up at run time (engines/haproxy/resolvers.py)

    return Backend(
        name=vs.name,
        description=Text(vs.description) if vs.description and is_backend_only else None,
        mode=mode,
        balance=BALANCE[vs.scheduler],
        hash_type=HASH_TYPE.get(vs.scheduler),
        options=tuple(options),
        timeouts=timeout_overrides(config, vs, BACKEND_TIMEOUTS),
        persistence=_persistence(vs, reached_from),
        health_check=tuple(health_check),
        http_request=(tuple(header_rules("http-request", vs.headers.request)) if http and is_backend_only else ())
        + _maintenance_page(vs, env),
        http_response=tuple(header_rules("http-response", vs.headers.response)) if http and is_backend_only else (),
        http_reuse=vs.connection_reuse if http else None,
        # with retries 0 the rules would retry nothing, yet HAProxy would still copy every GET for them (below)
        retries=L7_RETRIES if http and config.settings.retries > 0 else (),
        source=_source(vs),
        default_server=tuple(default_server),
        servers=tuple(servers),
    )


# A real server that dies while a request is in flight closes the connection with no answer. HAProxy
# retries only connection failures by default; these also retry an empty or garbled answer, on
# another server (redispatch), for idempotent methods only: a radiologist's GET never fails because
# one replica crashed, and a POST is never sent twice. The price: to be able to send it again, HAProxy
# 2.6 copies each retryable request's whole buffer (tune.bufsize, 16 KiB) before sending it; bench/README.md
# measures it (Layer 7 proxy bench) and says why no cheaper form keeps the same safety.
L7_RETRIES: tuple[Directive, ...] = (
    ("retry-on", "conn-failure", "empty-response", "junk-response"),
    ("http-request", "disable-l7-retry", "if", "!METH_GET", "!METH_HEAD", "!METH_OPTIONS"),
)


def _source(vs: VirtualService) -> Directive | None:
    """Where connections to the real servers leave from: the client's own address (TPROXY), a chosen one, or
    the route's (none). Validation refuses both at once (model/client_address.py)."""
    if vs.transparent:
        return ("source", "0.0.0.0", "usesrc", "clientip")
    if vs.source_address is not None:
        return ("source", haproxy_address(vs.source_address, None))
    return None


def _backend_mode(vs: VirtualService, reached_from: list[VirtualService]) -> str:
    """A Layer 7 service's own mode; a backend-only service takes the mode of the services that reach it."""
    if vs.mode in PROXY_MODE:
        return PROXY_MODE[vs.mode]
    modes = [PROXY_MODE[other.mode] for other in reached_from if other.mode in PROXY_MODE]
    # validation makes every backend-only service reached, and from one mode only
    return modes[0] if modes else "http"


def _check_host(vs: VirtualService, reached_from: list[VirtualService]) -> str:
    """The Host a check sends when its `host` is not set: what a client that uses the VIP's address sends."""
    for service in [vs, *reached_from]:
        for listener in service.listen:
            address = ipaddress.ip_address(str(listener.address))
            if not address.is_unspecified:
                return f"[{address}]" if address.version == 6 else str(address)
    return "localhost"


def _traffic_port(vs: VirtualService, check: HTTPCheck) -> int | None:
    """The real servers' own port when the check runs elsewhere and every real server shares it (HAProxy's
    `http-check connect port` is one port for the whole backend); None when there is nothing more to check."""
    ports = {rs.port for rs in vs.real_servers}
    if not check.check_traffic_port or check.port is None or len(ports) != 1:
        return None
    (port,) = ports
    return port if port is not None and port != check.port else None


def _http_check(check: HTTPCheck, default_host: str, traffic_port: int | None) -> list[Directive]:
    # HTTP/1.1 with a Host header: HTTP/1.0 without one is refused or sent to a default site by servers
    # that host several names (and some answer 400 to an HTTP/1.1 request without Host)
    host = check.host if check.host is not None else default_host
    send: list[object] = ["http-check", "send", "meth", check.method, "uri", Text(check.path), "ver", "HTTP/1.1"]
    send += ["hdr", "Host", LogFormat(host)]
    lines: list[Directive] = []
    if traffic_port is not None:
        # HAProxy wants a connect first when a ruleset has one; `default` keeps the server's check port and TLS
        lines.append(("http-check", "connect", "default"))
    lines.append(tuple(send))
    lines.append(("http-check", "expect", "status", ",".join(str(s) for s in check.expect_status)))
    if check.expect_body:  # every body contains the empty text
        lines.append(("http-check", "expect", "string", Text(check.expect_body)))
    if traffic_port is not None:
        # a second connection in the same check, plain TCP to the port that carries the traffic: the
        # check above runs on `port` (HTTPS on 443, say) and would not see a dead port 80
        lines.append(("http-check", "connect", "port", str(traffic_port)))
    return lines


def _persistence(vs: VirtualService, reached_from: list[VirtualService]) -> tuple[Directive, ...]:
    p = vs.persistence
    if isinstance(p, StickTablePersistence):
        size_expire = ("size", str(p.table_size), "expire", str(p.timeout))
        if p.type == "source-ip":
            family = "ipv6" if _has_ipv6_listener(vs, reached_from) else "ip"
            return (("stick-table", "type", family, *size_expire), ("stick", "on", "src"))
        if p.type == "x-forwarded-for":
            # The header may carry either family whatever the listener's: ipv6 tables hold both.
            # Read it in the backend's http-request rules, before `option forwardfor` appends this
            # hop's own address (HAProxy adds it before the stick rules run, and the last address
            # would then always be the proxy in front).
            return (
                ("stick-table", "type", "ipv6", *size_expire),
                ("http-request", "set-var(txn.pacslb_xff)", Word(fetch("req.hdr_ip", "X-Forwarded-For", -1))),
                ("stick", "on", "var(txn.pacslb_xff)"),
            )
        # ssl-session-id: the session ID of the ClientHello (offset 43) and of the ServerHello
        return (
            ("stick-table", "type", "binary", "len", "32", *size_expire),
            ("acl", "clienthello", "req.ssl_hello_type", "1"),
            ("acl", "serverhello", "res.ssl_hello_type", "2"),
            ("tcp-request", "inspect-delay", INSPECT_DELAY),
            ("tcp-request", "content", "accept", "if", "clienthello"),
            ("tcp-response", "content", "accept", "if", "serverhello"),
            ("stick", "on", "payload_lv(43,1)", "if", "clienthello"),
            ("stick", "store-response", "payload_lv(43,1)", "if", "serverhello"),
        )
    if isinstance(p, CookiePersistence):
        cookie: list[object] = ["cookie", Text(p.cookie_name), "insert", "indirect", "nocache"]
        if p.max_idle is not None:
            cookie += ["maxidle", str(p.max_idle)]
        return (tuple(cookie),)
    if isinstance(p, AppCookiePersistence):
        return (
            ("stick-table", "type", "string", "len", "64", "size", str(p.table_size), "expire", str(p.timeout)),
            ("stick", "store-response", Word(fetch("res.cook", p.cookie_name))),
            ("stick", "match", Word(fetch("req.cook", p.cookie_name))),
        )
    return ()


def _has_ipv6_listener(vs: VirtualService, reached_from: list[VirtualService]) -> bool:
    listeners = [lis for other in (vs, *reached_from) for lis in other.listen]
    return any(ipaddress.ip_address(lis.address).version == 6 for lis in listeners)


def _server(rs: RealServer, vs: VirtualService, env: HAProxyEnv, agent_port: int) -> Server:
    options: list[object] = []
    check = vs.health_check
    if check.type != "none":
        options.append("check")
    options += _agent_check(rs, vs, agent_port)
    # Drain is weight 0. HAProxy's configuration has no 'drain' keyword (DRAIN is a runtime admin
    # state), and a server of weight 0 behaves the same way, as documented for `weight`: it takes no
    # new clients, but persistent ones (cookie, stick table) still reach it, which is what drain means
    # in the field. `disabled` would be MAINT, which is halt. `show stat` reports such a server UP with
    # weight 0; going back online is `set server <service>/<real server> weight N`, the configured weight.
    weight = 0 if rs.state is RealServerState.DRAIN else rs.weight
    options += ["weight", str(weight)]
    if rs.max_connections:
        options += ["maxconn", str(rs.max_connections)]
    if rs.backup:
        options.append("backup")
    if rs.state is RealServerState.HALT:
        options.append("disabled")  # MAINT: no traffic at all
    if isinstance(vs.persistence, CookiePersistence):
        options += ["cookie", rs.name]
    if rs.encrypted:
        options += _server_tls(vs, env)
    options += _check_tls(vs, env, encrypted=rs.encrypted)
    send_proxy = SEND_PROXY[vs.proxy_protocol]
    if send_proxy:
        options.append(send_proxy)
    return Server(rs.name, haproxy_address(rs.address, rs.port), tuple(options))


def _agent_check(rs: RealServer, vs: VirtualService, agent_port: int) -> list[object]:
    """HAProxy's agent check: the appliance's own health-check service, or a feedback agent on the real server.

    Checks HAProxy cannot run (dicom-echo, hl7, amqp, external) are run by the appliance, which answers
    on 127.0.0.1:agent_port for `<service>/<real server>` with 'up' or 'down #reason' (pacslb.health).
    An agent that cannot be reached changes nothing (HAProxy keeps the server's state), so a stopped
    controller takes no server down; the `check` beside it is a TCP connect that keeps working then.
    """
    check = vs.health_check
    if check.type in APPLIANCE_CHECK_TYPES:
        # a plain word (names are [A-Za-z0-9_.-]), without a newline: the runtime API's `add server`
        # reads no quotes, and the agent port reads what arrives in one piece
        send = f"{vs.name}/{rs.name}"
        return [
            "agent-check",
            "agent-addr",
            "127.0.0.1",
            "agent-port",
            str(agent_port),
            "agent-send",
            send,
            "agent-inter",
            str(check.interval),
        ]
    if vs.feedback_agent is not None:
        agent = vs.feedback_agent
        return ["agent-check", "agent-port", str(agent.port), "agent-inter", str(agent.interval)]
    return []


DEFAULT_MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Service temporarily unavailable</title>"
    "<style>body{font-family:sans-serif;margin:4em auto;max-width:36em;color:#222}</style></head><body>"
    "<h1>Service temporarily unavailable</h1>"
    "<p>The imaging service is temporarily unavailable. No server can take your request at the moment.</p>"
    "<p>Please try again in a few minutes. If the problem lasts, contact your PACS administrator.</p>"
    "</body></html>"
)


def _maintenance_page(vs: VirtualService, env: HAProxyEnv) -> tuple[Directive, ...]:
    """The maintenance page: HAProxy answers 503 itself when no real server (backups included) is usable."""
    fallback = vs.fallback
    if fallback is None or not fallback.maintenance_page:
        return ()
    source: tuple[object, ...]
    if fallback.page is not None:
        source = ("file", Word(str(resolve(fallback.page, env.base_dir))))
    else:
        source = ("string", Text(DEFAULT_MAINTENANCE_PAGE))
    # nbsrv counts the usable servers of this backend, backups included (0 only when all are down)
    return (
        (
            "http-request",
            "return",
            "status",
            "503",
            "content-type",
            Text("text/html; charset=utf-8"),
            *source,
            "hdr",
            "Cache-Control",
            LogFormat("no-store"),
            "hdr",
            "Retry-After",
            LogFormat("60"),
            "if",
            "{",
            "nbsrv",
            "eq",
            "0",
            "}",
        ),
    )


def _fallback_server(fallback: FallbackServer, vs: VirtualService, env: HAProxyEnv) -> Server:
    """The last backup: used when every real server, backups included, is down. It is not checked."""
    options: list[object] = ["backup"]
    if fallback.encrypted:
        options += _server_tls(vs, env)
    assert fallback.address is not None  # a fallback without address is the maintenance page
    return Server("fallback", haproxy_address(fallback.address, fallback.port), tuple(options))


def _server_tls(vs: VirtualService, env: HAProxyEnv) -> list[object]:
    tls = vs.server_tls
    options: list[object] = ["ssl", "verify", tls.verify]
    if tls.verify == "required" and tls.ca_file:
        # without a CA file (check_files reports it), `verify required` alone makes `haproxy -c`
        # fail: never a silent `verify none`
        options += ["ca-file", Word(str(resolve(tls.ca_file, env.base_dir)))]
    if tls.sni:
        options += ["sni", Word(fetch("str", tls.sni))]
    options += ["ssl-min-ver", TLS_VERSION[tls.min_version]]
    return options


def _check_tls(vs: VirtualService, env: HAProxyEnv, encrypted: bool) -> list[object]:
    """TLS of the health check. An encrypted server's checks use its own `ssl` settings."""
    check = vs.health_check
    if check.type == "none":
        return []
    options: list[object] = []
    if check.type == "https":
        # explicit: with a check port HAProxy would otherwise check an encrypted server in plain text
        options.append("check-ssl")
        if not encrypted:
            # the server's traffic is plain, so `ssl` settings are not there to inherit: verify the
            # check's certificate when a CA is given, else accept any (the check is about liveness)
            tls = vs.server_tls
            if tls.verify == "required" and tls.ca_file:
                options += ["verify", "required", "ca-file", Word(str(resolve(tls.ca_file, env.base_dir)))]
            else:
                options += ["verify", "none"]
    elif check.type == "http" and encrypted:
        options.append("no-check-ssl")  # a plain HTTP check was asked for
    if vs.server_tls.sni and (check.type == "https" or encrypted) and check.type != "http":
        options += ["check-sni", Text(vs.server_tls.sni)]
    return options
