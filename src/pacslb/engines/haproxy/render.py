"""The HAProxy configuration, rendered from the model: a pure function with deterministic output.

Two steps, as STYLE.md asks. The `_transform_*` functions turn model objects into plain view objects
in HAProxy's words (global, defaults, frontend, backend, server, acl); the templates in `templates/`
only lay them out. Free text never reaches the file unquoted: view objects carry it as `Text`,
`LogFormat` or `Word`, and the templates' `line` filter quotes each kind the way HAProxy reads it.

Names: a virtual service with real servers is a backend of the same name, a Layer 7 service with
listeners is a frontend of the same name, and servers are named after the real servers; the runtime
API addresses them as `<service>/<real server>`. Layer 4 services belong to nftables and are skipped.

The renderer reads no clock, environment or file (the templates aside): everything it needs comes in
through `config` and `HAProxyEnv`, and the same input gives the same bytes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import jinja2

from ...model.checks import resolve
from ...model.config import (
    APPLIANCE_CHECK_TYPES,
    AppCookiePersistence,
    Config,
    CookiePersistence,
    FallbackServer,
    HTTPCheck,
    Listener,
    Mode,
    RealServer,
    RealServerState,
    Rule,
    Scheduler,
    StickTablePersistence,
    TLSTermination,
    VirtualService,
)
from ...paths import StatePaths

TEMPLATES = Path(__file__).parent / "templates"

# HAProxy 2.6 runs at most 64 threads (MAX_THREADS of the Debian build).
MAX_THREADS = 64


@dataclass(frozen=True)
class HAProxyEnv:
    """What the rendering needs beyond the model; the caller finds it, the renderer never looks."""

    state_dir: Path  # sockets and state files: StatePaths(state_dir)
    base_dir: Path  # relative certificate and CA paths are read from here
    cpu_count: int = 1  # the caller reads os.cpu_count()
    # a frontend that serves HAProxy's Prometheus exporter on <state>/haproxy/prom.sock (the management
    # API proxies /metrics to it); the controller turns it on, golden files leave it off
    prometheus: bool = False


# --- free text and quoting -----------------------------------------------------------------------
#
# HAProxy's configuration parser splits a line into words on spaces, strips quotes and escapes, and
# expands environment variables inside double quotes. A value in double quotes with `\`, `"` and `$`
# escaped reaches HAProxy exactly as written. Log-format arguments (header values, redirect locations,
# `http-check send hdr`) also give `%` a meaning, so it is doubled there first.


class Text(str):
    """Free text from the model: always written in double quotes."""


class LogFormat(str):
    """Free text inside a log-format argument: `%` doubled, then quoted like Text."""


class Word(str):
    """A name, address or path: written bare when HAProxy reads it as one plain word, quoted otherwise."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_.:/@,()\[\]+=*^|~!&<>-]+$")
_PLAIN_FETCH_ARG = re.compile(r"^[A-Za-z0-9_.:/@+=*^|~!&<>-]*$")


def quote(value: str) -> str:
    """`value` as one double-quoted HAProxy word; control characters are refused, never written."""
    if _CONTROL.search(value):
        raise ValueError(f"{value!r} holds a control character and cannot be written to haproxy.cfg")
    if not value:
        # HAProxy's keyword parsers take an empty word for the end of the line
        raise ValueError("an empty value cannot be written to haproxy.cfg as a word")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def logformat(value: str) -> str:
    """`value` as a quoted log-format string that HAProxy outputs literally."""
    if not value:
        return '"%[str()]"'  # the empty string, as a word HAProxy does not take for a missing argument
    return quote(value.replace("%", "%%"))


def word(value: str) -> str:
    """`value` bare when it is a plain word, quoted otherwise."""
    return value if _PLAIN_WORD.match(value) else quote(value)


def fetch(name: str, *args: str | int) -> str:
    """A sample fetch or converter call; arguments that are not plain are quoted for HAProxy's argument parser.

    The result is one word of the configuration: pass it as `Word` so that the line quotes it again
    when it holds characters special to the configuration parser (HAProxy unquotes twice).
    """
    out = []
    for arg in args:
        text = str(arg)
        if _CONTROL.search(text):
            raise ValueError(f"{text!r} holds a control character and cannot be written to haproxy.cfg")
        out.append(text if _PLAIN_FETCH_ARG.match(text) else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return f"{name}({','.join(out)})"


def render_arg(arg: object) -> str:
    """One word of a directive, quoted according to its kind; plain `str` is HAProxy syntax we built."""
    if isinstance(arg, LogFormat):
        return logformat(arg)
    if isinstance(arg, Text):
        return quote(arg)
    if isinstance(arg, Word):
        return word(arg)
    if isinstance(arg, (str, int)):
        return str(arg)
    raise TypeError(f"cannot write {arg!r} into haproxy.cfg")


def render_line(words: Iterable[object]) -> str:
    """A directive's words joined by spaces; a control character can never slip through."""
    line = " ".join(render_arg(w) for w in words)
    if _CONTROL.search(line):
        raise ValueError(f"{line!r} holds a control character and cannot be written to haproxy.cfg")
    return line


# --- view objects: the configuration in HAProxy's words ------------------------------------------

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
class HAProxyConfig:
    global_: Global
    defaults: Defaults
    sections: tuple[Frontend | Backend | Skipped, ...]
    peers: object | None = None  # the HA pair's peers section (engines/haproxy/ha.py)


# --- mapping tables -------------------------------------------------------------------------------

PROXY_MODE = {Mode.LAYER7_HTTP: "http", Mode.LAYER7_TCP: "tcp"}

BALANCE = {
    Scheduler.WEIGHTED_ROUND_ROBIN: "roundrobin",
    Scheduler.WEIGHTED_LEAST_CONNECTIONS: "leastconn",
    Scheduler.SOURCE_HASH: "source",
}
# Consistent hashing moves few clients when a server comes or goes, and lets the runtime API
# add servers (map-based `balance source` refuses them).
HASH_TYPE = {Scheduler.SOURCE_HASH: "consistent"}

SEND_PROXY = {"none": None, "v1": "send-proxy", "v2": "send-proxy-v2"}

TLS_VERSION = {"1.0": "TLSv1.0", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}

# Mozilla's server-side TLS recommendations (ssl-config.mozilla.org, guidelines 5.7).
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
MOZILLA_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
CIPHER_POLICY = {
    # policy: (TLS 1.2 ciphers, TLS 1.3 suites); modern is TLS 1.3 only, so it names no 1.2 ciphers
    "intermediate": (MOZILLA_INTERMEDIATE_CIPHERS, MOZILLA_CIPHERSUITES),
    "modern": (None, MOZILLA_CIPHERSUITES),
}

HEADER_MATCH = {"exact": "str", "begins": "beg", "contains": "sub"}

# Which section a timeout belongs to: HAProxy takes client-side timeouts in frontends only and
# server-side ones in backends only.
TIMEOUT_NAMES = {
    "connect": "connect",
    "client": "client",
    "server": "server",
    "tunnel": "tunnel",
    "http_request": "http-request",
    "queue": "queue",
}
FRONTEND_TIMEOUTS = ("client", "http_request")
BACKEND_TIMEOUTS = ("connect", "server", "tunnel", "queue")

LOG_TO_STREAM = {"stdout", "stderr"}

# Waiting for a TLS ClientHello (SNI rules, SSL session ID persistence) lasts at most this long.
INSPECT_DELAY = "5s"

# The variable that marks a request taken by a use_service rule (see _rule_actions).
RULE_VAR = "txn.pacslb_rule"


# --- entry point ----------------------------------------------------------------------------------


def render(config: Config, env: HAProxyEnv) -> str:
    """The whole haproxy.cfg for `config`: the same input always gives the same bytes."""
    view = build(config, env)
    template = _environment().get_template("haproxy.cfg.j2")
    prometheus = word(str(env.state_dir / "haproxy" / "prom.sock")) if env.prometheus else None
    return template.render(config=view, prometheus_socket=prometheus).rstrip("\n") + "\n"


def build(config: Config, env: HAProxyEnv) -> HAProxyConfig:
    """The view objects of the whole configuration (the first step of `render`)."""
    reached_from = _reached_from(config)
    sections: list[Frontend | Backend | Skipped] = []
    for vs in config.virtual_services:
        if vs.mode.is_layer4:
            sections.append(Skipped(vs.name, vs.mode.value, "nftables"))
            continue
        if vs.listen:
            sections.append(_transform_frontend(vs, config, env))
        if vs.real_servers:
            sections.append(_transform_backend(vs, config, env, reached_from.get(vs.name, [])))
    from .ha import apply_ha  # the HA pair (issue 7): peers, non-local binds

    return apply_ha(HAProxyConfig(_transform_global(config, env), _transform_defaults(config), tuple(sections)), config)


def backend_view(config: Config, env: HAProxyEnv, name: str) -> Backend | None:
    """The backend of one virtual service, as `build` makes it (the runtime API's `add server` reuses its server lines)."""
    vs = config.service(name)
    if vs is None or vs.mode.is_layer4 or not vs.real_servers:
        return None
    return _transform_backend(vs, config, env, _reached_from(config).get(vs.name, []))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["quote"] = quote
    env.filters["logformat"] = logformat
    env.filters["word"] = word
    env.filters["line"] = render_line
    return env


def _reached_from(config: Config) -> dict[str, list[VirtualService]]:
    """For each backend-only service, the services whose rules or default reach it, in file order."""
    reached: dict[str, list[VirtualService]] = {}
    for vs in config.virtual_services:
        targets = [r.use_service for r in vs.rules if r.use_service]
        if vs.default_service:
            targets.append(vs.default_service)
        for target in dict.fromkeys(targets):
            reached.setdefault(target, []).append(vs)
    return reached


# --- global and defaults --------------------------------------------------------------------------


def _transform_global(config: Config, env: HAProxyEnv) -> Global:
    settings = config.settings
    paths = StatePaths(env.state_dir)
    return Global(
        logs=(_log_target(config),),
        maxconn=settings.max_connections,
        nbthread=min(settings.threads or max(env.cpu_count, 1), MAX_THREADS),
        hard_stop_after=str(settings.hard_stop_after),
        max_reloads=settings.max_reloads,
        stats_socket=Word(str(paths.haproxy_admin_socket)),
        server_state_file=Word(str(paths.haproxy_server_state)),
        ssl_bind_ciphers=MOZILLA_INTERMEDIATE_CIPHERS,
        ssl_bind_ciphersuites=MOZILLA_CIPHERSUITES,
        ssl_bind_options="prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets",
        ssl_server_options="ssl-min-ver TLSv1.2",
    )


def _log_target(config: Config) -> Directive:
    """'stdout' (or 'stderr') writes raw lines to the stream; a path or HOST:PORT is a syslog server."""
    log = config.settings.log
    if log.target in LOG_TO_STREAM:
        return ("log", log.target, "format", "raw", log.facility, log.level)
    return ("log", Word(log.target), log.facility, log.level)


def _transform_defaults(config: Config) -> Defaults:
    timeouts = config.settings.timeouts
    return Defaults(
        retries=config.settings.retries,
        timeouts=tuple((TIMEOUT_NAMES[name], str(getattr(timeouts, name))) for name in TIMEOUT_NAMES),
    )


def _timeout_overrides(config: Config, vs: VirtualService, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The service's own timeouts among `names`; the rest come from the defaults section."""
    effective = config.effective_timeouts(vs)
    return tuple(
        (TIMEOUT_NAMES[name], str(getattr(effective, name))) for name in names if getattr(vs.timeouts, name) is not None
    )


# --- frontends ------------------------------------------------------------------------------------


def _transform_frontend(vs: VirtualService, config: Config, env: HAProxyEnv) -> Frontend:
    mode = PROXY_MODE[vs.mode]
    http = mode == "http"
    binds = [_bind(listener, _tls_bind_options(vs.tls, env, http) if vs.tls else ()) for listener in vs.listen]
    http_request: list[Directive] = []
    http_response: list[Directive] = []
    if vs.tls and vs.tls.http_redirect_port:
        addresses = dict.fromkeys(l.address for l in vs.listen)
        binds += [_bind(Listener(address=a, port=vs.tls.http_redirect_port)) for a in addresses]
        http_request.append(_https_redirect(vs))

    acls = tuple(acl for rule in vs.rules for acl in _rule_acls(rule, vs))
    tcp_request: list[Directive] = []
    sni_inspection = not http and not vs.tls and any(rule.match.sni for rule in vs.rules)
    if sni_inspection:
        tcp_request.append(("tcp-request", "inspect-delay", INSPECT_DELAY))
    rule_actions, use_backends = _rule_actions(vs, http)
    if http:
        http_request += rule_actions
    else:
        tcp_request += rule_actions
    if sni_inspection:
        # wait for the ClientHello, so that rules on req.ssl_sni see the server name
        tcp_request.append(("tcp-request", "content", "accept", "if", "{", "req.ssl_hello_type", "1", "}"))

    if http:
        http_request += _header_rules("http-request", vs.headers.request)
        http_response += _header_rules("http-response", vs.headers.response)
        if vs.tls and vs.tls.hsts:
            http_response.append(_hsts(vs.tls))

    default_backend = vs.default_service or (vs.name if vs.real_servers else None)
    options = ["httplog" if http else "tcplog"]
    if config.settings.log.requests == "problems":
        # A line per request costs HAProxy about 3 µs of a small request's 30 (bench/README.md); by
        # default only what an administrator must see is logged: errors, retries, timeouts, 5xx.
        options.append("dontlog-normal")
    if http:
        # A reload closes idle keep-alive connections of the old worker by default, and a client that
        # sends its next request at that moment sees the connection drop. With this option the old
        # worker answers that request with `Connection: close` instead (hard-stop-after bounds it).
        options.append("idle-close-on-response")
    if http and vs.forwarded_for:
        options.append("forwardfor")
    return Frontend(
        name=vs.name,
        description=Text(vs.description) if vs.description else None,
        mode=mode,
        binds=tuple(binds),
        maxconn=vs.max_connections,
        options=tuple(options),
        timeouts=_timeout_overrides(config, vs, FRONTEND_TIMEOUTS),
        tcp_request=tuple(tcp_request),
        acls=acls,
        http_request=tuple(http_request),
        http_response=tuple(http_response),
        use_backends=tuple(use_backends),
        default_backend=default_backend,
    )


def _address(address: str, port: str | int | None) -> str:
    """`ADDR:PORT` in HAProxy's words; IPv6 addresses in brackets (a bare one would lose its last group to the port)."""
    host = f"[{address}]" if _is_ipv6(address) else address
    return host if port is None else f"{host}:{port}"


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False  # a DNS name


def _bind(listener: Listener, options: Directive = ()) -> Bind:
    # `::` alone would also take IPv4 (dual stack) and clash with a 0.0.0.0 listener of another service
    v6only = ("v6only",) if listener.address == "::" else ()
    return Bind(_address(listener.address, str(listener.port)), (*v6only, *options))


def _tls_bind_options(tls: TLSTermination, env: HAProxyEnv, http: bool) -> Directive:
    words: list[object] = ["ssl"]
    for certificate in tls.certificates:
        words += ["crt", Word(str(resolve(certificate, env.base_dir)))]
    words += ["ssl-min-ver", TLS_VERSION[tls.min_version]]
    if tls.cipher_policy == "custom":
        ciphers, suites = tls.ciphers, tls.ciphersuites
    else:
        ciphers, suites = CIPHER_POLICY[tls.cipher_policy]
    if ciphers:
        words += ["ciphers", Word(ciphers)]
    if suites:
        words += ["ciphersuites", Word(suites)]
    if http:
        words += ["alpn", "h2,http/1.1"]
    return tuple(words)


def _https_redirect(vs: VirtualService) -> Directive:
    """Plain HTTP on http_redirect_port is sent to the first TLS listener's port."""
    port = vs.listen[0].port.first
    unless_tls = ("code", "301", "unless", "{", "ssl_fc", "}")
    if port == 443:
        return ("http-request", "redirect", "scheme", "https", *unless_tls)
    # `redirect scheme` would keep the plain port that the client's Host header names
    host = fetch("req.hdr", "host") + "," + fetch("field", 1, ":")
    return ("http-request", "redirect", "location", f"https://%[{host}]:{port}%[pathq]", *unless_tls)


def _hsts(tls: TLSTermination) -> Directive:
    hsts = tls.hsts
    assert hsts is not None
    value = f"max-age={hsts.max_age}"
    if hsts.include_subdomains:
        value += "; includeSubDomains"
    if hsts.preload:
        value += "; preload"
    return ("http-response", "set-header", "Strict-Transport-Security", LogFormat(value), "if", "{", "ssl_fc", "}")


def _header_rules(keyword: str, rules: Iterable) -> list[Directive]:
    """Header changes in the order given: set-header, add-header, del-header."""
    lines: list[Directive] = []
    for rule in rules:
        if rule.action == "delete":
            lines.append((keyword, "del-header", Word(rule.name)))
        else:
            lines.append((keyword, f"{rule.action}-header", Word(rule.name), LogFormat(rule.value)))
    return lines


# --- rules ----------------------------------------------------------------------------------------
#
# A rule's conditions of different kinds must all hold, and a list holds when any item does. Each
# kind becomes one ACL named `<rule>_<kind>`; an ACL of several lines (one per header match) holds when
# any line does, and a condition that names several ACLs holds when all of them do. Two rules cannot
# make the same ACL name: the kinds are a fixed set, and no kind ends with '_' plus another kind.


def _rule_acls(rule: Rule, vs: VirtualService) -> list[Acl]:
    m = rule.match
    acls: list[Acl] = []
    if m.path_begins:
        acls.append(Acl(f"{rule.name}_path_begins", Word("path"), ("-m", "beg"), tuple(Text(p) for p in m.path_begins)))
    if m.path_ends:
        acls.append(Acl(f"{rule.name}_path_ends", Word("path"), ("-m", "end"), tuple(Text(p) for p in m.path_ends)))
    if m.host:
        host = Word(fetch("req.hdr", "host") + "," + fetch("field", 1, ":"))
        acls.append(Acl(f"{rule.name}_host", host, ("-m", "str", "-i"), tuple(Text(h) for h in m.host)))
    for header in m.header:
        if header.value is None or (header.value == "" and header.match != "exact"):
            # present; every value begins with and contains the empty text
            acls.append(Acl(f"{rule.name}_header", Word(fetch("req.hdr", header.name)), ("-m", "found")))
        elif header.value == "":
            acls.append(Acl(f"{rule.name}_header", Word(fetch("req.fhdr", header.name)), ("-m", "len", "0")))
        else:
            acls.append(
                Acl(
                    f"{rule.name}_header",
                    Word(fetch("req.fhdr", header.name)),
                    ("-m", HEADER_MATCH[header.match]),
                    (Text(header.value),),
                )
            )
    if m.sni:
        # with TLS terminated here the handshake's name is ssl_fc_sni; in tcp mode without it,
        # the name is read from the ClientHello (the frontend waits for it)
        sni = "ssl_fc_sni" if vs.tls else "req.ssl_sni"
        acls.append(Acl(f"{rule.name}_sni", Word(sni), ("-m", "str", "-i"), tuple(Text(s) for s in m.sni)))
    if m.source:
        acls.append(Acl(f"{rule.name}_source", Word("src"), (), tuple(m.source)))
    return acls


def _rule_condition(rule: Rule, vs: VirtualService) -> tuple[str, ...]:
    return tuple(dict.fromkeys(acl.name for acl in _rule_acls(rule, vs)))


def _rule_actions(vs: VirtualService, http: bool) -> tuple[list[Directive], list[tuple[str, str]]]:
    """The rules as request actions and use_backend lines, keeping 'first match wins'.

    HAProxy runs every http-request (tcp-request content) rule before any use_backend, so a deny or
    redirect rule would win over an earlier use_service rule that also matches. When the rules hold
    such an order, each use_service rule marks the request it takes (RULE_VAR), later rules skip marked
    requests, and use_backend follows the mark. Otherwise the rules are written as they read.
    """
    keyword = ("http-request",) if http else ("tcp-request", "content")
    seen_use_service = False
    needs_marks = False
    for rule in vs.rules:
        if rule.use_service:
            seen_use_service = True
        elif seen_use_service:
            needs_marks = True

    actions: list[Directive] = []
    use_backends: list[tuple[str, str]] = []
    marked = False  # an earlier use_service rule may have marked the request
    for rule in vs.rules:
        condition: tuple[str, ...] = _rule_condition(rule, vs)
        if marked:
            condition = ("!{", "var(" + RULE_VAR + ")", "-m", "found", "}", *condition)
        if rule.use_service:
            if needs_marks:
                actions.append((*keyword, f"set-var({RULE_VAR})", f"str({rule.name})", "if", *condition))
                use_backends.append((rule.use_service, f"{{ var({RULE_VAR}) -m str {rule.name} }}"))
                marked = True
            else:
                use_backends.append((rule.use_service, " ".join(condition)))
        elif rule.redirect:
            location = LogFormat(rule.redirect.location)
            actions.append((*keyword, "redirect", "location", location, "code", str(rule.redirect.code), "if", *condition))
        elif rule.deny:
            if http:
                actions.append((*keyword, "deny", "deny_status", str(rule.deny.status), "if", *condition))
            else:
                actions.append((*keyword, "reject", "if", *condition))
    return actions, use_backends


# --- backends -------------------------------------------------------------------------------------


def _transform_backend(
    vs: VirtualService, config: Config, env: HAProxyEnv, reached_from: list[VirtualService]
) -> Backend:
    mode = _backend_mode(vs, reached_from)
    http = mode == "http"
    options: list[str] = []
    health_check: list[Directive] = []
    check = vs.health_check
    if isinstance(check, HTTPCheck):
        options.append("httpchk")
        health_check += _http_check(check)
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

    return Backend(
        name=vs.name,
        description=Text(vs.description) if vs.description and is_backend_only else None,
        mode=mode,
        balance=BALANCE[vs.scheduler],
        hash_type=HASH_TYPE.get(vs.scheduler),
        options=tuple(options),
        timeouts=_timeout_overrides(config, vs, BACKEND_TIMEOUTS),
        persistence=_persistence(vs, reached_from),
        health_check=tuple(health_check),
        http_request=(tuple(_header_rules("http-request", vs.headers.request)) if http and is_backend_only else ())
        + _maintenance_page(vs, env),
        http_response=tuple(_header_rules("http-response", vs.headers.response)) if http and is_backend_only else (),
        http_reuse="safe" if http else None,
        retries=L7_RETRIES if http else (),
        source=("source", "0.0.0.0", "usesrc", "clientip") if vs.transparent else None,
        default_server=tuple(default_server),
        servers=tuple(servers),
    )


# A real server that dies while a request is in flight closes the connection with no answer. HAProxy
# retries only connection failures by default; these also retry an empty or garbled answer, on
# another server (redispatch), for idempotent methods only: a radiologist's GET never fails because
# one replica crashed, and a POST is never sent twice.
L7_RETRIES: tuple[Directive, ...] = (
    ("retry-on", "conn-failure", "empty-response", "junk-response"),
    ("http-request", "disable-l7-retry", "if", "!METH_GET", "!METH_HEAD", "!METH_OPTIONS"),
)


def _backend_mode(vs: VirtualService, reached_from: list[VirtualService]) -> str:
    """A Layer 7 service's own mode; a backend-only service takes the mode of the services that reach it."""
    if vs.mode in PROXY_MODE:
        return PROXY_MODE[vs.mode]
    modes = [PROXY_MODE[other.mode] for other in reached_from if other.mode in PROXY_MODE]
    # validation makes every backend-only service reached, and from one mode only
    return modes[0] if modes else "http"


def _http_check(check: HTTPCheck) -> list[Directive]:
    send: list[object] = ["http-check", "send", "meth", check.method, "uri", Text(check.path)]
    if check.host is not None:
        send += ["ver", "HTTP/1.1", "hdr", "Host", LogFormat(check.host)]
    else:
        # HTTP/1.1 requires a Host header (servers answer 400 without one); HTTP/1.0 does not
        send += ["ver", "HTTP/1.0"]
    lines: list[Directive] = [tuple(send)]
    lines.append(("http-check", "expect", "status", ",".join(str(s) for s in check.expect_status)))
    if check.expect_body:  # every body contains the empty text
        lines.append(("http-check", "expect", "string", Text(check.expect_body)))
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
    listeners = [l for other in (vs, *reached_from) for l in other.listen]
    return any(ipaddress.ip_address(l.address).version == 6 for l in listeners)


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
    return Server(rs.name, _address(rs.address, rs.port), tuple(options))


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
            "agent-check", "agent-addr", "127.0.0.1", "agent-port", str(agent_port),
            "agent-send", send, "agent-inter", str(check.interval),
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
            "http-request", "return", "status", "503", "content-type", Text("text/html; charset=utf-8"), *source,
            "hdr", "Cache-Control", LogFormat("no-store"), "hdr", "Retry-After", LogFormat("60"),
            "if", "{", "nbsrv", "eq", "0", "}",
        ),
    )


def _fallback_server(fallback: FallbackServer, vs: VirtualService, env: HAProxyEnv) -> Server:
    """The last backup: used when every real server, backups included, is down. It is not checked."""
    options: list[object] = ["backup"]
    if fallback.encrypted:
        options += _server_tls(vs, env)
    assert fallback.address is not None  # a fallback without address is the maintenance page
    return Server("fallback", _address(fallback.address, fallback.port), tuple(options))


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
